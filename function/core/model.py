"""The shapes data takes between the chain, the decoder and Pub/Sub."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

# The states of an event in the processed-event set.
PUBLISHED = "published"
REMOVED = "removed"  # retracted after a reorganisation: it may come back
DEADLETTERED = "deadletter"
DONE = frozenset((PUBLISHED, DEADLETTERED))  # states that must never be sent again


class RawLog(TypedDict, total=False):
    """An `eth_getLogs` entry as the node sends it (hex strings)."""

    address: str
    topics: list[str]
    data: str
    blockNumber: str
    blockHash: str
    blockTimestamp: str
    transactionHash: str
    transactionIndex: str
    logIndex: str
    removed: bool


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block by number and hash: what checkpoints and reorg checks compare."""

    number: int
    hash: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A log of a configured contract that the ABI cannot decode, and why."""

    event_id: str
    contract: str
    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int
    reason: str
    log: RawLog


@dataclass(slots=True)
class Event:
    """One decoded event log, ready to become a message (docs/CONTRACT.md §3)."""

    event_id: str
    chain_id: int
    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    block_timestamp: int | None
    transaction_hash: str
    transaction_index: int
    log_index: int
    removed: bool = False
    # RELAYER_INCLUDE=transaction: the `transaction` object of §3 (`txfacts`), read with the
    # range; None: the message has no `transaction`.
    transaction: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Header:
    """The parts of a block header the relayer uses."""

    number: int
    hash: str
    timestamp: int

    @property
    def ref(self) -> BlockRef:
        return BlockRef(self.number, self.hash)


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """One event in a block record of the processed-event set (docs/CONTRACT.md §4)."""

    event_id: str
    log_index: int
    transaction_hash: str
    event: str
    message_id: str
    state: str  # PUBLISHED, DEADLETTERED or REMOVED
    data: str  # the message data, UTF-8 JSON: a retraction is built from it
    # What else the stored entry holds (a newer writer's fields, an operator's): kept as it
    # is, so a rewrite (a retraction marking it removed) loses nothing.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """What the processed-event set holds of one relayed block with selected events."""

    number: int
    hash: str
    entries: tuple[RecordEntry, ...]  # in log order
    run_id: str
    recorded_at: datetime | None
    expire_at: datetime | None

    @property
    def ref(self) -> BlockRef:
        return BlockRef(self.number, self.hash)


def unique_logs(logs: Sequence[RawLog]) -> list[RawLog]:
    """The logs without repeats of one (blockHash, logIndex), first kept. The answer's check
    has already refused two *different* logs at one index, so what goes is an exact copy."""
    seen: set[tuple[str, int]] = set()
    kept: list[RawLog] = []
    for entry in logs:
        key = (entry["blockHash"].lower(), int(entry["logIndex"], 16))
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


def in_chain_order(logs: Sequence[RawLog]) -> list[RawLog]:
    """The logs of one view (several answers merged) each once, by block and log index."""
    kept = unique_logs(logs)
    kept.sort(key=chain_position)
    return kept


def chain_position(entry: RawLog) -> tuple[int, int]:
    """A log's place in the chain: its block, then its index there."""
    return int(entry["blockNumber"], 16), int(entry["logIndex"], 16)
