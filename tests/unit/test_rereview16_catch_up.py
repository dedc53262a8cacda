"""Re-review 16 (RELAYER_FACTORY fixes), hostile: the look for the factory's creations below
a run's range (`_Run._catch_up_children`, `fetching.creations`): from genesis for a state
that holds none, in wide windows."""

from __future__ import annotations

from collections.abc import Sequence

from test_review16_factory_run import (
    CREATED,
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

from devstack.sim.clock import FakeClock
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_state import FakeState
from function.core.catalogue import TopicQuery
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.errors import RpcError, StoppedError
from function.stopping import StopSignal

__all__ = ["clock"]  # the fixture, shared


class Timed(FakeChain):
    """Each run gets `budget` chain calls, then it is asked to stop, as the task timeout's
    SIGTERM (or the relay function's request deadline, `request_window.time_is_up`) asks
    it: the stop is set and the call in flight ends in `StoppedError`, as the JSON-RPC
    client's `interruptible` wait does."""

    budget: int = 0
    stop: StopSignal | None = None
    creation_windows: list[BlockRange]

    def _spend(self) -> None:
        if self.budget <= 0:
            assert self.stop is not None
            self.stop.set()
            raise StoppedError("stopped while waiting for eth_getLogs: the run was asked to stop")
        self.budget -= 1

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        self._spend()
        return super().head_and_header(tag, number)

    def headers(self, numbers: object) -> dict[int, Header]:
        self._spend()
        return super().headers(numbers)  # type: ignore[arg-type]

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        self._spend()
        answer = super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)
        if list(addresses or []) == [FACTORY] and list(topic0s or []) == [CREATED]:
            self.creation_windows.append(blocks)  # answered (not refused)
        return answer


def test_a_creation_history_longer_than_one_run_is_read_some_day(clock: FakeClock) -> None:
    """A first run reads the factory's creations from genesis up to START_BLOCK before it
    relays anything, and keeps what it read only in the checkpoint commit that follows.
    A run stopped during that look (Cloud Run's task timeout, 300 s by default, sends
    SIGTERM; the relay function stops its runs before the request deadline) commits no
    checkpoint, so nothing of the look survives: the next run starts again at block 0.
    When the history takes longer to read than a run may last (millions of blocks through
    an endpoint that accepts 10,000 at a time), every run stops at the same place and the
    relayer never relays a single block, however often it is run."""
    chain = Timed(max_span=10)  # the endpoint's limit: 10 blocks an eth_getLogs
    chain.creation_windows = []
    a = child(0xA)
    chain.mine_logs([[created(a)], *[[] for _ in range(298)], [tick(a, 1)], [tick(a, 2)]])
    start = chain.head - 1  # START_BLOCK: 30 creation windows of 10 blocks below it
    state, sink = FakeState(), sink_for(clock)
    runs = 0
    for _ in range(20):  # 20 runs of 20 calls each: 400 calls for 31 windows' work
        # Each execution a process of its own (a Cloud Run task, a function instance).
        relay = relay_of(chain, state, sink, clock, start_block=start, batch_size=10)
        relay.stop = chain.stop = StopSignal()
        chain.budget = 20
        relay.run()
        runs += 1
        if state.next_block is not None:
            break
    starts = [w.start for w in chain.creation_windows]
    furthest = max(w.end for w in chain.creation_windows)
    assert state.next_block is not None, (
        f"after {runs} runs nothing is relayed: the look for creations began at block 0 "
        f"{starts.count(0)} times and never read past block {furthest} of 0..{start - 1}"
    )
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2")]


class SlowOnWide(FakeChain):
    """A node that serves eth_getLogs over `most` blocks or fewer, and times out on wider
    ones (a self-hosted geth or erigon reading millions of blocks' blooms; a gateway's
    timeout): the JSON-RPC client retries the timeout as transient, then gives up with the
    error it raises after its attempts. No refusal, no limit stated: nothing to shrink by."""

    most: int = 1000
    wide_reads: int = 0

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        if len(blocks) > self.most:
            self.wide_reads += 1
            raise RpcError(
                "RPC_URL endpoints (fake-rpc) kept failing: no answer from fake-rpc within 15.0 s"
            )
        return super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


def test_a_node_that_times_out_on_the_whole_history_still_gets_relayed(
    clock: FakeClock,
) -> None:
    """The look for creations below START_BLOCK starts with one window over the whole
    history (`RangeLimits(len(gap), ...)`: the gap is its own ceiling) and shrinks only on a
    refusal the provider words as one. A node that answers 1,000-block windows (every
    window of the relayed range) but not a 5,000-block one in time fails every first run
    at that one read, the same way each time (the span is not learnt from a timeout, nor
    kept between runs): the relayer never relays anything. Before the fix the look went in
    the batch's windows, which this node serves."""
    chain = SlowOnWide()
    a = child(0xA)
    chain.mine_logs([[created(a)], *[[] for _ in range(4_998)], [tick(a, 1)], [tick(a, 2)]])
    start = chain.head - 1  # 5,000 blocks of history below START_BLOCK
    state, sink = FakeState(), sink_for(clock)
    errors = []
    for _ in range(3):
        outcome = relay_of(chain, state, sink, clock, start_block=start).run()
        errors.append(outcome.summary.error)
        if outcome.error is None:
            break
    assert state.next_block is not None, (
        f"{len(errors)} runs, none relayed a block ({chain.wide_reads} reads of more than "
        f"{chain.most} blocks timed out): {errors[-1]}"
    )
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2")]


class ReorgAfterTheLook(FakeChain):
    """Replaces the newest blocks by `fork` right after the look for creations below
    START_BLOCK was answered: between that read and the first window's."""

    fork: Sequence[Sequence[Emitted]] = ()
    depth: int = 0

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        answer = super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)
        if self.fork and list(addresses or []) == [FACTORY] and list(topic0s or []) == [CREATED]:
            self._remember()
            del self.canonical[len(self.canonical) - self.depth :]
            for raw in self.fork:
                self._append(0, raw)
            self.fork = ()
        return answer


def test_a_reorganisation_under_the_first_look_for_creations_loses_no_child(
    clock: FakeClock,
) -> None:
    """The look below START_BLOCK has "no consistency check, a reorganisation there is no
    concern of a relayer" (`fetching.creations`), and a first run's first window has no
    checkpoint to descend from. Both hold for blocks a relayer never relays, but not for
    what the look learns there: a reorganisation of the block below START_BLOCK between the
    look and the first window (RELAYER_CONFIRMATIONS=0 here; any depth past the
    confirmations in general) leaves the run with the orphaned fork's children. The child
    the canonical block below START_BLOCK created is never known, and its events from
    START_BLOCK on are never relayed; nothing reads that block again."""
    chain = ReorgAfterTheLook()
    a, b = child(0xA), child(0xB)
    chain.mine_logs([[], [created(a)], [tick(a, 1)], []])  # blocks 1..4 (0: genesis)
    start = 3  # START_BLOCK: the look reads blocks 0..2 and finds a, created in block 2
    chain.depth = 3  # blocks 2..4 replaced: now b is created in block 2, a never is
    chain.fork = [[created(b)], [tick(b, 2)], [tick(b, 3)]]
    state, sink = FakeState(), sink_for(clock)
    relay = relay_of(chain, state, sink, clock, start_block=start)
    outcome = relay.run()
    assert outcome.error is None, outcome.summary.error
    assert not chain.fork  # the chain did reorganise after the look
    chain.mine_logs([[tick(b, 4)]])
    until_idle(relay_of(chain, state, sink, clock, start_block=start))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(b, "2"), (b, "3"), (b, "4")]
