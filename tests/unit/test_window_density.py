"""A run's first window sized by what the last run's windows learnt (`planning.Density`):
the pure decisions as tables, then runs over the fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

import function.core.planning as planning
from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.adapters.firestore.relayerdoc import commit_fields, grant_of
from function.core.checkpoint import Commit
from function.core.lease import Lease
from function.core.model import PUBLISHED, BlockRecord, RecordEntry
from function.core.planning import (
    EMPTY_GROWTH,
    FIRST_WINDOW_BLOCKS,
    GROWTH,
    BlockRange,
    Density,
    density_after,
    known_density,
    next_window,
    watch_key,
)
from function.run.relay import Outcome, Relay

KEY = "k1"


def test_a_density_sizes_only_the_range_right_above_it_read_the_same_way() -> None:
    quiet = Density(end=99, blocks=1000, events=0, watched=KEY)
    assert known_density(quiet, 100, KEY) == (1000, 0)
    assert known_density(quiet, 101, KEY) is None  # the checkpoint moved (reset, rewind)
    assert known_density(quiet, 50, KEY) is None
    assert known_density(quiet, 100, "other") is None  # other contracts or events
    assert known_density(None, 100, KEY) is None


def test_windows_without_events_in_a_row_are_one_quiet_stretch() -> None:
    quiet = Density(99, 1000, 0, KEY)
    assert density_after(quiet, BlockRange(100, 179), 0, KEY) == Density(179, 1080, 0, KEY)
    # events end the stretch: the window alone is the density
    assert density_after(quiet, BlockRange(100, 179), 3, KEY) == Density(179, 80, 3, KEY)
    busy = Density(99, 10, 50, KEY)
    assert density_after(busy, BlockRange(100, 139), 0, KEY) == Density(139, 40, 0, KEY)
    assert density_after(busy, BlockRange(100, 139), 9, KEY) == Density(139, 40, 9, KEY)
    # not right after it, or read another way: the window alone
    assert density_after(quiet, BlockRange(150, 159), 0, KEY) == Density(159, 10, 0, KEY)
    assert density_after(quiet, BlockRange(100, 109), 0, "new") == Density(109, 10, 0, "new")
    assert density_after(None, BlockRange(0, 4), 0, KEY) == Density(4, 5, 0, KEY)


@pytest.mark.parametrize(
    ("left", "density", "expected"),
    [
        (100_000, None, FIRST_WINDOW_BLOCKS),  # nothing known: a small first window
        (100_000, Density(99, 10_000, 0, KEY), 100_000),  # a quiet history: one read
        (1_000_000, Density(99, 10_000, 0, KEY), 10_000 * EMPTY_GROWTH),  # but bounded by it
        (100_000, Density(99, 10, 0, KEY), 10 * EMPTY_GROWTH),  # a short one: as in a run
        # busy: about WINDOW_EVENTS at the density remembered, at most GROWTH times wider
        (100_000, Density(99, 100, 10 * planning.WINDOW_EVENTS, KEY), 10),
        (100_000, Density(99, 100, planning.WINDOW_EVENTS, KEY), 100),
        (100_000, Density(99, 100, 1, KEY), 100 * GROWTH),
        (100_000, Density(99, 100, 0, "other"), FIRST_WINDOW_BLOCKS),  # not this watch's
        (100_000, Density(98, 100, 0, KEY), FIRST_WINDOW_BLOCKS),  # not right below
    ],
)
def test_a_first_window_is_the_one_the_last_run_would_have_read_next(
    left: int, density: Density | None, expected: int
) -> None:
    assert next_window(left, known_density(density, 100, KEY)) == expected


def test_the_watch_key_names_what_is_read() -> None:
    a = watch_key(("0xA",), None, ["0xt"], None)
    assert a == watch_key(("0xA",), None, ["0xt"], None) and len(a) == 16
    assert a != watch_key(("0xA", "0xB"), None, ["0xt"], None)
    assert a != watch_key(("0xA",), None, ["0xt", "0xu"], None)


NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_relayer_document_keeps_the_density_and_gives_it_back() -> None:
    density = Density(12_345, 20_000, 0, KEY)
    update = commit_fields({}, NOW, Commit(density=density), {})
    assert update["density"] == {"to_block": 12_345, "blocks": 20_000, "events": 0, "watched": KEY}
    assert "density" not in commit_fields({}, NOW, Commit(), {})  # kept as it is
    lease = Lease("r", NOW, 1, NOW)
    assert grant_of("r", lease, update).density == density
    assert grant_of("r", lease, {}).density is None
    # a hint only: one this code cannot read is no reason to fail a run
    assert grant_of("r", lease, {"density": {"blocks": "x"}}).density is None
    assert grant_of("r", lease, {"density": "?"}).density is None


# -- runs over the fakes -------------------------------------------------------------------


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    chain: FakeChain = field(default_factory=FakeChain)
    state: FakeState = field(default_factory=FakeState)
    sink: FakeSink = field(default_factory=FakeSink)
    reads: list[tuple[int, int]] = field(default_factory=list)  # every eth_getLogs window

    def __post_init__(self) -> None:
        self.sink.clock = self.clock.monotonic
        self.clock.listeners.append(self.sink.deliver)
        original = self.chain.logs_with_headers

        def counted(blocks: BlockRange, *args: Any, **kwargs: Any) -> Any:
            self.reads.append((blocks.start, blocks.end))
            return original(blocks, *args, **kwargs)

        self.chain.__dict__["logs_with_headers"] = counted

    def run(self, **overrides: Any) -> Outcome:
        self.reads.clear()
        return Relay(
            settings=settings(**overrides),
            specs=catalogue(),
            chain=self.chain,
            state=self.state,
            records=self.state,
            sink=self.sink,
            clock=self.clock.utc,
        ).run()

    def widths(self) -> list[int]:
        return [end - start + 1 for start, end in self.reads]

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(a.message.data) for a in self.sink.accepted]


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    with deterministic(w.clock):
        yield w


def test_a_quiet_contract_is_scanned_in_one_read_once_its_history_is_known(world: World) -> None:
    world.chain.mine([0] * 1500)  # blocks 1..1500
    first = world.run(batch_size=1500, start_block=1)
    assert first.summary.to_block == 1500
    assert world.widths() == [5, 80, 1360, 55]  # nothing known yet: 16 times wider each
    assert world.state.density is not None
    assert (world.state.density.end, world.state.density.blocks) == (1500, 1500)
    world.chain.mine([0] * 20_000)
    second = world.run(batch_size=20_000, start_block=1)
    assert second.summary.outcome == "ok" and second.summary.to_block == 21_500
    assert world.widths() == [20_000]  # within 16 times the quiet stretch before it
    assert world.state.density is not None and world.state.density.blocks == 21_500
    world.chain.mine([0] * 3)  # runs of a few blocks go on counting the stretch
    world.run(batch_size=20_000, start_block=1)
    assert world.widths() == [3] and world.state.density.blocks == 21_503


def test_a_contract_turning_busy_after_a_quiet_spell_does_not_load_the_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "WINDOW_EVENTS", 200)
    world.chain.mine([0] * 10)  # blocks 1..10: quiet
    world.run(batch_size=10, start_block=1)
    world.chain.mine([50] * 500)  # blocks 11..510: 50 events each
    done = world.run(batch_size=500, start_block=1)
    assert done.summary.to_block == 510
    blocks = [p["block_number"] for p in world.payloads()]
    assert blocks == [b for b in range(11, 511) for _ in range(50)]
    # the first window is 16 times the 10 quiet blocks, not the 500 of the batch (as a
    # window after 10 quiet blocks inside a run); then 200 events at the density before
    assert world.widths()[:3] == [10 * EMPTY_GROWTH, 4, 4]
    assert max(world.widths()[1:]) == 4
    assert world.state.density == Density(510, 4, 200, world.state.density.watched)
    # the next run starts from that density: about WINDOW_EVENTS in its first window
    world.chain.mine([50] * 20)
    world.run(batch_size=500, start_block=1)
    assert world.widths()[0] == 4


def test_a_busy_contract_s_next_run_starts_at_its_density(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planning, "WINDOW_EVENTS", 200)
    world.chain.mine([10] * 100)  # 10 events a block
    world.run(batch_size=100, start_block=1)
    assert world.state.density is not None
    assert world.state.density.events / world.state.density.blocks == 10
    world.chain.mine([10] * 100)
    world.run(batch_size=100, start_block=1)
    assert world.widths()[0] == 20  # 200 events, not the 5 blocks of a first run


def test_a_density_learnt_for_other_contracts_is_not_used(world: World) -> None:
    world.chain.mine([0] * 1000)
    world.run(batch_size=1000, start_block=1)
    world.chain.mine([0] * 1000)
    other = (*settings().contracts, "0x" + "11" * 20)
    world.run(batch_size=1000, start_block=1, contracts=other)
    assert world.widths()[0] == FIRST_WINDOW_BLOCKS


def test_a_checkpoint_moved_by_a_reorganisation_forgets_the_density(world: World) -> None:
    world.chain.mine([1] + [0] * 999)
    world.run(batch_size=1000, start_block=1)
    world.chain.reorg(3, [0, 0, 0, 0])  # blocks 998..1000 replaced: the run rewinds to 997
    world.chain.mine([0] * 100)
    done = world.run(batch_size=1000, start_block=1)
    assert done.summary.outcome == "ok" and done.summary.extra["reorg"]["ancestor"] == 997
    assert world.reads[0][0] == 998 and world.widths()[0] == FIRST_WINDOW_BLOCKS


def test_a_record_above_the_checkpoint_is_checked_in_the_view_it_was_read_in(
    world: World,
) -> None:
    """The records are asked for while the first window is read: a recorded block whose
    hash the view did not bring (no event of it in the view) is read with its hash."""
    world.chain.mine([0] * 1000)
    world.run(batch_size=1000, start_block=1)  # a quiet history: the next run reads at once
    world.chain.mine([1] + [0] * 20 + [1])  # blocks 1001..1022
    quiet = world.chain.canonical[1002]  # no event, below the range end's hashed blocks
    entry = RecordEntry("31337:x:0", 0, "0x" + "ab" * 32, "Tick", "m1", PUBLISHED, "{}")
    record = BlockRecord(1002, quiet.hash, (entry,), "an-earlier-run", None, None)
    world.state.blocks[record.ref] = record  # published, its block unchanged
    done = world.run(batch_size=100, start_block=1)
    assert done.summary.outcome == "ok" and "reorg" not in done.summary.extra
    assert not any(p["removed"] for p in world.payloads())  # nothing taken for orphaned
    assert world.state.blocks[record.ref].entries[0].state == PUBLISHED
    assert world.reads == [(1001, 1022), (1001, 1022)]  # read again with block 1002's hash
