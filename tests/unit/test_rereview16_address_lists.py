"""Re-review 16 (RELAYER_FACTORY), hostile: how long an address list one eth_getLogs carries
(README, "Hundreds of thousands of children": "Up to 500 addresses ... are sent as
eth_getLogs' address list; past that, the logs are asked by topic alone")."""

from __future__ import annotations

from collections.abc import Sequence

from test_review16_factory_run import (
    child,
    clock,
    created,
    relay_of,
    relayed,
    sink_for,
    tick,
    until_idle,
)

from devstack.sim.clock import FakeClock
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_state import FakeState
from function.core.catalogue import TopicQuery
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.core.watch import ADDRESS_LIST_MAX

__all__ = ["clock"]  # the fixture, shared


class Lists(FakeChain):
    """Records the length of every address list asked for."""

    lengths: list[int]

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        self.lengths.append(-1 if addresses is None else len(addresses))
        return super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


def test_a_window_that_creates_many_children_asks_for_them_by_topic(clock: FakeClock) -> None:
    """A window that creates children asks again for their logs by their addresses
    (`fetching._read_logs`: the follow-up read), all the new ones in one list, however
    many: a window in which a busy factory (a token launcher on a fast chain) creates 600
    contracts sends an eth_getLogs with 600 addresses, past the 500 the README promises
    and providers refuse or slow down on, instead of asking by topic."""
    chain = Lists()
    chain.lengths = []
    kids = [child(n) for n in range(1, 601)]
    chain.mine_logs([[created(k) for k in kids], [tick(kids[0], 1), tick(kids[-1], 2)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(kids[0], "1"), (kids[-1], "2")]
    assert max(chain.lengths) <= ADDRESS_LIST_MAX, sorted(chain.lengths)[-3:]
