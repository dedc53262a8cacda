"""Block documents straight into Firestore's protobuf, for the one write that is big.

A run records every event it publishes, and the client library encodes a document through
proto-plus wrappers, a Python object per value: measured on the bench chain (20,000 events),
that encoding took more of a run's time than decoding the logs. Here the same `Write` is
filled in place in the underlying protobuf message (upb, in C), about 19 times faster for a
block of 100 entries; `tests/unit/test_firestore_wire.py` checks that it is byte for byte what
the library builds for the values block records hold.

Only what a plain `set` (no merge, no sentinels) of those values needs is here; every other
write goes through the library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.cloud.firestore_v1.types import write

_Write = write.Write.pb()
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a field path the library leaves as it is


def set_write(path: str, fields: Mapping[str, Any]) -> write.Write:
    """The `Write` of `batch.set(reference, fields)`: the whole document replaced."""
    pb = _Write()
    pb.update.name = path
    _fill_map(pb.update.fields, fields)
    wrapped: write.Write = write.Write.wrap(pb)
    return wrapped


def update_write(path: str, fields: Mapping[str, Any], update_time: datetime) -> write.Write | None:
    """The `Write` of `batch.update(reference, fields, option=last_update_time)`: each
    top-level field replaced whole, only if the document was last updated at `update_time`.
    None when the library must build it (a dotted or quoted field path, a sentinel such as
    `Increment`): a checkpoint commit's fields (128 recent blocks, the summary) cost the
    library's encoding ~10 ms a commit."""
    if not all(type(k) is str and _PLAIN_KEY.fullmatch(k) for k in fields):
        return None
    pb = _Write()
    pb.update.name = path
    try:
        _fill_map(pb.update.fields, fields)
    except TypeError:
        return None  # a sentinel: the library turns it into a transform
    pb.update_mask.field_paths.extend(sorted(fields))
    # In microseconds, as the library's option sends it (Firestore's own precision).
    pb.current_document.update_time.FromDatetime(update_time)
    wrapped: write.Write = write.Write.wrap(pb)
    return wrapped


def _fill_map(target: Any, fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        _fill(target[key], value)


def _fill(v: Any, value: Any) -> None:
    """`value` into the protobuf `Value` `v`, as `_helpers.encode_value` would."""
    kind = type(value)
    if kind is str:
        v.string_value = value
    elif kind is int:
        v.integer_value = value
    elif kind is dict:
        if not value:
            v.map_value.SetInParent()
        _fill_map(v.map_value.fields, value)
    elif kind is list or kind is tuple:
        values = v.array_value.values
        if not value:
            v.array_value.SetInParent()
        for item in value:
            _fill(values.add(), item)
    elif value is None:
        v.null_value = 0
    elif kind is bool:
        v.boolean_value = value
    elif kind is float:
        v.double_value = value
    elif kind is bytes:
        v.bytes_value = value
    elif hasattr(value, "timestamp_pb"):  # read from Firestore: nanoseconds kept
        v.timestamp_value.CopyFrom(value.timestamp_pb())
    elif isinstance(value, datetime):
        v.timestamp_value.FromDatetime(value)
    elif isinstance(value, Mapping):
        v.map_value.SetInParent()
        _fill_map(v.map_value.fields, value)
    else:
        raise TypeError(f"no Firestore value for a {kind.__name__} in a block record")
