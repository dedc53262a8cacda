"""Review 13: the chunk pipeline (a part's records and commit in another thread while the
next part of the same chunk is published), over the in-memory fakes with real threads.

Each test below fails on the pipeline as committed (1cb01b1) and describes, in its
docstring, what the run gets wrong and which part of docs/CONTRACT.md it breaks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import function.run.relay as relay_module
from devstack.sim.events import run_over
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.checkpoint import Commit, Grant
from function.core.model import BlockRecord, BlockRef
from function.core.summary import FAILED, SKIPPED
from function.run.relay import Outcome

INTERVAL = 10  # RELAYER_CHECKPOINT_INTERVAL
PER_BLOCK = 3
PER_PART = 6  # MAX_EVENTS_PER_COMMIT here: two blocks a part, five parts a chunk
BLOCKS = 30


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(relay_module, "MAX_EVENTS_PER_COMMIT", PER_PART)
    yield


class HookedState(FakeState):
    """A checkpoint commit (progress, no summary) may run a hook first; it may be slow."""

    before_progress_commit: Any = None
    commit_s: float = 0.0

    def commit(self, grant: Grant, now: Any, change: Commit) -> None:
        if change.progress is not None and change.summary is None:
            if self.commit_s:
                threading.Event().wait(self.commit_s)
            hook, self.before_progress_commit = self.before_progress_commit, None
            if hook is not None:
                hook(now)
        super().commit(grant, now, change)


def world() -> tuple[FakeChain, HookedState, FakeSink]:
    chain = FakeChain()
    chain.mine([PER_BLOCK] * BLOCKS)
    return chain, HookedState(), FakeSink()


def run(chain: FakeChain, state: FakeState, sink: FakeSink) -> Outcome:
    return run_over(chain, state, sink, batch_size=100, checkpoint_interval=INTERVAL, lease_s=300.0)


def test_a_failed_commit_leaves_the_summary_counting_every_event_pub_sub_accepted() -> None:
    """The first part's commit fails while the second part is published. The second part's
    events are accepted by Pub/Sub (they will be published again by the next run), yet the
    run's summary leaves them out: `_publish_chunk` waits for the commit before it counts
    what it published, and the commit's error ends the run there.

    CONTRACT §2: every run ends with a summary whose `events_published` says what the run
    published; an operator reading `last_run` (or the logged summary) of the failed run is
    told 6 events went out when 12 did (and then sees 6 "unexpected" duplicates). Before
    the pipeline a commit failure stopped the run before the next part was published, so
    the count and the topic agreed."""
    chain, state, sink = world()
    state.faults.append(("commit", "error"))  # the first part's checkpoint commit
    failed = run(chain, state, sink)
    assert failed.summary.outcome == FAILED
    assert failed.summary.events_published == len(sink.accepted)


def test_a_lease_taken_over_during_the_background_commit_is_a_skipped_run() -> None:
    """The first part's commit finds the lease taken over (another run took it after it
    expired under a commit that hung); meanwhile the second part's read of its records
    fails. `_relay_window` settles the background commit `quietly`: the LeaseLostError is
    only logged as a warning and the read's error fails the run.

    CONTRACT §2: a lease lost to contention is outcome `skipped`, exit code 0 (the job is
    not marked failed, nobody is paged); and §7.6: the run must write nothing more, yet it
    goes on to try to commit a failure summary (refused by the fence). Before the pipeline
    the commit's LeaseLostError ended the run first: skipped."""
    chain, state, sink = world()
    # The second part (blocks 3..4) has a record already (a run killed before its commit),
    # so the part reads its records before publishing.
    block = chain.headers([3])[3]
    state.blocks[BlockRef(3, block.hash)] = BlockRecord(3, block.hash, (), "old-run", None, None)

    def taken_over(now: Any) -> None:
        # Another run takes the lease once it expired (its clock past this run's lease).
        assert state.acquire("the-other-run", now + timedelta(hours=1), 300.0) is not None

    state.before_progress_commit = taken_over
    state.faults.append(("read", "error"))  # the second part's read of its records
    outcome = run(chain, state, sink)
    assert outcome.summary.outcome == SKIPPED, (outcome.summary.outcome, outcome.summary.error)
    assert outcome.exit_code == 0
