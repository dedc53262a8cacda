"""The processed-event set's documents (docs/CONTRACT.md §4), built without I/O.

One record per relayed block with selected events, id `{number:012d}-{hash}`: writes stay
proportional to blocks, and the id's order is the chain's, so one range query reads a
chunk's records. The message bytes are kept so that a reorganisation can republish the
event as a retraction after the node has forgotten the log. A record is built here whole
(every entry with its `data` as text); `blockparts` stores it in as many documents as
Firestore's 1 MiB limit needs and reads it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from function.core.model import PUBLISHED

BlockRecord = tuple[str, dict[str, Any]]  # (block's base id, fields with whole entries)


@dataclass(frozen=True, slots=True)
class Published:
    """An event Pub/Sub accepted: what its record needs."""

    event_id: str
    block_number: int
    block_hash: str
    log_index: int
    transaction_hash: str
    event: str
    message_id: str
    data: str  # the message data, UTF-8 JSON
    state: str = PUBLISHED  # or DEADLETTERED for a log sent to the dead-letter topic


def block_doc_id(number: int, block_hash: str, part: int = 0) -> str:
    """`{number:012d}-{hash}`, with `-part{n}` for the parts after the first of a huge block."""
    base = f"{number:012d}-{block_hash}"
    return base if part == 0 else f"{base}-part{part}"


def range_bounds(start: int, end: int) -> tuple[str, str]:
    """Document ids bounding blocks start..end: [lower, upper)."""
    return f"{start:012d}", f"{end + 1:012d}"


def entry_of(p: Published) -> dict[str, Any]:
    return {
        "event_id": p.event_id,
        "log_index": p.log_index,
        "transaction_hash": p.transaction_hash,
        "event": p.event,
        "message_id": p.message_id,
        "state": p.state,
        "data": p.data,
    }


def block_documents(
    published: Iterable[Published],
    existing: Mapping[str, Sequence[dict[str, Any]]],
    *,
    run_id: str,
    now: datetime,
    ttl_days: float,
) -> list[BlockRecord]:
    """(base id, fields) for every block with newly published events, merged with its
    existing entries (`existing` maps a block's base id to the entries already recorded)."""
    by_block: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for p in published:
        by_block.setdefault((p.block_number, p.block_hash), []).append(entry_of(p))
    records: list[BlockRecord] = []
    expire_at = now + timedelta(days=ttl_days)
    for (number, block_hash), entries in sorted(by_block.items()):
        merged = {e["event_id"]: e for e in existing.get(block_doc_id(number, block_hash), [])}
        merged.update((e["event_id"], e) for e in entries)
        ordered = sorted(merged.values(), key=lambda e: int(e["log_index"]))
        records.append(
            (
                block_doc_id(number, block_hash),
                {
                    "block_number": number,
                    "block_hash": block_hash,
                    "events": ordered,
                    "run_id": run_id,
                    "recorded_at": now,
                    "expire_at": expire_at,
                },
            )
        )
    return records


def base_id(doc_id: str) -> str:
    """The block's id without a `-partN` suffix."""
    head, sep, tail = doc_id.rpartition("-part")
    return head if sep and tail.isdigit() else doc_id
