"""A chunk's parts are recorded and committed in another thread while the next part of the
same chunk is published (issue 13: a run no longer waits on Firestore and Pub/Sub in turn),
over the in-memory fakes with real threads:
- the overlap happens;
- what is published past the last commit stays within one checkpoint interval (CONTRACT
  §7.4): a part waits for the commit under way only when its messages and that commit's
  would span more than the interval, wherever the intervals' ends fall;
- a commit that fails while the next part is published fails the run with its error, and
  the next run publishes again only blocks of that chunk;
- a publish that fails while the part before is committed leaves that part committed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import function.run.relay as relay_module
from devstack.sim.events import catalogue, run_over, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink, Fate
from devstack.sim.fake_state import FakeState
from function.core.checkpoint import Commit, Grant
from function.core.messages import Message
from function.errors import StateError
from function.run.relay import Outcome, Relay
from function.stopping import StopSignal

INTERVAL = 10  # RELAYER_CHECKPOINT_INTERVAL
PER_BLOCK = 3
PER_PART = 6  # MAX_EVENTS_PER_COMMIT here: two blocks a part, five parts a chunk
BLOCKS = 30  # blocks 1..30; chunks 0..9, 10..19, 20..29, 30


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(relay_module, "MAX_EVENTS_PER_COMMIT", PER_PART)
    yield


def block_of(message: Message) -> int:
    return int(message.attributes["block_number"])


def relay_over(  # a Relay over the fakes, with its stop (`run_over` makes its own)
    chain: FakeChain, state: FakeState, sink: FakeSink, stop: StopSignal | None = None, **kw: Any
) -> Relay:
    values: dict[str, Any] = dict(batch_size=100, checkpoint_interval=50, lease_s=300.0)
    values.update(kw)
    return Relay(
        settings=settings(**values),
        specs=catalogue(),
        chain=chain,
        state=state,
        records=state,  # type: ignore[arg-type]
        sink=sink,
        stop=stop or StopSignal(),
    )


class Journal:
    """Publishes and commits as they happen, with the committed checkpoint at each publish."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.published: list[tuple[int, int]] = []  # (last block of a request, next_block)
        self.committing = threading.Event()
        self.published_while_committing = threading.Event()
        self.watchers: list[threading.Event] = []  # set at the next publish

    def on_publish(self, messages: Sequence[Message]) -> None:
        with self.lock:
            committed = self.state.next_block if self.state.next_block is not None else 0
            self.published.append((max(block_of(m) for m in messages), committed))
        if self.committing.is_set():
            self.published_while_committing.set()
        for begun in list(self.watchers):
            begun.set()


class JournalledSink(FakeSink):
    journal: Journal

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        self.journal.on_publish(messages)
        return super().publish(messages, deadline)


class SlowState(FakeState):
    """Each checkpoint commit takes `commit_s` (a Firestore round trip, made long)."""

    journal: Journal
    commit_s: float = 0.0
    wait_for_publish = False  # a commit waits (up to 2 s) for a publish to happen meanwhile

    def commit(self, grant: Grant, now: Any, change: Commit) -> None:
        if change.progress is not None and change.summary is None:
            self.journal.committing.set()
            if self.wait_for_publish:
                self.journal.published_while_committing.wait(2.0)
            elif self.commit_s:
                threading.Event().wait(self.commit_s)
            self.journal.committing.clear()
        super().commit(grant, now, change)


def world(
    kind: type[SlowState] = SlowState,
    counts: Sequence[int] = (PER_BLOCK,) * BLOCKS,
    **state_kw: Any,
) -> tuple[FakeChain, SlowState, JournalledSink]:
    chain = FakeChain()
    chain.mine(counts)
    state = kind()
    for name, value in state_kw.items():
        setattr(state, name, value)
    sink = JournalledSink()
    state.journal = sink.journal = Journal(state)
    return chain, state, sink


def run(chain: FakeChain, state: SlowState, sink: FakeSink) -> Outcome:
    return run_over(chain, state, sink, batch_size=100, checkpoint_interval=INTERVAL)


def delivered_blocks(sink: FakeSink) -> Counter[int]:
    return Counter(block_of(a.message) for a in sink.accepted)


def test_the_next_part_is_published_while_the_part_before_is_committed() -> None:
    chain, state, sink = world(wait_for_publish=True)
    outcome = run(chain, state, sink)
    assert outcome.error is None, outcome.summary.error
    assert sink.journal.published_while_committing.is_set()
    assert delivered_blocks(sink) == Counter({n: PER_BLOCK for n in range(1, BLOCKS + 1)})
    assert state.next_block == BLOCKS + 1


class OverlapState(SlowState):
    """Each checkpoint commit waits (up to `wait_s`) for a block at or above the one it moves
    the checkpoint to to be published before it lands, and notes whether one was (the run
    went on publishing while the commit was queued or under way), by that block."""

    wait_s = 0.3
    overlaps: list[tuple[int, bool]]

    def commit(self, grant: Grant, now: Any, change: Commit) -> None:
        progress = change.progress
        if progress is None or change.summary is not None or progress.next_block is None:
            super().commit(grant, now, change)
            return
        journal, above = self.journal, progress.next_block

        def published_above() -> bool:
            with journal.lock:
                return any(last >= above for last, _ in journal.published)

        begun = threading.Event()
        journal.watchers.append(begun)
        until = time.monotonic() + self.wait_s
        while not published_above() and begun.wait(max(0.0, until - time.monotonic())):
            begun.clear()
        journal.watchers.remove(begun)
        self.overlaps.append((above, published_above()))
        FakeState.commit(self, grant, now, change)


def test_a_window_ending_inside_a_chunk_does_not_wait_for_its_last_commit() -> None:
    # Windows are read ahead in sizes learnt as the run goes (5 blocks first, here): where
    # one ends inside a checkpoint interval, the next window's first part is published
    # while the last part of the window before is committed, as within a window. Only a
    # chunk's first part waits (the test below).
    chain, state, sink = world(OverlapState, overlaps=[])
    outcome = run(chain, state, sink)
    assert outcome.error is None, outcome.summary.error
    overlaps = state.overlaps  # type: ignore[attr-defined]
    # Commits at a chunk's end, and the run's last, have nothing published meanwhile.
    inside = [(n, o) for n, o in overlaps if n % INTERVAL != 0 and n != BLOCKS + 1]
    assert inside and all(o for _, o in inside), overlaps
    assert delivered_blocks(sink) == Counter({n: PER_BLOCK for n in range(1, BLOCKS + 1)})
    assert state.next_block == BLOCKS + 1


def span_past_the_commit(journal: Journal, with_events: set[int]) -> list[tuple[int, int, int]]:
    """At each publish request: (its last block, the landed checkpoint, the span of the
    blocks with events between them), what a kill then would leave to publish again."""
    spans = []
    for last, committed in journal.published:
        past = [n for n in with_events if committed <= n <= last]
        spans.append((last, committed, max(past) - min(past) + 1))
    return spans


def test_an_intervals_first_part_does_not_wait_for_the_commit_of_the_interval_before() -> None:
    # Parts of two blocks, commits slow: the part at 10..11 is published while the commit
    # of block 9 (the last part of the interval before) is under way, since both together
    # span 3 blocks, within one interval. Only the run's last commit has nothing after it.
    chain, state, sink = world(OverlapState, overlaps=[])
    outcome = run(chain, state, sink)
    assert outcome.error is None, outcome.summary.error
    overlaps = state.overlaps  # type: ignore[attr-defined]
    at_ends = [(n, o) for n, o in overlaps if n % INTERVAL == 0]
    assert at_ends and all(o for _, o in at_ends), overlaps
    assert delivered_blocks(sink) == Counter({n: PER_BLOCK for n in range(1, BLOCKS + 1)})
    assert state.next_block == BLOCKS + 1


def test_a_part_that_would_leave_more_than_an_interval_unrecorded_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Parts of up to a whole interval (ten blocks, cut where windows end): a part that
    # would span more than an interval with the part being committed waits for that commit
    # (§7.4): those of 10..19 and 20..24 (the windows are 0..4, 5..24, 25..); the part of
    # 5..9 and that of 25..29 need not.
    monkeypatch.setattr(relay_module, "MAX_EVENTS_PER_COMMIT", INTERVAL * PER_BLOCK)
    chain, state, sink = world(OverlapState, overlaps=[], wait_s=0.05)
    outcome = run(chain, state, sink)
    assert outcome.error is None, outcome.summary.error
    overlaps = dict(state.overlaps)  # type: ignore[attr-defined]
    assert (overlaps[5], overlaps[10], overlaps[20], overlaps[25]) == (True, False, False, True)
    spans = span_past_the_commit(sink.journal, set(range(1, BLOCKS + 1)))
    assert all(span <= INTERVAL for _, _, span in spans), spans
    assert state.next_block == BLOCKS + 1


def test_a_window_after_an_empty_one_waits_for_a_commit_too_far_below() -> None:
    # Windows 0..4 (events), 5..24 (none: no commit), 25.. (events). The commit of blocks
    # 3..4 may be under way when block 25 is published: what is published past the last
    # commit that landed would span more than one checkpoint interval (§7.4), so the part
    # at 25 waits for it.
    counts = [PER_BLOCK] * 4 + [0] * 20 + [PER_BLOCK] * 10  # blocks 1..34
    chain, state, sink = world(OverlapState, counts, overlaps=[])
    with_events = {n for n, c in enumerate(counts, start=1) if c}
    outcome = run(chain, state, sink)
    assert outcome.error is None, outcome.summary.error
    spans = span_past_the_commit(sink.journal, with_events)
    assert all(span <= INTERVAL for _, _, span in spans), spans
    assert delivered_blocks(sink) == Counter({n: PER_BLOCK for n in with_events})
    assert state.next_block == len(counts) + 1


def test_what_is_published_past_the_last_commit_stays_within_one_checkpoint_interval() -> None:
    chain, state, sink = world(commit_s=0.02)
    outcome = run(chain, state, sink)
    assert outcome.error is None, outcome.summary.error
    assert len(sink.journal.published) > BLOCKS * PER_BLOCK // PER_PART  # a request a part
    spans = span_past_the_commit(sink.journal, set(range(1, BLOCKS + 1)))
    assert all(span <= INTERVAL for _, _, span in spans), spans
    assert state.next_block == BLOCKS + 1


def test_a_commit_failing_while_the_next_part_is_published_fails_the_run() -> None:
    chain, state, sink = world(commit_s=0.02)
    state.faults.append(("commit", "error"))  # the first part's commit
    failed = run(chain, state, sink)
    assert failed.error is not None and "checkpoint commit failed" in str(failed.summary.error)
    assert state.next_block is None  # nothing committed
    published = set(delivered_blocks(sink))
    assert published and max(published) < INTERVAL  # the second part at most, same chunk

    again = run(chain, state, sink)
    assert again.error is None, again.summary.error
    copies = delivered_blocks(sink)
    assert set(copies) == set(range(1, BLOCKS + 1))  # nothing lost
    assert {n for n, c in copies.items() if c > PER_BLOCK} <= set(range(INTERVAL))


def test_a_publish_failing_while_the_part_before_is_committed_keeps_that_commit() -> None:
    chain, state, sink = world(commit_s=0.05)
    sink.fates = [(Fate.ACCEPT, 0.0), (Fate.FAIL, 0.0)]  # the second part's request fails
    failed = run(chain, state, sink)
    assert failed.error is not None and "Pub/Sub did not accept" in str(failed.summary.error)
    assert state.next_block == PER_PART // PER_BLOCK + 1  # the first part's two blocks
    assert set(delivered_blocks(sink)) == {1, 2}

    again = run(chain, state, sink)
    assert again.error is None, again.summary.error
    assert delivered_blocks(sink) == Counter({n: PER_BLOCK for n in range(1, BLOCKS + 1)})


def test_a_factorys_children_found_in_later_windows_with_commits_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RELAYER_FACTORY: a window that reads creations waits for the commit under way before
    # it adds the children (that commit reads them, in the recording thread, for what it
    # stores below its checkpoint). Each commit's read of the children waits a little for
    # an addition to begin meanwhile: none may. Over many windows, parts and slow commits:
    # every child's every event exactly once, the children stored with the checkpoint.
    from test_factory_run import CREATED_ABI, FACTORY, child, created, tick

    import function.core.watch as watch_module

    adding = threading.Event()
    overlapped: list[int] = []
    add, write_for = watch_module.Watch.add, watch_module.Watch.write_for

    def watched_add(self: Any, children: Any) -> Any:
        adding.set()
        return add(self, children)

    def watched_write_for(self: Any, next_block: int) -> Any:
        adding.clear()
        if adding.wait(0.05):
            overlapped.append(next_block)
        return write_for(self, next_block)

    monkeypatch.setattr(watch_module.Watch, "add", watched_add)
    monkeypatch.setattr(watch_module.Watch, "write_for", watched_write_for)

    from devstack.sim.events import ABI, settings
    from function.core.abi import event_catalogue
    from function.core.creations import factory_of
    from function.core.factory import parse_factory
    from function.core.watch import Child
    from function.run.relay import Relay

    chain = FakeChain()
    chain.mine([0])
    blocks: list[list[Any]] = []
    for n in range(BLOCKS):  # block n+2 creates child n; its three newest siblings tick
        blocks.append(
            [created(child(n)), *(tick(child(m), n) for m in range(max(0, n - 2), n + 1))]
        )
    mined = chain.mine_logs(blocks)
    state = SlowState()
    state.commit_s = 0.01
    sink = JournalledSink()
    state.journal = sink.journal = Journal(state)
    specs = event_catalogue([*ABI, CREATED_ABI], (), "sim")
    relay = Relay(
        settings=settings(contracts=(), batch_size=100, checkpoint_interval=INTERVAL),
        specs=specs,
        chain=chain,
        state=state,
        records=state,  # type: ignore[arg-type]
        sink=sink,
        factory=factory_of(parse_factory(f"{FACTORY}:Created:child"), specs, "sim"),
    )
    outcome = relay.run()
    assert outcome.error is None, outcome.summary.error
    assert not overlapped, overlapped  # children added while a commit read them
    seen = Counter(
        (a.message.attributes["contract"].lower(), block_of(a.message)) for a in sink.accepted
    )
    want = Counter(
        (child(m), mined[n].number) for n in range(BLOCKS) for m in range(max(0, n - 2), n + 1)
    )
    assert seen == want
    assert state.children_stored == tuple(Child(child(n), mined[n].number) for n in range(BLOCKS))
    assert state.next_block == mined[-1].number + 1


def commits_pending(journal: Journal) -> list[int]:
    """At each publish request (one a part here), how many earlier parts had their commit
    not landed yet: queued or under way."""
    pending = []
    for i, (_, landed) in enumerate(journal.published):
        pending.append(sum(1 for last, _ in journal.published[:i] if last >= landed))
    return pending


def test_parts_go_on_while_the_commits_of_several_parts_before_are_queued() -> None:
    # A commit slower than a part's publishing: the commits queue up behind it (in chain
    # order, one at a time) instead of each part waiting for the one before, up to
    # RECORDINGS_UNDER_WAY of them, and within one interval's span (§7.4).
    chain, state, sink = world(commit_s=0.05)
    outcome = run(chain, state, sink)
    assert outcome.error is None, outcome.summary.error
    pending = commits_pending(sink.journal)
    assert max(pending) >= 2, pending
    assert max(pending) <= relay_module.RECORDINGS_UNDER_WAY, pending
    spans = span_past_the_commit(sink.journal, set(range(1, BLOCKS + 1)))
    assert all(span <= INTERVAL for _, _, span in spans), spans
    assert state.next_block == BLOCKS + 1
    assert delivered_blocks(sink) == Counter({n: PER_BLOCK for n in range(1, BLOCKS + 1)})


class FailingLaterState(SlowState):
    """The `fail_at`th checkpoint commit fails; each takes `commit_s`."""

    fail_at = 2
    seen = 0
    committed_after_failure = False

    def commit(self, grant: Grant, now: Any, change: Commit) -> None:
        if change.progress is not None and change.summary is None:
            self.seen += 1
            if self.seen == self.fail_at:
                threading.Event().wait(self.commit_s)
                raise StateError("Firestore checkpoint commit failed: Unavailable")
            if self.seen > self.fail_at:
                self.committed_after_failure = True
        super().commit(grant, now, change)


def test_a_queued_commit_after_one_that_failed_writes_nothing() -> None:
    # Parts of blocks 1-2, 3-4, 5-6, ...: the second commit fails (of the part of 3-4, and
    # of those queued behind it meanwhile: they land in one commit) while the parts after
    # it are published and queued. The run fails with that error; no later commit lands (a
    # checkpoint past blocks whose records were never written would hide their events
    # from replay protection); records are only of events Pub/Sub accepted; the next run
    # publishes again only what lies within one interval above the commit.
    chain, state, sink = world(FailingLaterState, commit_s=0.05)
    failed = run(chain, state, sink)
    assert failed.error is not None and "checkpoint commit failed" in str(failed.summary.error)
    assert state.next_block == PER_PART // PER_BLOCK + 1  # the first part's two blocks
    assert not state.committed_after_failure  # type: ignore[attr-defined]
    recorded = {r.number for r in state.read(0)}
    first_run = set(delivered_blocks(sink))
    assert recorded <= first_run, (sorted(recorded), sorted(first_run))
    assert first_run and max(first_run) - 3 < INTERVAL  # within an interval above block 3

    again = run(chain, state, sink)
    assert again.error is None, again.summary.error
    copies = delivered_blocks(sink)
    assert set(copies) == set(range(1, BLOCKS + 1))  # nothing lost
    twice = {n for n, c in copies.items() if c > PER_BLOCK}
    assert twice and twice <= first_run - {1, 2}, (sorted(twice), sorted(first_run))
