"""Review 16 (RELAYER_FACTORY), hostile: the windows of one read (`fetching._read_logs`) where
a child is found and its own logs asked for again: limit-windows, refusals and
reorganisations between the creation read and the follow-up read, duplicate creations, and
where creations are looked for (START_BLOCK)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest
from test_review16_factory_run import (
    CREATED,
    CREATED_ABI,
    FACTORY,
    child,
    clock,
    created,
    relay_of,
    relayed,
    sink_for,
    tick,
    until_idle,
)

import function.core.watch as watch_module
from devstack.sim.clock import FakeClock
from devstack.sim.events import ABI, TOPIC0
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.abi import event_catalogue
from function.core.argfilters import parse_arg_filters
from function.core.argtopics import apply_arg_filters
from function.core.catalogue import TopicQuery
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.core.provider_errors import Failure, FailureKind
from function.errors import RangeTooLargeError

__all__ = ["clock"]  # the fixture, shared


class FollowUps(FakeChain):
    """Acts on the follow-up reads (an address list without the factory: the new
    children's logs asked for again): refuses the first as too large a range, or
    reorganises the chain just before answering it."""

    refuse: int = 0
    reorg_with: Sequence[int] | None = None
    follow_ups: int = 0

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        if addresses is not None and FACTORY not in addresses:
            self.follow_ups += 1
            if self.refuse:
                self.refuse -= 1
                raise RangeTooLargeError(
                    self.host, "too many logs", Failure(FailureKind.RANGE_TOO_LARGE)
                )
            if self.reorg_with is not None:
                self.reorg(1, list(self.reorg_with))
                self.reorg_with = None
        return super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


def test_a_refused_follow_up_read_loses_and_repeats_nothing(clock: FakeClock) -> None:
    chain = FollowUps()
    a, b = child(0xA), child(0xB)
    chain.mine_logs(
        [[], [tick(a, 1), created(a), tick(a, 2)], [tick(a, 3)], [created(b), tick(b, 4)], []]
    )
    chain.refuse = 1
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=6))
    assert chain.refuse == 0  # refused once: the smaller windows ask again, each in its own view
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2"), (a, "3"), (b, "4")]


def test_a_reorganisation_between_the_creation_read_and_the_follow_up_is_read_again(
    clock: FakeClock,
) -> None:
    chain = FollowUps()
    a = child(0xA)
    chain.mine_logs([[tick(a, 1), created(a), tick(a, 2)], [tick(a, 3)]])
    chain.reorg_with = [0]  # the last block is replaced (without a's tick 3) meanwhile
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=6))
    assert chain.reorg_with is None and chain.follow_ups >= 1  # it did reorganise meanwhile
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2")]
    assert state.checkpoint_hash == chain.canonical[-1].hash


def test_a_child_created_in_the_last_block_of_a_limit_window(clock: FakeClock) -> None:
    chain = FakeChain(max_span=2)  # windows of 2 blocks in a batch of 6
    a = child(0xA)
    chain.mine_logs([[], [tick(a, 1), created(a), tick(a, 2)], [tick(a, 3)], [], [tick(a, 4)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=6, checkpoint_interval=6))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2"), (a, "3"), (a, "4")]


def test_a_child_created_twice_counts_from_its_first_creation(clock: FakeClock) -> None:
    chain = FakeChain()
    a = child(0xA)
    chain.mine_logs([[created(a), created(a), tick(a, 1)], [tick(a, 2), created(a)], [tick(a, 3)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=1, checkpoint_interval=1))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2"), (a, "3")]
    assert [c.address for c in state.children_stored] == [a]


def test_a_child_created_before_start_block_is_relayed_from_start_block_on(
    clock: FakeClock,
) -> None:
    """§1: "every address that event of the factory names ... is relayed from the block of
    its creation on". A relayer started after the factory's first creation (START_BLOCK set
    to today, as for any other contract) never learns of the children created before it:
    their events from START_BLOCK on are never relayed (README: "set it at or before the
    factory's deployment"; nothing tells the operator that children were missed)."""
    chain = FakeChain()
    a, b = child(0xA), child(0xB)
    blocks = chain.mine_logs([[created(a)], [], [created(b)], [tick(a, 1), tick(b, 2)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, start_block=blocks[2].number))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (b, "2")]


def test_arg_filters_choose_what_is_relayed_not_which_children_are(clock: FakeClock) -> None:
    owner = "0x" + "ab" * 20
    specs = apply_arg_filters(
        event_catalogue([*ABI, CREATED_ABI], (), "sim"),
        parse_arg_filters(f"Created.owner=0x{'cd' * 20};Tick.id=1|3"),
    )
    chain = FakeChain()
    a = child(0xA)
    chain.mine_logs([[created(a), tick(a, 1), tick(a, 2)], [tick(a, 3)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, contracts=(FACTORY,), specs=specs))
    assert created(a)[1][1] == "0x" + "00" * 12 + owner[2:]  # not the filtered owner
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "3")]


def test_the_creation_event_unselected_still_finds_children(clock: FakeClock) -> None:
    chain = FakeChain()
    a = child(0xA)
    chain.mine_logs([[created(a), tick(a, 1)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, contracts=(FACTORY,), events=("Tick",)))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1")]


def test_by_topic_a_strangers_undecodable_log_is_no_dead_letter(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch_module, "ADDRESS_LIST_MAX", 1)  # by topic from the start
    stranger = "0x" + "5e" * 20
    chain = FakeChain()
    a = child(0xA)
    bad = (stranger, [TOPIC0], "0x")  # a Tick with no id and no value: undecodable
    chain.mine_logs([[bad, created(a), (a, [TOPIC0], "0x"), tick(a, 1)], [bad]])
    state, sink, dead = FakeState(), sink_for(clock), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, dead_letters=dead))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1")]
    letters = [json.loads(d.message.data) for d in dead.accepted]
    assert [d.get("contract", "").lower() for d in letters] == [a], letters


def test_with_dead_letters_a_malformed_creation_of_a_relayed_factory_stops_nothing(
    clock: FakeClock,
) -> None:
    """§1: RELAYER_DEADLETTER_TOPIC takes "logs that match a contract but cannot be decoded";
    only unset does "such a log fail the run". The factory is in CONTRACT_ADDRESS here and
    the dead-letter topic is set, yet one creation log that does not fit the ABI (no data:
    a proxy upgraded to another layout, an assembly emit) fails every run at the same
    block (`Watch.sift` raises before the dead-lettering): no child, however valid, and no
    other contract is relayed again until the ABI is changed."""
    chain = FakeChain()
    a, b = child(0xA), child(0xB)
    malformed = (FACTORY, [CREATED, "0x" + "00" * 12 + "ab" * 20], "0x")
    chain.mine_logs([[created(a), tick(a, 1)], [malformed], [created(b), tick(b, 2), tick(a, 3)]])
    state, sink, dead = FakeState(), sink_for(clock), sink_for(clock)
    outcome = relay_of(chain, state, sink, clock, contracts=(FACTORY,), dead_letters=dead).run()
    assert outcome.error is None, outcome.summary.error
    assert [(c, i) for c, i, _ in relayed(sink)] == [
        (FACTORY, "Created"), (a, "1"), (FACTORY, "Created"), (b, "2"), (a, "3"),
    ]  # fmt: skip
    assert len(dead.accepted) == 1


def test_a_follower_finds_children_between_looks_and_forgets_an_orphaned_one(
    clock: FakeClock,
) -> None:
    chain = FakeChain()
    a, b, c = child(0xA), child(0xB), child(0xC)
    chain.mine_logs([[created(a), tick(a, 1)]])
    plan: list[Callable[[], object]] = [
        lambda: chain.mine_logs([[tick(a, 2)], [created(b), tick(b, 3)]]),
        lambda: (chain.reorg(1, []), chain.mine_logs([[created(c), tick(c, 4)], [tick(b, 5)]])),
        lambda: chain.mine_logs([[tick(a, 6), tick(c, 7)]]),
    ]

    def wait(seconds: float) -> bool:
        clock.advance(seconds)
        if plan:
            plan.pop(0)()
        return False

    state, sink = FakeState(), sink_for(clock)
    relay = relay_of(chain, state, sink, clock, run_s=60.0, poll_interval_s=5.0, lease_s=12.0)
    relay.wait = wait
    outcome = relay.run()
    assert outcome.error is None, outcome.summary.error
    got = [(x, i, r) for x, i, r in relayed_removed(sink)]
    assert got == [
        (a, "1", False), (a, "2", False), (b, "3", False), (b, "3", True),
        (c, "4", False), (a, "6", False), (c, "7", False),
    ]  # fmt: skip
    assert [k.address for k in state.children_stored] == [a, c]


def relayed_removed(sink: FakeSink) -> list[tuple[str, str, bool]]:
    out = []
    for accepted in sink.accepted:
        p = json.loads(accepted.message.data)
        out.append((p["contract"].lower(), p["args"].get("id", p["event"]), p["removed"]))
    return out
