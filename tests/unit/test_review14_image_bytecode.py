"""Review 14 (95865e1, the bytecode step): what the new checks do not see.

- FAILS: tests/deploy/test_deploy_script.py::test_the_image_holds_what_the_entry_points_import
  finds the Dockerfile's `RUN python -m compileall ...` by a regex and runs it on a tree it
  prepared itself, so it passes whatever the step's place in the Dockerfile. Put before
  `COPY main.py` / `COPY function/`, the step compiles nothing in the image, and the build
  does not notice either: compileall exits 0 on paths that do not exist ("Can't list").
- passes (why the above matters): compileall's exit status on missing paths; and the check
  does fail without the step, and the real Dockerfile has it after the last COPY.
- FAILS (low): `bench.measure.compiled` trusts compileall's freshness test, which compares
  only the source's mtime (whole seconds) while the importer compares mtime and size: a
  source rewritten within the second of its compiled version keeps the old bytecode, so a
  start either compiles it again (another size: the cost `compiled` is meant to take out of
  the timing) or runs the old code (the same size: the bench measures code that is not the
  tree's). `force=True` (or checked-hash pycs) would not trust it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bench.measure import compiled

ROOT = Path(__file__).resolve().parents[2]


def _deploy_tests(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "review14_deploy", ROOT / "tests" / "deploy" / "test_deploy_script.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


def _tree_with(tmp_path: Path, dockerfile: str) -> Path:
    fake = tmp_path / "repo"
    fake.mkdir()
    for name in ("main.py", "function", ".dockerignore", "requirements.txt"):
        (fake / name).symlink_to(ROOT / name)
    (fake / "Dockerfile").write_text(dockerfile)
    return fake


def test_the_deploy_check_refuses_a_compile_step_before_the_code_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = (ROOT / "Dockerfile").read_text()
    step = re.search(r"^RUN python -m compileall .*\n", real, re.MULTILINE)
    assert step is not None
    moved = real.replace(step.group(0), "")
    moved = moved.replace("COPY main.py ./\n", step.group(0) + "COPY main.py ./\n")
    assert moved.index("compileall") < moved.index("COPY function/")
    deploy = _deploy_tests(monkeypatch)
    monkeypatch.setattr(deploy, "ROOT", _tree_with(tmp_path, moved))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(AssertionError):  # an image that compiles nothing: must be refused
        deploy.test_the_image_holds_what_the_entry_points_import(work)


def test_the_deploy_check_refuses_a_dockerfile_without_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passes: the check does fail when the step is gone (the Dockerfile before 95865e1)."""
    real = (ROOT / "Dockerfile").read_text()
    without = re.sub(r"^RUN python -m compileall .*\n", "", real, flags=re.MULTILINE)
    assert "compileall" not in without
    deploy = _deploy_tests(monkeypatch)
    monkeypatch.setattr(deploy, "ROOT", _tree_with(tmp_path, without))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(AssertionError, match="compiles the app's bytecode once"):
        deploy.test_the_image_holds_what_the_entry_points_import(work)


def test_the_real_dockerfile_compiles_after_the_last_copy() -> None:
    """Passes: the Dockerfile as it is has the step in the right place."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    (step,) = [i for i, line in enumerate(lines) if "compileall" in line and line.startswith("RUN")]
    assert step > max(copies)


def test_compileall_says_yes_to_paths_that_are_not_there(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "main.py", "function"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "Can't list" in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


def _rewrite_within_the_second(source: Path, text: str) -> None:
    mtime = source.stat().st_mtime_ns
    source.write_text(text)
    os.utime(source, ns=(mtime, mtime))  # an edit in the same second as the compiled one


def _header_fits(source: Path) -> bool:
    """Whether the importer takes the pyc for this source (mtime and size both match)."""
    header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:16]
    _, flags, mtime, size = struct.unpack("<4sLLL", header)
    stat = source.stat()
    return bool(flags == 0 and mtime == int(stat.st_mtime) & 0xFFFFFFFF and size == stat.st_size)


def test_bench_bytecode_is_written_again_for_a_source_edited_within_the_second(
    tmp_path: Path,
) -> None:
    package = tmp_path / "function"
    package.mkdir()
    source = package / "x.py"
    source.write_text("VALUE = 1\n")
    compiled(tmp_path)
    _rewrite_within_the_second(source, "VALUE = 1000\n")  # another size

    compiled(tmp_path)

    assert _header_fits(source), "a start would compile function/x.py again, timed"


def test_bench_measures_the_tree_as_it_is_not_older_bytecode(tmp_path: Path) -> None:
    package = tmp_path / "function"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = package / "x.py"
    source.write_text("VALUE = 1\n")
    compiled(tmp_path)
    _rewrite_within_the_second(source, "VALUE = 2\n")  # the same size

    compiled(tmp_path)

    ran = subprocess.run(
        [sys.executable, "-c", "import function.x; print(function.x.VALUE)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert ran.stdout.strip() == "2", "the measured run ran the code before the edit"
