"""What a run imports: eth-abi and eth-utils (with pydantic and a parser generator, about
0.2 s of every run's start, a quarter of an idle run) are not among them for an ABI whose
events the words alone decode (`function/core/abitypes.py`, `lenient`); they are imported
when an ABI needs eth-abi's decoders, and then decode as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eth_hash.auto import keccak

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("eth_abi", "eth_utils", "pydantic", "parsimonious", "web3")

RUN = """
import json, sys
import main  # what python main.py imports before it runs
from function.ops import wiring  # what a run then imports (the clients)
from function.core.abi import load_specs
from function.core.decoding import decode_log
from function.core.model import RawLog

specs = load_specs(lambda p: open(p, "rb").read(), sys.argv[1], ())
{decode}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def _loaded(abi: Path, decode: str = "") -> set[str]:
    code = RUN.format(decode=decode)
    done = subprocess.run(
        [sys.executable, "-c", code, str(abi)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_run_over_the_escrow_abi_imports_no_eth_abi() -> None:
    loaded = _loaded(ROOT / "contracts" / "build" / "Escrow.json")
    assert "function" in loaded and "google" in loaded  # the check sees what is imported
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_run_imports_no_generated_pub_sub_client() -> None:
    # It sends bytes on a channel of its own (`adapters.pubsub.make_channel`): the generated
    # client's import and construction were about 0.1 s of every execution.
    code = RUN.format(decode="").replace(
        'print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))',
        "print(json.dumps(sorted(sys.modules)))",
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "contracts" / "build" / "Escrow.json")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "function.adapters.pubsub" in loaded  # the check sees the publisher's imports
    assert not {m for m in loaded if m.startswith(("google.pubsub", "google.cloud.pubsub"))}


def _pair_abi(tmp_path: Path, second: str) -> Path:
    abi = tmp_path / f"abi-{second}.json"
    tuple_event = {"type": "event", "name": "Pair", "anonymous": False, "inputs": [
        {"name": "p", "type": "tuple", "indexed": False,
         "components": [{"name": "a", "type": "uint256"}, {"name": "s", "type": second}]},
    ]}  # fmt: skip
    abi.write_text(json.dumps([tuple_event]))
    return abi


def _pair_log(second: str, data: bytes, expected: object) -> str:
    topic0 = "0x" + keccak(f"Pair((uint256,{second}))".encode()).hex()
    return f"""
log = RawLog(address="0x" + "ab" * 20, topics=[{topic0!r}], data="0x{data.hex()}",
             blockNumber="0x1", blockHash="0x" + "cd" * 32, transactionHash="0x" + "ef" * 32,
             transactionIndex="0x0", logIndex="0x0")
event = decode_log(log, specs, 1)
assert event is not None and event.args == {expected!r}, event.args
"""


def test_an_abi_that_needs_eth_abis_decoders_imports_it_at_its_first_log(
    tmp_path: Path,
) -> None:
    abi = _pair_abi(tmp_path, "bool")  # a static struct: inline in the head, eth-abi's
    assert not _loaded(abi) & set(HEAVY)  # an idle run over it: no log, no import
    data = (7).to_bytes(32, "big") + (1).to_bytes(32, "big")
    decode = _pair_log("bool", data, {"p": {"a": "7", "s": True}})
    assert "eth_abi" in _loaded(abi, decode)


def test_a_struct_with_a_string_is_read_without_eth_abi(tmp_path: Path) -> None:
    abi = _pair_abi(tmp_path, "string")  # dynamic: at its offset, read from its words
    data = (32).to_bytes(32, "big") + (7).to_bytes(32, "big") + (64).to_bytes(32, "big")
    data += (2).to_bytes(32, "big") + b"hi".ljust(32, b"\0")
    decode = _pair_log("string", data, {"p": {"a": "7", "s": "hi"}})
    assert not _loaded(abi, decode) & set(HEAVY)
