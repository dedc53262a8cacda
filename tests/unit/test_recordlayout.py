"""Records an older writer left in Firestore, read back through `from_doc` and written again
(`to_doc`): nothing of them may be lost on the rewrite (a retraction marks them removed)."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta

from function.adapters.firestore.blockparts import assembled, stored_parts
from function.adapters.firestore.recordlayout import from_doc, to_doc
from function.core.reorg import marked_removed, retractions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "0x" + "ab" * 32


def _entry(index: int, data: str, **extra: object) -> dict[str, object]:
    return {"event_id": f"1:{HASH}:{index}", "log_index": index, "transaction_hash": "0x01",
            "event": "Tick", "message_id": f"m{index}", "state": "published", "data": data,
            **extra}  # fmt: skip


def _data(index: int) -> str:
    return json.dumps({"event_id": f"1:{HASH}:{index}", "removed": False})


def test_an_old_parted_record_with_compressed_pieces_is_rewritten_whole() -> None:
    big = json.dumps({"event_id": f"1:{HASH}:1", "pad": "x" * 3_000_000, "removed": False})
    packed = zlib.compress(big.encode(), 6)
    half = len(packed) // 2
    head = {"block_number": 7, "block_hash": HASH, "run_id": "old", "recorded_at": T0,
            "expire_at": T0 + timedelta(days=30), "parts": 2}  # fmt: skip
    meta = {k: v for k, v in _entry(1, "").items() if k != "data"}
    docs = [
        {**head, "part": 0, "events": [_entry(0, _data(0)), {**meta, "data_zlib": packed[:half],
                                                              "piece": 0, "pieces": 2}]},
        {**head, "part": 1, "events": [{**meta, "data_zlib": packed[half:], "piece": 1,
                                        "pieces": 2}, _entry(2, _data(2))]},
    ]  # fmt: skip
    record = from_doc(assembled(docs))
    assert [e.log_index for e in record.entries] == [0, 1, 2]
    assert record.entries[1].data == big
    assert [p["event_id"] for p in retractions([record])] == [e.event_id for e in record.entries]
    again = from_doc(assembled(f for _, f in stored_parts(to_doc(marked_removed(record)), T0)))
    assert [(e.event_id, e.state, e.data) for e in again.entries] == [
        (e.event_id, "removed", e.data) for e in record.entries
    ]
    assert (again.run_id, again.expire_at) == ("old", head["expire_at"])


def test_fields_an_entry_has_beyond_the_known_ones_survive_a_rewrite() -> None:
    # The previous layout rewrote entries as the dicts it read ({**entry, "state": ...}):
    # a field it did not know (a newer writer's, or an operator's) stayed.
    entry = _entry(0, _data(0), attributes={"k": "v"})
    fields = {"block_number": 7, "block_hash": HASH, "run_id": "r", "recorded_at": T0,
              "expire_at": T0, "events": [entry]}  # fmt: skip
    _, rewritten = to_doc(marked_removed(from_doc(fields)))
    assert rewritten["events"][0]["state"] == "removed"
    assert rewritten["events"][0].get("attributes") == {"k": "v"}
