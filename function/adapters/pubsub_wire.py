"""The few fields of a Pub/Sub publish, in protobuf's wire format (pure, no protobuf classes).

A run publishes thousands of messages of a few fields each; building them as protobuf
objects, which the client library then wraps in its own proto-plus types and serialises
again, cost a sixth of a busy run's CPU. Written out here they are bytes that go on the
client's own gRPC channel as they are. Field numbers are those of google/pubsub/v1/pubsub.proto:
`PublishRequest` topic = 1, messages = 2; `PubsubMessage` data = 1, attributes = 2 (a map:
entries of key = 1, value = 2), ordering_key = 5; `PublishResponse` message_ids = 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SHORT = [bytes((n,)) for n in range(0x80)]  # one byte: every key, most attribute values
# Longer lengths below 16 KiB as they occur (a message's data, a long attribute): kept, not
# made up front, since all 16,384 cost an idle run 7 ms of its start.
_LENGTHS: dict[int, bytes] = {}


def _length(n: int) -> bytes:
    if n < 0x80:
        return _SHORT[n]
    encoded = _LENGTHS.get(n)
    if encoded is None:
        encoded = _varint(n)
        if n < 1 << 14:
            _LENGTHS[n] = encoded
    return encoded


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, its length, its bytes."""
    return tag + _length(len(payload)) + payload


# Attributes whose values repeat from message to message (a contract's, an event's): their
# encoded entries are kept, a few per contract and event, and reused.
_REPEATING = frozenset(
    ("event", "chain_id", "contract", "removed", "ce-specversion", "ce-source", "ce-type",
     "backfill", "replay")
)  # fmt: skip
_ENTRIES: dict[tuple[str, str], bytes] = {}
_ENTRIES_MAX = 4096


_KEY_HEADS: dict[str, bytes] = {}  # an attribute key's field and its value's tag, made once
_KEY_HEADS_MAX = 1024


def attribute(key: str, value: str) -> bytes:
    """One attribute: a map entry in the message's field 2."""
    head = _KEY_HEADS.get(key)
    if head is None:
        head = field(b"\x0a", key.encode()) + b"\x12"
        if len(_KEY_HEADS) < _KEY_HEADS_MAX:
            _KEY_HEADS[key] = head
    raw = value.encode()
    entry = head + _length(len(raw)) + raw
    return b"\x12" + _length(len(entry)) + entry


def encode_message(data: bytes, attributes: Mapping[str, str], ordering_key: str) -> bytes:
    """One `PubsubMessage`."""
    parts = [b"\x0a", _length(len(data)), data]
    kept = _ENTRIES
    for key, value in attributes.items():
        if key not in _REPEATING:
            parts.append(attribute(key, value))
            continue
        entry = kept.get((key, value))
        if entry is None:
            entry = attribute(key, value)
            if len(kept) < _ENTRIES_MAX:
                kept[(key, value)] = entry
        parts.append(entry)
    if ordering_key:
        parts.append(field(b"\x2a", ordering_key.encode()))
    return b"".join(parts)


def encode_request(topic_path: str, messages: Iterable[bytes]) -> bytes:
    """One `PublishRequest` of already encoded messages."""
    return field(b"\x0a", topic_path.encode()) + b"".join(field(b"\x12", m) for m in messages)


def message_ids(response: bytes) -> list[str]:
    """`PublishResponse.message_ids`, in the order of the request's messages; other fields
    (none today) are skipped by their wire type."""
    ids: list[str] = []
    i = 0
    while i < len(response):
        key, i = _read_varint(response, i)
        kind = key & 7
        if kind == 2:  # length-delimited
            n, i = _read_varint(response, i)
            if key >> 3 == 1:
                ids.append(response[i : i + n].decode())
            i += n
        elif kind == 0:
            _, i = _read_varint(response, i)
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        else:
            raise ValueError(f"a PublishResponse with wire type {kind}")
    return ids


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = buf[i]
        i += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return n, i
