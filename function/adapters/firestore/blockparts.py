"""A block record in Firestore documents under the 1 MiB limit, and back (pure).

Pub/Sub takes messages up to 10 MB, Firestore documents up to 1 MiB: every event Pub/Sub
accepted must still be recordable, or the record write fails after publishing and every run
publishes the chunk again. So a record is stored as follows, sizes measured in UTF-8 bytes
as Firestore counts them (`docsize`):
- an entry is one line of text in `events`, `{event_id} {log_index} {transaction_hash}
  {event} {message_id} {state}`: what an operator looks for in the console, and one value
  instead of a map of seven (Firestore's cost, and the emulator's, is per value: writing a
  busy block's record took five times as long as a map per entry);
- the message data of a document's lines is kept beside them, zlib-compressed, one message a
  line of `messages_zlib` in the lines' order (compact JSON has no raw newline);
- an entry that cannot be a line (data over INLINE_DATA_BYTES or holding a newline, a field
  holding a space, fields an older or newer writer added) is a map as before: its data as
  text, or zlib-compressed in `data_zlib` when large, cut into pieces (`piece` i of
  `pieces` n) when longer than PIECE_BYTES, each with the entry's other fields, so a reader
  that only needs states has them in any piece;
- entries and pieces fill documents in log order: `{id}`, `{id}-part1`, `{id}-part2`, ...
  each with `part` and `parts`.
A reader takes every document of the block; each document reads on its own. An entry
counts only when all its pieces are there (a write cut short by a crash leaves it out: its
event is then published again and recorded whole, a duplicate §7.4 allows since the
checkpoint did not pass its block). When a block was written more than once, the later
write's fields win (`recorded_at`); parts beyond a later write's count are left to expire
(their entries are in the later write too). Documents of the earlier layout (a map per
entry, each with its `data`) read the same.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from function.adapters.firestore.docsize import DOC_LIMIT, document_size, value_size
from function.adapters.firestore.recordlayout import DocRecord

PART_BUDGET = DOC_LIMIT - 48_576  # what one document may hold: 1 MiB less a margin
INLINE_DATA_BYTES = 16_384  # larger message data is stored compressed, in its own entry
PIECE_BYTES = 480_000  # compressed data is cut into pieces this long: two fit a document
MESSAGES = "messages_zlib"  # a document's field: the data of its lines
LINE_FIELDS = ("event_id", "log_index", "transaction_hash", "event", "message_id", "state")
LINE_MORE = "line_more"  # what a line holds after the six fields (a later writer's)
_ENTRY_KEYS = frozenset((*LINE_FIELDS, "data"))
_DATA_FIELDS = ("data", "data_zlib", "piece", "pieces")
_LEVEL = 1  # messages of one contract compress ~10 times even so, at ~250 MB/s


def _line(entry: Mapping[str, Any]) -> str | None:
    """The entry as a line of `events`, or None when it must stay a map."""
    keys = entry.keys()
    more = entry.get(LINE_MORE)
    if not (keys == _ENTRY_KEYS or (keys == _ENTRY_KEYS | {LINE_MORE} and type(more) is str)):
        return None
    if type(entry["log_index"]) is not int:
        return None
    data = entry["data"]
    if type(data) is not str or "\n" in data or _utf8_len(data) > INLINE_DATA_BYTES:
        return None
    line = (
        f"{entry['event_id']} {entry['log_index']} {entry['transaction_hash']} "
        f"{entry['event']} {entry['message_id']} {entry['state']}"
    )
    if line.count(" ") != 5 or "\n" in line:
        return None
    if more is None:
        return line
    return f"{line} {more}" if more and "\n" not in more else None


def _parsed(line: str) -> dict[str, Any] | None:
    """A line's entry (without its data), or None when it is not one. Tokens after the six
    (a later writer's) are kept whole in `line_more`, and written back after them."""
    tokens = line.split(" ", 6)
    if len(tokens) < 6 or not tokens[1].isdigit():
        return None
    event_id, log_index, transaction_hash, event, message_id, state = tokens[:6]
    entry = {"event_id": event_id, "log_index": int(log_index),
             "transaction_hash": transaction_hash, "event": event, "message_id": message_id,
             "state": state}  # fmt: skip
    if len(tokens) == 7:
        entry[LINE_MORE] = tokens[6]
    return entry


def _packed(datas: list[str]) -> bytes:
    """A document's `messages_zlib`: its lines' messages, one a line."""
    return zlib.compress("\n".join(datas).encode("utf-8"), _LEVEL)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _packed_bound(raw: int) -> int:
    """The most zlib can make of `raw` bytes (deflateBound, with room)."""
    return raw + (raw >> 12) + (raw >> 14) + 64


def _stored(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What one entry that is not a line becomes: itself, compressed, or pieces."""
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


class _Part:
    """One document's entries: lines with their data, and maps."""

    def __init__(self) -> None:
        self.events: list[str | dict[str, Any]] = []
        self.data: list[str] = []
        self.size = 0  # as Firestore counts it, the data at its compressed bound
        self.raw = 0  # the data's bytes, newlines included

    def room(self, size: int, raw: int, budget: int) -> bool:
        if not self.events:
            return True
        return self.size + size + _packed_bound(self.raw + raw) - _packed_bound(self.raw) <= budget

    def add_line(self, line: str, data: str) -> None:
        raw = _utf8_len(data) + 1
        self.size += value_size(line) + _packed_bound(self.raw + raw) - _packed_bound(self.raw)
        self.events.append(line)
        self.data.append(data)
        self.raw += raw

    def add_map(self, item: dict[str, Any], size: int) -> None:
        self.events.append(item)
        self.size += size

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"events": self.events}
        if self.data:
            fields[MESSAGES] = _packed(self.data)
        return fields


def stored_parts(record: DocRecord, written_at: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The documents (id, fields) that hold one block record."""
    base, fields = record
    head = {k: v for k, v in fields.items() if k != "events"}
    head.update(recorded_at=written_at, part=0, parts=0, events=[])
    budget = PART_BUDGET - document_size(head) - value_size(MESSAGES)
    entries = fields.get("events", [])
    lines = [_line(e) for e in entries]
    if all(line is not None for line in lines):
        one = _one_document(lines, [e["data"] for e in entries], budget)  # type: ignore[arg-type]
        if one is not None:
            return [(base, {**head, **one, "parts": 1})]
    parts = [_Part()]
    for entry, line in zip(entries, lines, strict=True):
        if line is not None:
            data = entry["data"]
            if not parts[-1].room(value_size(line), _utf8_len(data) + 1, budget):
                parts.append(_Part())
            parts[-1].add_line(line, data)
            continue
        for item in _stored(entry):
            size = value_size(item)
            if not parts[-1].room(size, 0, budget):
                parts.append(_Part())
            parts[-1].add_map(item, size)
    return [
        (base if i == 0 else f"{base}-part{i}", {**head, **part.fields(), "part": i,
                                               "parts": len(parts)})
        for i, part in enumerate(parts)
    ]  # fmt: skip


def _one_document(lines: list[str], datas: list[str], budget: int) -> dict[str, Any] | None:
    """A record of lines alone in one document, when it fits compressed: a busy block's
    messages are megabytes of text, but compress about ten times."""
    size = sum(value_size(line) for line in lines)
    if size > budget:
        return None
    packed = _packed(datas) if datas else None
    if packed is not None and size + len(packed) > budget:
        return None
    return {"events": lines, **({MESSAGES: packed} if packed is not None else {})}


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
        datas = _messages(doc)
        for item in doc.get("events", []):
            if isinstance(item, str):
                entry = _parsed(item)
                data = next(datas, None) if datas is not None else None
                if entry is not None and data is not None:
                    meta[entry["event_id"]] = entry
                    whole[entry["event_id"]] = data
                continue
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
    for key in ("part", "parts", MESSAGES):
        fields.pop(key, None)
    fields["events"] = events
    return fields


def _messages(doc: Mapping[str, Any]) -> Iterator[str] | None:
    """The data of a document's lines, in their order; None when they cannot be read (a
    document not written whole: its lines count as unrecorded)."""
    lines = sum(1 for item in doc.get("events", []) if isinstance(item, str))
    if not lines:
        return None
    try:
        datas = _inflate(doc[MESSAGES]).split("\n")
    except (KeyError, TypeError, zlib.error, UnicodeDecodeError):
        return None
    return iter(datas) if len(datas) == lines else None


def _inflate(packed: Any) -> str:
    return zlib.decompress(bytes(packed)).decode("utf-8")
