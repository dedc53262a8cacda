"""Records an older writer left in Firestore, read back through `from_doc` and written again
(`to_doc`): nothing of them may be lost on the rewrite (a retraction marks them removed)."""

from __future__ import annotations

import json
import random
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


# The layout of lines (issue 13: a value per entry, not a map of seven) -----------------


def _fields(entries: list[dict[str, object]]) -> tuple[str, dict[str, object]]:
    fields = {"block_number": 7, "block_hash": HASH, "run_id": "r", "recorded_at": T0,
              "expire_at": T0, "events": entries}  # fmt: skip
    return "000000000007-" + HASH, fields


def test_a_busy_block_is_one_document_of_lines_and_its_messages_compressed() -> None:
    entries = [_entry(i, _data(i)) for i in range(100)]
    (doc_id, fields), = stored_parts(_fields(entries), T0)  # fmt: skip
    assert doc_id == "000000000007-" + HASH and fields["parts"] == 1
    assert fields["events"][3] == f"1:{HASH}:3 3 0x01 Tick m3 published"
    messages = zlib.decompress(fields["messages_zlib"]).decode().split("\n")
    assert messages == [e["data"] for e in entries]
    assert assembled([fields])["events"] == entries
    assert "messages_zlib" not in assembled([fields])


def test_entries_that_cannot_be_a_line_stay_maps_beside_the_lines() -> None:
    odd = [
        _entry(1, '{"a":"x\ny"}'),  # a raw newline (not compact JSON): the blob splits on it
        _entry(2, _data(2), attributes={"k": "v"}),  # a field beyond the known ones
        {**_entry(3, _data(3)), "event": "Two words"},  # a space would shift the fields
        _entry(4, json.dumps({"pad": "z" * 20_000})),  # large: compressed on its own
    ]
    entries = [_entry(0, _data(0)), *odd, _entry(5, _data(5))]
    docs = stored_parts(_fields(entries), T0)
    stored = [e for _, f in docs for e in f["events"]]
    assert [type(e) for e in stored] == [str, dict, dict, dict, dict, str]
    assert assembled(f for _, f in docs)["events"] == entries


def test_a_document_whose_messages_do_not_read_leaves_its_lines_unrecorded() -> None:
    entries = [_entry(i, _data(i)) for i in range(3)]
    (_, fields), = stored_parts(_fields(entries), T0)  # fmt: skip
    short = zlib.compress("\n".join(e["data"] for e in entries[:2]).encode())  # type: ignore[misc]
    for broken in ({k: v for k, v in fields.items() if k != "messages_zlib"},
                   {**fields, "messages_zlib": b"not zlib"},
                   {**fields, "messages_zlib": short}):  # fmt: skip
        assert assembled([broken])["events"] == []


def test_lines_rewritten_over_an_older_layouts_maps_win_by_their_write() -> None:
    old = {**_fields([_entry(0, _data(0)), _entry(1, _data(1))])[1], "recorded_at": T0}
    marked = [_entry(0, _data(0)), {**_entry(1, _data(1)), "state": "removed"}]
    (_, new), = stored_parts(_fields(marked), T0 + timedelta(days=1))  # fmt: skip
    assert isinstance(new["events"][0], str)
    assert [e["state"] for e in assembled([new, old])["events"]] == ["published", "removed"]


def test_a_block_of_thousands_of_large_messages_is_cut_into_parts_under_the_limit() -> None:
    from function.adapters.firestore.blockparts import PART_BUDGET
    from function.adapters.firestore.docsize import document_size

    rng = random.Random(7)  # hex of random bits: compresses to half, no better
    datas = [json.dumps({"n": i, "pad": f"{rng.getrandbits(16_000):x}"}) for i in range(2_000)]
    entries = [_entry(i, d) for i, d in enumerate(datas)]
    docs = stored_parts(_fields(entries), T0)
    assert len(docs) > 1
    assert all(document_size(f) <= PART_BUDGET for _, f in docs)
    assert [f["part"] for _, f in docs] == list(range(len(docs)))
    assert assembled(f for _, f in reversed(docs))["events"] == entries
    kept = assembled(f for _, f in docs[:-1])["events"]  # the last document never landed
    assert kept == entries[: len(kept)] and 0 < len(kept) < len(entries)


def test_what_a_later_writer_adds_to_a_line_is_kept_on_a_rewrite() -> None:
    # A later version may add fields after the six; this one must not take the event as
    # unrecorded (it would publish it again), nor drop them when it rewrites the block.
    data = _data(0)
    later = {"block_number": 7, "block_hash": HASH, "run_id": "new", "recorded_at": T0,
             "expire_at": T0, "part": 0, "parts": 1,
             "events": [f"1:{HASH}:0 0 0x01 Tick m0 published 1700000000 extra"],
             "messages_zlib": zlib.compress(data.encode())}  # fmt: skip
    record = from_doc(assembled([later]))
    assert [(e.event_id, e.state, e.data) for e in record.entries] == [
        (f"1:{HASH}:0", "published", data)
    ]
    (_, rewritten), = stored_parts(to_doc(marked_removed(record)), T0)  # fmt: skip
    assert rewritten["events"] == [f"1:{HASH}:0 0 0x01 Tick m0 removed 1700000000 extra"]
