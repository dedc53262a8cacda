"""Review 14: a follower's last commit (summary and release) applied with its answer lost,
while the run waiting for its hand-over takes the lease at once (docs/CONTRACT.md §7.7: it
polls the lease every second). Over the Firestore emulator: the lost-answer recognition
(`FirestoreState._landed`) lives in the real adapter. Marked xfail(strict=True)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from devstack.sim.events import catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from function.adapters.firestore.state import FirestoreState
from function.core.checkpoint import Commit, Progress
from function.run.relay import Relay
from function.stopping import StopSignal
from harness import PROJECT

IDENTITY = {"chain_id": 31337, "contracts": ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]}


class LosingClient:
    """The Firestore client, but the batch that writes `last_run` (a run's last commit) is
    applied, then `meanwhile` runs (the waiter takes the lease), then the answer is lost."""

    def __init__(
        self,
        real: firestore.Client,
        meanwhile: Any,
        field: str = "last_run",
        lost: Exception | None = None,
    ) -> None:
        self.real, self.meanwhile, self.armed, self.field = real, meanwhile, True, field
        # How the loss shows: a deadline, or (the library sending the applied request again)
        # the precondition of the retry failing.
        self.lost = lost or gexc.DeadlineExceeded("the answer was lost")  # type: ignore[no-untyped-call]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def batch(self) -> Any:
        batch = self.real.batch()
        commit = batch.commit

        def losing_commit(*args: Any, **kwargs: Any) -> Any:
            last = any(self.field in w.update.fields for w in batch._write_pbs)
            result = commit(*args, **kwargs)
            if last and self.armed:
                self.armed = False
                self.meanwhile()
                raise self.lost
            return result

        batch.commit = losing_commit  # type: ignore[method-assign]
        return batch


def test_a_followers_last_commit_with_its_answer_lost_during_a_hand_over_ends_ok(
    firestore_reset: object,
) -> None:
    relayer_id = f"review14-{uuid.uuid4().hex[:8]}"
    real = firestore.Client(project=PROJECT)
    waiter = FirestoreState(real, relayer_id, IDENTITY)
    taken: list[object] = []
    client = LosingClient(
        real, lambda: taken.append(waiter.acquire("waiter", datetime.now(UTC), 30))
    )
    state = FirestoreState(client, relayer_id, IDENTITY)  # type: ignore[arg-type]
    chain = FakeChain()
    chain.mine([1, 2])
    sink = FakeSink()
    relay = Relay(
        settings=settings(run_s=1.0, poll_interval_s=0.5, lease_s=30.0),
        specs=catalogue(),
        chain=chain,
        state=state,
        records=state.records,
        sink=sink,
        stop=StopSignal(),
    )
    outcome = relay.run()
    assert taken and taken[0] is not None  # the waiter took the released lease
    doc = waiter.read() or {}
    assert doc["last_run"]["outcome"] == "ok"  # the follower's last commit is there
    assert doc["next_block"] == 3 and len(sink.accepted) == 3
    s = outcome.summary
    assert (s.outcome, outcome.exit_code) == ("ok", 0), s.error


def test_a_commit_with_its_answer_lost_while_a_skipped_run_counts_itself_counts_once(
    firestore_reset: object,
) -> None:
    relayer_id = f"review14-{uuid.uuid4().hex[:8]}"
    real = firestore.Client(project=PROJECT)
    other = FirestoreState(real, relayer_id, IDENTITY)
    now = datetime.now(UTC)
    retried = gexc.FailedPrecondition("the library's retry of the applied commit: stale")  # type: ignore[no-untyped-call]
    client = LosingClient(real, lambda: other.count_skipped(now), "next_block", retried)
    state = FirestoreState(client, relayer_id, IDENTITY)  # type: ignore[arg-type]
    grant = state.acquire("follower", now, 30, follow_until=now + timedelta(seconds=60))
    assert grant is not None
    renewal = Commit(
        progress=Progress(10, "0x" + "09" * 32, (), 3), lease_until=now + timedelta(seconds=30)
    )
    state.commit(grant, now, renewal)  # applied, answer lost, recognised or decided again
    totals = (other.read() or {})["totals"]
    assert totals["outcomes"] == {"skipped": 1}
    assert totals["events_published"] == 3, totals
