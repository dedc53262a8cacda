"""A run with RELAYER_ARG_FILTERS over the in-memory fakes: exactly the matching events, in
order, whether the node applies the topics it is sent or ignores them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import TOPIC0, catalogue, settings, word
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.argfilters import parse_arg_filters
from function.core.argtopics import apply_arg_filters
from function.core.catalogue import TopicQuery
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.run.relay import Relay

WANTED = (2, 5, 9, 14)


class Careless(FakeChain):
    """A node that ignores the topics of eth_getLogs and answers every log of the address."""

    queries_seen: list[Sequence[TopicQuery | None] | None]

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        self.queries_seen.append(queries)
        return super().logs_with_headers(blocks, addresses, None, header_numbers, None)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


def relayed(chain: FakeChain, clock: FakeClock) -> list[dict[str, Any]]:
    specs = apply_arg_filters(
        catalogue(), parse_arg_filters("Tick.id=" + "|".join(map(str, WANTED)))
    )
    sink = FakeSink()
    sink.clock = clock.monotonic
    clock.listeners.append(sink.deliver)
    state = FakeState()
    relay = Relay(
        settings=settings(batch_size=7, checkpoint_interval=3),
        specs=specs,
        chain=chain,
        state=state,
        records=state,
        sink=sink,
        clock=clock.utc,
    )
    for _ in range(10):
        outcome = relay.run()
        assert outcome.error is None, outcome.summary.error
        if outcome.summary.outcome == "idle":
            break
    return [json.loads(a.message.data) for a in sink.accepted]


def test_only_the_matching_events_are_relayed_once_in_order(clock: FakeClock) -> None:
    chain = FakeChain()
    chain.mine([1, 0, 3, 2, 0, 4, 1, 5, 0, 1])  # ticks 1..17
    got = relayed(chain, clock)
    assert [p["args"]["id"] for p in got] == [str(i) for i in WANTED]
    order = [(p["block_number"], p["log_index"]) for p in got]
    assert order == sorted(order)


def test_a_node_that_ignores_the_topics_still_relays_only_the_matching(clock: FakeClock) -> None:
    chain = Careless()
    chain.queries_seen = []
    chain.mine([1, 0, 3, 2, 0, 4, 1, 5, 0, 1])
    got = relayed(chain, clock)
    assert [p["args"]["id"] for p in got] == [str(i) for i in WANTED]
    wanted = tuple(sorted(word(i) for i in WANTED))
    assert chain.queries_seen  # what it was sent: the filter in the topics, then ignored
    assert all(q == (((TOPIC0,), wanted),) for q in chain.queries_seen)
