"""Chains of the campaign's own making, beside the escrow world (devstack/faults/world.py).

- The odd world: one LogEmitter on an anvil of its own that takes megabytes of log data,
  with the events an outside audit found the relayer dropping or mangling: a 600,000-byte
  `bytes`, a block of four 90,000-character CJK strings, strings that are not UTF-8 (a lone
  0xff, a character cut in half: relayed with U+FFFD), and anonymous events (no topic0,
  identified by their topic count and data layout). Built once; trials relay it.
- A NoteChain per trial: a LogEmitter on a fresh anvil emitting `Note(n)` logs, one per
  block, that the trial reorganises (anvil_reorg). It remembers every log it ever held, so
  the verdict knows the final canonical logs and the orphans (`settle()`).

The expected payloads are written here from what was sent and CONTRACT §3, never by the
relayer's decoder.

Errors: ScenarioError (from the emitter) when the chain did not do what was asked.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from devstack.chain.emitter import EmittedLog, Emitter
from devstack.chain.escrow import ScenarioError
from devstack.faults.world import CHAIN_ID, World
from devstack.stack.services import Anvil, start_anvil

BIG_ANVIL_ARGS = ("--gas-limit", "3000000000", "--no-request-size-limit")
BIG_GAS = 2_900_000_000
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _event(name: str, inputs: list[tuple[str, str, bool]], anonymous: bool = False) -> Any:
    return {"type": "event", "name": name, "anonymous": anonymous,
            "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs]}  # fmt: skip


def _topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def _word(value: int | str) -> bytes:
    if isinstance(value, str):  # an address
        return bytes.fromhex(value[2:]).rjust(32, b"\0")
    return value.to_bytes(32, "big")


ODD_ABI = [
    _event("Blob", [("payload", "bytes", False)]),
    _event("Text", [("text", "string", False)]),
    _event(
        "Moved",
        [("from", "address", True), ("to", "address", True), ("amount", "uint256", False)],
        anonymous=True,
    ),
]
NOTE_ABI = [_event("Note", [("n", "uint256", False)])]
BLOB = _topic0("Blob(bytes)")
TEXT = _topic0("Text(string)")
NOTE = _topic0("Note(uint256)")


def cjk(count: int, seed: int) -> str:
    """`count` CJK ideographs (3 bytes each in UTF-8), different for each seed."""
    return "".join(chr(0x4E00 + (i * 7919 + seed * 104729) % 20000) for i in range(count))


def _abi_file(name: str, abi: list[Any]) -> str:
    path = Path(tempfile.mkdtemp(prefix="faults-abi-")) / f"{name}.json"
    path.write_text(json.dumps(abi))
    return str(path)


def _emit(emitter: Emitter, logs: list[tuple[list[str | bytes], bytes]]) -> list[EmittedLog]:
    """LogEmitter.emitLogs with the gas megabytes of data need (one transaction, one block)."""
    topics = [[t if isinstance(t, bytes) else bytes.fromhex(t[2:]) for t in ts] for ts, _ in logs]
    tx = emitter._contract.functions.emitLogs(topics, [d for _, d in logs]).transact(
        {"from": emitter.w3.eth.accounts[0], "gas": BIG_GAS}
    )
    receipt = emitter.w3.eth.wait_for_transaction_receipt(tx, timeout=120)
    if receipt["status"] != 1 or len(receipt["logs"]) != len(logs):
        raise ScenarioError(f"LogEmitter.emitLogs did not emit {len(logs)} logs")
    return [
        EmittedLog(int(e["blockNumber"]), e["blockHash"].to_0x_hex().lower(),
                   e["transactionHash"].to_0x_hex().lower(), int(e["logIndex"]),
                   tuple(t.to_0x_hex().lower() for t in e["topics"]), bytes(e["data"]))
        for e in receipt["logs"]
    ]  # fmt: skip


def payload(w3: Web3, contract: str, log: EmittedLog, event: str, args: Any) -> dict[str, Any]:
    """The §3 message data of one emitted log."""
    block = w3.eth.get_block(log.block_number)
    receipt = w3.eth.get_transaction_receipt(log.transaction_hash)  # type: ignore[arg-type]
    return {
        "event_id": f"{CHAIN_ID}:{log.block_hash}:{log.log_index}",
        "chain_id": CHAIN_ID, "contract": contract, "event": event, "args": args,
        "block_number": log.block_number, "block_hash": log.block_hash,
        "block_timestamp": int(block["timestamp"]), "transaction_hash": log.transaction_hash,
        "transaction_index": int(receipt["transactionIndex"]), "log_index": log.log_index,
        "removed": False,
    }  # fmt: skip


def odd_world(base: World) -> tuple[World, Anvil]:
    """The odd events on an anvil of their own (stop it when done); the world to relay."""
    anvil = start_anvil(extra_args=BIG_ANVIL_ARGS)
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 120}))
        emitter = Emitter.deploy(w3)
        start = int(w3.eth.block_number) + 1
        blob = bytes((i * 131 + 7) % 256 for i in range(600_000))
        texts = [cjk(90_000, seed) for seed in range(4)]
        sent: list[tuple[list[tuple[list[str | bytes], bytes]], list[tuple[str, Any]]]] = [
            ([([BLOB], encode(["bytes"], [blob]))], [("Blob", {"payload": "0x" + blob.hex()})]),
            ([([TEXT], encode(["string"], [t])) for t in texts],
             [("Text", {"text": t}) for t in texts]),
            ([([TEXT], encode(["bytes"], [b"\xff"])), ([TEXT], encode(["bytes"], [b"caf\xc3"])),
              ([TEXT], encode(["string"], ["café ✓"]))],
             [("Text", {"text": "\ufffd"}), ("Text", {"text": "caf\ufffd"}),
              ("Text", {"text": "café ✓"})]),
            ([([_word(ALICE), _word(BOB)], _word(10**21)),
              ([_word(BOB), _word(ALICE)], _word(7))],
             [("Moved", {"from": ALICE, "to": BOB, "amount": str(10**21)}),
              ("Moved", {"from": BOB, "to": ALICE, "amount": "7"})]),
        ]  # fmt: skip
        truth = {}
        for logs, expected in sent:
            for log, (event, args) in zip(_emit(emitter, logs), expected, strict=True):
                p = payload(w3, emitter.address, log, event, args)
                truth[p["event_id"]] = p
        head = int(w3.eth.block_number)
    except BaseException:
        anvil.stop()
        raise
    world = dataclasses.replace(
        base, rpc_url=anvil.rpc_url, contract=emitter.address, start_block=start, head=head,
        truth=truth, abi_uri=_abi_file("odd", ODD_ABI),
    )  # fmt: skip
    return world, anvil


class NoteChain:
    """A fresh anvil with a LogEmitter emitting Note(n), one log per block; it remembers
    every log it held, for the verdict after the trial reorganises it."""

    def __init__(self, base: World) -> None:
        self.base = base
        self.anvil = start_anvil()
        self.w3 = Web3(Web3.HTTPProvider(self.anvil.rpc_url, request_kwargs={"timeout": 60}))
        self.emitter = Emitter.deploy(self.w3)
        self.start = int(self.w3.eth.block_number) + 1
        self.abi_uri = _abi_file("note", NOTE_ABI)
        self.seen: dict[str, dict[str, Any]] = {}
        self.forks: list[int] = []
        self.reorged_at: float | None = None
        self._lock = threading.Lock()
        self._n = 0

    def rpc(self, method: str, params: list[Any]) -> Any:
        answer = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in answer:
            raise ScenarioError(f"{method}: {answer['error']}")
        return answer["result"]

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def notes(self, count: int) -> list[EmittedLog]:
        """`count` Note logs, each in a block of its own (anvil automines)."""
        out = []
        for _ in range(count):
            self._n += 1
            out += self.emitter.emit([([NOTE], _word(self._n))])
        return out

    def raw(self, logs: list[EmittedLog]) -> list[str]:
        return [self.rpc("eth_getRawTransactionByHash", [x.transaction_hash]) for x in logs]

    def canonical(self) -> dict[str, dict[str, Any]]:
        """The chain's Note logs now, as §3 payloads (remembered in `seen`)."""
        logs = self.rpc("eth_getLogs", [{"fromBlock": hex(self.start), "toBlock": "latest",
                                         "address": self.emitter.address}])  # fmt: skip
        out = {}
        for e in logs:
            block_hash = e["blockHash"].lower()
            p = {
                "event_id": f"{CHAIN_ID}:{block_hash}:{int(e['logIndex'], 16)}",
                "chain_id": CHAIN_ID, "contract": to_checksum_address(e["address"]),
                "event": "Note", "args": {"n": str(int(e["data"], 16))},
                "block_number": int(e["blockNumber"], 16), "block_hash": block_hash,
                "block_timestamp": int(e["blockTimestamp"], 16),
                "transaction_hash": e["transactionHash"].lower(),
                "transaction_index": int(e["transactionIndex"], 16),
                "log_index": int(e["logIndex"], 16), "removed": False,
            }  # fmt: skip
            out[p["event_id"]] = p
        with self._lock:
            self.seen.update(out)
        return out

    def reorg(self, from_block: int, moved: list[tuple[str, int]]) -> None:
        """Replace the blocks from `from_block` to the head with new ones holding the raw
        transactions `moved` (each at a block offset from `from_block`)."""
        self.canonical()  # what the chain held until now
        depth = self.head() - from_block + 1
        with self._lock:
            self.forks.append(from_block)
        self.rpc("anvil_reorg", [depth, [[raw, offset] for raw, offset in moved]])
        with self._lock:
            self.reorged_at = time.time()
        self.canonical()

    def settle(self) -> World:
        """The world as the trial left it: the canonical logs and those it orphaned."""
        truth = self.canonical()
        with self._lock:
            orphans = {k: v for k, v in self.seen.items() if k not in truth}
            forks, reorged_at = tuple(self.forks), self.reorged_at
        return self.world(truth, orphans, forks, reorged_at)

    def world(
        self,
        truth: dict[str, dict[str, Any]] | None = None,
        orphans: dict[str, dict[str, Any]] | None = None,
        forks: tuple[int, ...] = (),
        reorged_at: float | None = None,
    ) -> World:
        return dataclasses.replace(
            self.base, rpc_url=self.anvil.rpc_url, contract=self.emitter.address,
            start_block=self.start, head=self.head(), truth=truth or {},
            abi_uri=self.abi_uri, orphans=orphans or {}, forks=forks, reorged_at=reorged_at,
        )  # fmt: skip

    def stop(self) -> None:
        self.anvil.stop()
