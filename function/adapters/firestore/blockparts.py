"""A block record in Firestore documents under the 1 MiB limit, and back (pure).

Pub/Sub takes messages up to 10 MB, Firestore documents up to 1 MiB: every event Pub/Sub
accepted must still be recordable, or the record write fails after publishing and every run
publishes the chunk again. So a record is stored as follows, sizes measured in UTF-8 bytes
as Firestore counts them (`docsize`):
- an entry whose message `data` is at most INLINE_DATA_BYTES keeps it as text, readable in
  the console;
- a larger one keeps it zlib-compressed in a bytes field, `data_zlib`;
- compressed data longer than PIECE_BYTES is cut into pieces (`piece` i of `pieces` n), each
  stored with the entry's other fields, so a reader that only needs states has them in any
  piece;
- entries and pieces fill documents in log order: `{id}`, `{id}-part1`, `{id}-part2`, ...
  each with `part` and `parts`.
A reader takes every document of the block. An entry counts only when all its pieces are
there (a write cut short by a crash leaves it out: its event is then published again and
recorded whole, a duplicate §7.4 allows since the checkpoint did not pass its block). When a
block was written more than once, the later write's fields win (`recorded_at`); parts beyond
a later write's count are left to expire (their entries are in the later write too).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from function.adapters.firestore.docsize import DOC_LIMIT, document_size, value_size
from function.adapters.firestore.recordlayout import DocRecord

PART_BUDGET = DOC_LIMIT - 48_576  # what one document may hold: 1 MiB less a margin
INLINE_DATA_BYTES = 16_384  # larger message data is stored compressed
PIECE_BYTES = 480_000  # compressed data is cut into pieces this long: two fit a document
_DATA_FIELDS = ("data", "data_zlib", "piece", "pieces")


def _stored(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What one entry becomes in the documents: itself, compressed, or pieces."""
    raw = str(entry["data"]).encode("utf-8")
    if len(raw) <= INLINE_DATA_BYTES:
        return [dict(entry)]
    meta = {k: v for k, v in entry.items() if k not in _DATA_FIELDS}
    packed = zlib.compress(raw, 6)
    if len(packed) <= PIECE_BYTES:
        return [{**meta, "data_zlib": packed}]
    count = math.ceil(len(packed) / PIECE_BYTES)
    return [
        {**meta, "data_zlib": packed[i * PIECE_BYTES : (i + 1) * PIECE_BYTES], "piece": i,
         "pieces": count}
        for i in range(count)
    ]  # fmt: skip


def stored_parts(record: DocRecord, written_at: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The documents (id, fields) that hold one block record."""
    base, fields = record
    head = {k: v for k, v in fields.items() if k != "events"}
    head.update(recorded_at=written_at, part=0, parts=0, events=[])
    budget = PART_BUDGET - document_size(head)
    parts: list[list[dict[str, Any]]] = [[]]
    used = 0
    for entry in fields.get("events", []):
        for item in _stored(entry):
            size = value_size(item)
            if parts[-1] and used + size > budget:
                parts.append([])
                used = 0
            parts[-1].append(item)
            used += size
    return [
        (base if i == 0 else f"{base}-part{i}", {**head, "events": items, "part": i,
                                               "parts": len(parts)})
        for i, items in enumerate(parts)
    ]  # fmt: skip


def _written(doc: Mapping[str, Any]) -> tuple[Any, int]:
    return doc.get("recorded_at") or datetime.min.replace(tzinfo=UTC), int(doc.get("part") or 0)


def assembled(docs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One block's record from its stored documents: every complete entry with its `data`
    as text, in log order; the block's fields as its latest write left them."""
    ordered = sorted(docs, key=_written)
    meta: dict[str, dict[str, Any]] = {}
    whole: dict[str, str] = {}
    pieces: dict[str, dict[int, bytes]] = {}
    counts: dict[str, int] = {}
    for doc in ordered:
        for item in doc.get("events", []):
            event_id = str(item["event_id"])
            meta[event_id] = {k: v for k, v in item.items() if k not in _DATA_FIELDS}
            if "data" in item:
                whole[event_id] = str(item["data"])
            elif "piece" not in item:
                whole[event_id] = _inflate(item["data_zlib"])
            else:
                pieces.setdefault(event_id, {})[int(item["piece"])] = bytes(item["data_zlib"])
                counts[event_id] = int(item["pieces"])
    for event_id, got in pieces.items():
        if event_id not in whole and len(got) == counts[event_id]:
            try:
                whole[event_id] = _inflate(b"".join(got[i] for i in range(counts[event_id])))
            except zlib.error:
                continue  # pieces of writes that cut the data differently: not complete
    events = [{**meta[i], "data": whole[i]} for i in meta if i in whole]
    events.sort(key=lambda e: int(e["log_index"]))
    fields = {k: v for k, v in (ordered[-1] if ordered else {}).items()}
    for key in ("part", "parts"):
        fields.pop(key, None)
    fields["events"] = events
    return fields


def _inflate(packed: Any) -> str:
    return zlib.decompress(bytes(packed)).decode("utf-8")
