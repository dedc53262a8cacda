"""Review 14 (guards, pass):

- a4a9ba2: `EventSpec.indexed`/`topic_count` cached on a frozen dataclass: a spec altered
  with `dataclasses.replace` (argtopics, creations) computes its own, equality and hash see
  only the fields, and a copy or a pickle round trip of a spec whose values were already
  asked keeps values that fit its parameters;
- 6622164: `block_records` grouped by a (number, hash) tuple makes the records the old
  grouping by `BlockRef` made: two blocks at one height (a reorg's two sides) each their own
  record, in the order first published, merged with each one's own existing entries;
- 56db047: `_published` built positionally puts each value in its named field.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime, timedelta

from function.core.abi import _spec
from function.core.blockrecords import Published, block_records
from function.core.messages import Message
from function.core.model import BlockRecord, BlockRef, Event, RecordEntry
from function.run.dispatch import _published

TRANSFER = {
    "type": "event",
    "name": "Transfer",
    "inputs": [
        {"name": "from", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ],
}


def test_a_replaced_spec_computes_its_own_and_compares_by_fields() -> None:
    spec = _spec(TRANSFER)  # type: ignore[arg-type]
    assert spec.topic_count == 3 and [p.name for p in spec.indexed] == ["from", "to"]
    fewer = dataclasses.replace(spec, params=spec.params[1:])
    assert fewer.topic_count == 2 and [p.name for p in fewer.indexed] == ["to"]
    anonymous = dataclasses.replace(spec, anonymous=True)
    assert anonymous.topic_count == 2
    filtered = dataclasses.replace(spec, arg_topics=((1, frozenset({"0x" + "00" * 32})),))
    assert filtered.topic_count == 3 and filtered != spec
    again = dataclasses.replace(filtered, arg_topics=())
    assert again == spec and hash(again) == hash(spec)  # cached values not compared
    assert "indexed" not in {f.name for f in dataclasses.fields(spec)}


def test_a_copied_spec_keeps_values_that_fit_it() -> None:
    spec = _spec(TRANSFER)  # type: ignore[arg-type]
    _ = spec.topic_count
    for other in (copy.copy(spec), copy.deepcopy(spec)):
        assert other == spec and other.topic_count == 3 and other.indexed == spec.indexed
    try:
        back = pickle.loads(pickle.dumps(spec))
    except (pickle.PicklingError, AttributeError, TypeError):
        return  # its decoders are closures: a spec never crosses a process
    assert back.topic_count == 3


def _p(number: int, block_hash: str, index: int, event_id: str) -> Published:
    return Published(event_id, number, block_hash, index, "0xtx", "Transfer", "m" + event_id,
                     "{}")  # fmt: skip


def _old_records(published: list[Published], existing: dict[BlockRef, BlockRecord],
                 now: datetime) -> list[BlockRecord]:  # fmt: skip
    by_block: dict[BlockRef, list[RecordEntry]] = {}
    for p in published:
        by_block.setdefault(BlockRef(p.block_number, p.block_hash), []).append(p.entry())
    records = []
    for ref, entries in sorted(by_block.items(), key=lambda item: item[0].number):
        before = existing.get(ref)
        merged = {e.event_id: e for e in (before.entries if before else ())}
        merged.update((e.event_id, e) for e in entries)
        ordered = tuple(sorted(merged.values(), key=lambda e: e.log_index))
        records.append(BlockRecord(ref.number, ref.hash, ordered, "run", now,
                                   now + timedelta(days=7)))  # fmt: skip
    return records


def test_two_blocks_at_one_height_each_their_record_as_before() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    published = [_p(6, "0xb", 0, "e1"), _p(5, "0xy", 1, "e2"), _p(5, "0xx", 0, "e3"),
                 _p(5, "0xy", 0, "e4"), _p(5, "0xx", 2, "e5"), _p(4, "0xa", 0, "e6")]  # fmt: skip
    old = BlockRecord(5, "0xx", (_p(5, "0xx", 1, "e0").entry(),), "older", now, None)
    other = BlockRecord(5, "0xz", (_p(5, "0xz", 0, "ez").entry(),), "older", now, None)
    existing = {old.ref: old, other.ref: other}

    got = block_records(published, existing, run_id="run", now=now, ttl_days=7)

    assert got == _old_records(published, existing, now)
    assert [(r.number, r.hash) for r in got] == [(4, "0xa"), (5, "0xy"), (5, "0xx"), (6, "0xb")]
    assert [e.event_id for e in got[2].entries] == ["e3", "e0", "e5"]


def test_a_published_record_holds_each_value_in_its_field() -> None:
    event = Event(event_id="eid", chain_id=1, contract="0xc", name="Transfer", args={},
                  block_number=7, block_hash="0xh", block_timestamp=None,
                  transaction_hash="0xt", transaction_index=0, log_index=3)  # fmt: skip
    p = _published(event, Message(b'{"k":"v"}', {}, ""), "mid")
    assert p == Published(event_id="eid", block_number=7, block_hash="0xh", log_index=3,
                          transaction_hash="0xt", event="Transfer", message_id="mid",
                          data='{"k":"v"}')  # fmt: skip
