"""Firestore's own count of a document's bytes, pure.

Firestore caps a document at 1 MiB (1,048,576 bytes) and counts it as its documentation's
"Storage size calculations" say: a string is its UTF-8 bytes + 1, bytes their length, a
number, timestamp or reference 8, a boolean or null 1, an array the sum of its values, a map
the sum of its keys (as strings) and values, a document its name + fields + 32. Characters
are not bytes: one CJK character is three, so sizes are always measured encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

DOC_LIMIT = 1_048_576
DOC_OVERHEAD = 32
NAME_ALLOWANCE = 1_600  # the document name: relayers/{RELAYER_ID}/blocks/{id}, with room


def value_size(value: Any) -> int:
    """Bytes Firestore counts for one field value."""
    kind = type(value)  # exact types first: a run sizes every entry of every block record
    if kind is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8"))) + 1
    if kind is int or kind is float:
        return 8
    if kind is dict:
        return fields_size(value)
    if value is None or kind is bool:
        return 1
    if isinstance(value, int | float | datetime):
        return 8
    if isinstance(value, str):
        return len(value.encode("utf-8")) + 1
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, Mapping):
        return fields_size(value)
    if isinstance(value, list | tuple):
        return sum(value_size(v) for v in value)
    raise TypeError(f"no Firestore size for a {type(value).__name__}")


def fields_size(fields: Mapping[str, Any]) -> int:
    """Bytes of a map's keys and values (a document's fields, or a map field)."""
    total = 0
    for k, v in fields.items():
        total += value_size(k if type(k) is str else str(k)) + value_size(v)
    return total


def document_size(fields: Mapping[str, Any]) -> int:
    """Bytes of a whole document, with a generous allowance for its name."""
    return NAME_ALLOWANCE + fields_size(fields) + DOC_OVERHEAD


def doc_size(fields: Mapping[str, Any]) -> int:
    """A stored document's size as Firestore counts it (UTF-8 bytes), name included."""
    return document_size(fields)


def write_batches(
    docs: Sequence[T],
    max_writes: int,
    max_bytes: int,
    size: Callable[[T], int] = lambda doc: doc_size(doc[1]),  # type: ignore[index]
) -> list[list[T]]:
    """Consecutive groups of documents that each fit one Firestore commit (a request is
    capped by size as well as by count: 10 MiB in production, 4 MiB on the emulator).
    `size`: a document's bytes; by default of `(id, fields)` as Firestore counts them."""
    batches: list[list[T]] = []
    used = 0
    for doc in docs:
        doc_bytes = size(doc)
        if not batches or len(batches[-1]) >= max_writes or used + doc_bytes > max_bytes:
            batches.append([])
            used = 0
        batches[-1].append(doc)
        used += doc_bytes
    return batches
