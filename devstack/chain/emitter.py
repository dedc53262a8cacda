"""Deploy `LogEmitter` on anvil and make it emit exactly the logs a test asks for.

The relayer is tested against logs no well-behaved Solidity event produces (invalid UTF-8,
non-zero padding, anonymous events, one topic0 with several layouts, huge payloads): the
emitter writes raw topics and data, and the test pairs it with whatever ABI it studies. The
expected values come from what the test sent, never from the relayer's decoder.

Errors: ScenarioError (the chain did not do what was asked).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3

from devstack.chain.escrow import ScenarioError

ARTIFACT_PATH = Path(__file__).resolve().parents[2] / "contracts" / "build" / "LogEmitter.json"


@functools.cache
def load_emitter_artifact() -> dict[str, Any]:
    artifact: dict[str, Any] = json.loads(ARTIFACT_PATH.read_text(encoding="utf-8"))
    return artifact


@dataclass(frozen=True)
class EmittedLog:
    """Where one emitted log landed, and what was sent."""

    block_number: int
    block_hash: str  # 0x lowercase
    transaction_hash: str  # 0x lowercase
    log_index: int
    topics: tuple[str, ...]
    data: bytes


class Emitter:
    """A deployed LogEmitter, sending from anvil's first unlocked account."""

    def __init__(self, w3: Web3, address: ChecksumAddress) -> None:
        self.w3 = w3
        self.address = address
        self._contract = w3.eth.contract(address=address, abi=load_emitter_artifact()["abi"])

    @classmethod
    def deploy(cls, w3: Web3) -> Emitter:
        artifact = load_emitter_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx_hash = factory.constructor().transact({"from": w3.eth.accounts[0]})
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        if receipt["status"] != 1 or receipt["contractAddress"] is None:
            raise ScenarioError(f"LogEmitter deployment failed: {tx_hash.to_0x_hex()}")
        return cls(w3, to_checksum_address(receipt["contractAddress"]))

    def emit(
        self, logs: Sequence[tuple[Sequence[str | bytes], bytes]], gas: int = 29_000_000
    ) -> list[EmittedLog]:
        """Emit `(topics, data)` logs in one transaction (one block, consecutive indexes);
        megabytes of data need more `gas` (and an anvil started with a higher limit)."""
        topics = [[_word(t) for t in ts] for ts, _ in logs]
        data = [d for _, d in logs]
        tx_hash = self._contract.functions.emitLogs(topics, data).transact(
            {"from": self.w3.eth.accounts[0], "gas": gas}
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1 or len(receipt["logs"]) != len(logs):
            raise ScenarioError(f"LogEmitter.emitLogs did not emit {len(logs)} logs: {tx_hash!r}")
        return [
            EmittedLog(
                block_number=int(entry["blockNumber"]),
                block_hash=entry["blockHash"].to_0x_hex().lower(),
                transaction_hash=entry["transactionHash"].to_0x_hex().lower(),
                log_index=int(entry["logIndex"]),
                topics=tuple(t.to_0x_hex().lower() for t in entry["topics"]),
                data=bytes(entry["data"]),
            )
            for entry in receipt["logs"]
        ]


def _word(topic: str | bytes) -> bytes:
    raw = (
        bytes.fromhex(topic[2:] if topic.startswith("0x") else topic)
        if isinstance(topic, str)
        else topic
    )
    if len(raw) != 32:
        raise ValueError(f"a topic is 32 bytes, got {len(raw)}")
    return raw
