"""The fast block-document encoding is exactly what the Firestore library would send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import write

from function.adapters.firestore.blockparts import stored_parts
from function.adapters.firestore.recordlayout import to_doc
from function.adapters.firestore.wire import set_write
from function.core.model import BlockRecord, RecordEntry

PATH = "projects/p/databases/d/documents/relayers/r/blocks/000000000005-0xab"


def library(fields: dict[str, Any]) -> bytes:
    (pb,) = _helpers.pbs_for_set_no_merge(PATH, fields)
    return write.Write.pb(pb).SerializeToString(deterministic=True)


def ours(fields: dict[str, Any]) -> bytes:
    return write.Write.pb(set_write(PATH, fields)).SerializeToString(deterministic=True)


VALUES: list[Any] = [
    "", "text", "ünïcödé 漢字", 0, 1, -5, 2**63 - 1, -(2**63), True, False, None, 0.5, -1e300,
    b"", b"\x00\xff", [], [1, "a", None], {}, {"a": {"b": [{"c": 1}]}},
    datetime(2026, 12, 1, 15, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 12, 1, 17, 0, tzinfo=timezone(timedelta(hours=2))),
    DatetimeWithNanoseconds(2026, 1, 2, 3, 4, 5, nanosecond=123456789, tzinfo=UTC),
]  # fmt: skip


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_each_kind_of_value_is_encoded_as_the_library_does(value: Any) -> None:
    assert ours({"field": value}) == library({"field": value})


def test_a_whole_block_record_is_encoded_as_the_library_does() -> None:
    now = datetime.now(UTC)
    entries = tuple(
        RecordEntry(f"31337:0xab:{i}", i, "0xcd", "Created", str(10**15 + i), "published",
                    '{"x": "' + "y" * (40_000 if i == 3 else 50) + '"}', {"kept": i})
        for i in range(30)
    )  # fmt: skip
    record = BlockRecord(5, "0xab", entries, "run", now, now + timedelta(days=30))
    for _, fields in stored_parts(to_doc(record), now):
        assert ours(fields) == library(fields)


def test_a_value_block_records_never_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="object"):
        set_write(PATH, {"field": object()})
    with pytest.raises(ValueError):
        set_write(PATH, {"field": 2**63})


# Conditional updates (`conditional.put`): a checkpoint commit's fields ------------------


def library_update(fields: dict[str, Any], update_time: Any) -> bytes:
    from google.cloud.firestore_v1._helpers import LastUpdateOption

    (pb,) = _helpers.pbs_for_update(PATH, fields, LastUpdateOption(update_time))
    return write.Write.pb(pb).SerializeToString(deterministic=True)


def ours_update(fields: dict[str, Any], update_time: Any) -> bytes | None:
    from function.adapters.firestore.wire import update_write

    fast = update_write(PATH, fields, update_time)
    return None if fast is None else write.Write.pb(fast).SerializeToString(deterministic=True)


UPDATED = [
    DatetimeWithNanoseconds(2026, 1, 2, 3, 4, 5, nanosecond=123456789, tzinfo=UTC),
    datetime(2026, 12, 1, 15, 0, 0, 123456, tzinfo=UTC),
]


@pytest.mark.parametrize("update_time", UPDATED, ids=["nanoseconds", "datetime"])
def test_a_commits_update_is_encoded_as_the_library_does(update_time: Any) -> None:
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "next_block": 1234,
        "checkpoint_block_hash": "0x" + "ab" * 32,
        "recent_blocks": [{"number": n, "hash": f"0x{n:064x}"} for n in range(128)],
        "totals": {"events_published": 20_000, "runs": 3, "outcomes": {"ok": 2}},
        "lease": {"owner": "run-1", "expires_at": now, "fence": 7},
        "last_commit": {"run_id": "run-1", "fence": 7, "id": "0123456789abcdef"},
        "updated_at": now,
        "children": None,
        "empty": {},
    }
    assert ours_update(fields, update_time) == library_update(fields, update_time)


def test_updates_the_fast_path_cannot_encode_go_to_the_library() -> None:
    from google.cloud import firestore

    stamp = UPDATED[0]
    assert ours_update({"lease.fence": 3}, stamp) is None  # a nested field path
    assert ours_update({"totals": {"runs": firestore.Increment(1)}}, stamp) is None
    assert ours_update({"at": firestore.SERVER_TIMESTAMP}, stamp) is None
    assert ours_update({"gone": firestore.DELETE_FIELD}, stamp) is None
