"""The layers of `function/` as the README's Layout shows them, enforced.

core/ is pure: importing all of it loads no network, cloud or HTTP library. Each layer
imports only those below it: core <- run <- adapters <- ops (the top-level modules config,
errors, logs, redact, stopping, numeric_settings and chains are shared by all).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "function"
IO_LIBRARIES = ("google", "grpc", "requests", "urllib3", "web3", "aiohttp", "httpx", "websockets")
LAYERS = ("core", "run", "adapters", "ops")
# What each layer may import from function/ besides the shared top-level modules.
ALLOWED = {
    "core": {"core"},
    "run": {"core", "run"},
    "adapters": {"core", "adapters"},
    "ops": {"core", "run", "adapters", "ops"},
}
SHARED = {"chains", "config", "errors", "logs", "redact", "stopping", "numeric_settings"}


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _loaded_after(imports: list[str]) -> set[str]:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"for n in {imports!r}: __import__(n)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def _core_modules() -> list[str]:
    return [
        "function." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in _modules("core")
    ]


def test_importing_the_core_loads_no_io_library() -> None:
    # (Python's own email and importlib.metadata, which eth_utils uses, load `socket` as a
    # module; what the core itself may import is checked below, file by file.)
    loaded = _loaded_after(_core_modules())
    assert "function.core.planning" in loaded
    offenders = sorted(m for m in loaded if m.split(".")[0] in IO_LIBRARIES)
    assert not offenders, f"core/ loads I/O libraries: {offenders[:10]}"


def test_the_check_sees_an_io_library() -> None:
    assert "requests" in {
        m.split(".")[0] for m in _loaded_after(["function.adapters.jsonrpc.client"])
    }


def test_no_core_module_imports_io_or_threads() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules("core")
        for name in _all_imports(path)
        if name.split(".")[0] in (*IO_LIBRARIES, "socket", "subprocess", "threading", "time")
    ]
    assert not wrong, "\n".join(wrong)


def _all_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _imports(path: Path) -> set[str]:
    """function.* modules a file imports (absolute imports only: the package uses no
    relative ones, and this test would miss them, so it refuses them)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            if node.module and node.module.startswith("function."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("function."))
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = []
    for path in _modules(layer):
        for module in _imports(path):
            part = module.split(".")[1]
            if part not in ALLOWED[layer] and part not in SHARED:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


# Pure core modules a shared one may use: errors names a provider failure's type, config
# reads RELAYER_ARG_FILTERS and RELAYER_FACTORY with the core's grammars (which import only the
# errors) and checks EIP-55 addresses with the core's checksum (eth-utils' costs 0.2 s).
SHARED_USES = {
    "function.core.provider_errors",
    "function.core.argfilters",
    "function.core.factory",
    "function.core.values",
}


def test_the_shared_modules_import_no_layer() -> None:
    wrong = [
        f"{name}.py imports {module}"
        for name in SHARED
        for module in _imports(PACKAGE / f"{name}.py")
        if module.split(".")[1] not in SHARED and module not in SHARED_USES
    ]
    assert not wrong, "\n".join(wrong)


def test_the_layout_is_what_it_says() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == SHARED
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        LAYERS
    )
