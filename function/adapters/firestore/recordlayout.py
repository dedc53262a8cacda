"""How a block record is laid out in Firestore: `relayers/{id}/blocks/{number:012d}-{hash}`.

The id sorts in chain order only below block 10**12 (12 digits), so ranges are queried by
the `block_number` field every document of a record carries. `blockparts` stores a record's
fields in as many documents as the 1 MiB limit needs.
"""

from __future__ import annotations

from typing import Any

from function.core.model import BlockRecord, RecordEntry

DocRecord = tuple[str, dict[str, Any]]  # (the block's base id, fields with whole entries)


def block_doc_id(number: int, block_hash: str, part: int = 0) -> str:
    """`{number:012d}-{hash}`, with `-part{n}` for the parts after the first of a huge block."""
    base = f"{number:012d}-{block_hash}"
    return base if part == 0 else f"{base}-part{part}"


def base_id(doc_id: str) -> str:
    """The block's id without a `-partN` suffix."""
    head, sep, tail = doc_id.rpartition("-part")
    return head if sep and tail.isdigit() else doc_id


def to_doc(record: BlockRecord) -> DocRecord:
    return (
        block_doc_id(record.number, record.hash),
        {
            "block_number": record.number,
            "block_hash": record.hash,
            "events": [_entry_fields(e) for e in record.entries],
            "run_id": record.run_id,
            "recorded_at": record.recorded_at,
            "expire_at": record.expire_at,
        },
    )


_ENTRY_FIELDS = (
    "event_id",
    "log_index",
    "transaction_hash",
    "event",
    "message_id",
    "state",
    "data",
)


def _entry_fields(e: RecordEntry) -> dict[str, Any]:
    return {
        **e.extra,
        "event_id": e.event_id,
        "log_index": e.log_index,
        "transaction_hash": e.transaction_hash,
        "event": e.event,
        "message_id": e.message_id,
        "state": e.state,
        "data": e.data,
    }


def from_doc(fields: dict[str, Any]) -> BlockRecord:
    """A record from its (reassembled) fields; what an older writer left out reads empty."""
    entries = tuple(
        RecordEntry(
            str(e["event_id"]),
            int(e.get("log_index") or 0),
            str(e.get("transaction_hash") or ""),
            str(e.get("event") or ""),
            str(e.get("message_id") or ""),
            str(e.get("state")),
            str(e.get("data") or ""),
            {k: v for k, v in e.items() if k not in _ENTRY_FIELDS},
        )
        for e in fields.get("events") or []
    )
    return BlockRecord(
        int(fields["block_number"]),
        str(fields["block_hash"]),
        entries,
        str(fields.get("run_id") or ""),
        fields.get("recorded_at"),
        fields.get("expire_at"),
    )
