"""One trial of the fault campaign: a fresh relayer over the world's chain, the runs that
relay it (each a `python main.py` under devstack/faults/crashing_main.py), and what they left.

A trial owns a relayer id, a topic with one subscription, and a poller that reads the
relayer's checkpoint every 50 ms (to catch it moving backwards). Runs are launched with a
crash point, killed from outside, stalled or stopped; `recover()` then runs the relayer
until a run finds nothing new, and `evidence()` gathers everything the verdict needs.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.faults.proc import Proc
from devstack.faults.world import (
    Poller,
    World,
    drain,
    firestore_client,
    relayer_env,
    relayer_status,
)
from devstack.stack.clients import PubSubTopic, create_topic_and_subscription
from function.adapters.firestore.state import FirestoreState


class Trial:
    """A relayer of its own over the world's chain, and every run it had."""

    def __init__(
        self,
        world: World,
        scenario: str,
        *,
        lease_s: float = 2.0,
        interval: int = 3,
        batch: int = 1000,
        rpc_url: str | None = None,
        pubsub_host: str | None = None,
        firestore_host: str | None = None,
    ) -> None:
        self.world = world
        self.scenario = scenario
        self.relayer_id = f"faults-{scenario}-{uuid.uuid4().hex[:10]}"
        self.lease_s, self.interval, self.batch = lease_s, interval, batch
        self.pubsub_host = pubsub_host or world.pubsub_host
        self.firestore_host = firestore_host or world.firestore_host
        self.rpc_url = rpc_url or world.rpc_url
        self.topic = self.make_topic()
        self.dir = Path(tempfile.mkdtemp(prefix="faults-"))
        self.procs: list[Proc] = []
        self.client = firestore_client(world.project, self.firestore_host)
        self.poller = Poller(self.client, self.relayer_id)
        self.status_checks: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.copies: list[Any] = []  # drained early (before an emulator restart)
        self.recovered = False
        self.strict_duplicates = False  # one run's own second copy is a violation too
        # A chain that changes during the trial: the world as it ended, known only then
        self.settle: Callable[[], World] | None = None
        self.cleanups: list[Callable[[], None]] = []  # a proxy, an anvil of the trial's own
        # a verdict of the scenario's own (a fleet judges each of its relayers)
        self.verdict: Callable[[], tuple[Counter[str], list[str]]] | None = None

    def make_topic(self) -> PubSubTopic:
        name = self.relayer_id.replace("faults-", "f-")
        return create_topic_and_subscription(
            self.pubsub_host, self.world.project, name, f"{name}-sub", ordering=True
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = relayer_env(
            self.world,
            self.relayer_id,
            self.topic.topic_id,
            RPC_URL=self.rpc_url,
            PUBSUB_EMULATOR_HOST=self.pubsub_host,
            FIRESTORE_EMULATOR_HOST=self.firestore_host,
            RELAYER_LEASE_SECONDS=f"{self.lease_s:g}",
            RELAYER_CHECKPOINT_INTERVAL=str(self.interval),
            RELAYER_BATCH_SIZE=str(self.batch),
        )
        env.update(extra)
        return env

    # Runs -----------------------------------------------------------------------------------
    def launch(
        self,
        point: str = "none",
        *,
        on: int = 1,
        action: str = "kill",
        pause: float = 0.5,
        delay_ms: float = 2.0,
        args: Sequence[str] = (),
        **extra: str,
    ) -> Proc:
        """A run (with `args`: the `relayer` CLI) at a crash point; `extra` settings."""
        tag = f"r{len(self.procs)}"
        out, journal = self.dir / f"{tag}.out", self.dir / f"{tag}.journal"
        env = self.env(
            CRASH_AT=point,
            CRASH_ON=str(on),
            CRASH_ACTION=action,
            CRASH_SLEEP=f"{pause:g}",
            CRASH_DELAY_MS=f"{delay_ms:g}",
            FAULT_RUN=tag,
            FAULT_LOG=str(journal),
            **extra,
        )
        proc = Proc(tag, 0, time.time(), out, journal, point, action, cli=bool(args))
        self.procs.append(proc)
        proc.pid = self.world.launcher.start(
            env, out, lambda code: self._ended(proc, code), args=args
        )
        return proc

    @staticmethod
    def _ended(proc: Proc, code: int) -> None:
        proc.ended, proc.code = time.time(), code
        proc.done.set()

    def run(self, point: str = "none", **kwargs: Any) -> Proc:
        proc = self.launch(point, **kwargs)
        proc.wait()
        return proc

    def wait_for(self, proc: Proc, what: str, timeout: float = 30.0) -> dict[str, Any] | None:
        """The first journal line `what` of the run, once written (None if it ended first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = proc.first(what)
            if entry is not None:
                return entry
            if proc.done.is_set():
                return proc.first(what)
            time.sleep(0.005)
        return None

    def kill_after(self, proc: Proc, delay_s: float, since: str = "ready") -> None:
        """SIGKILL from outside, `delay_s` after the run's journal says `since`."""
        entry = self.wait_for(proc, since)
        if entry is None:
            return
        time.sleep(max(0.0, entry["t"] + delay_s - time.time()))
        if not proc.done.is_set():
            proc.killed_by_us = True
            proc.signal(signal.SIGKILL)

    def wait_all(self) -> None:
        for proc in self.procs:
            proc.wait()

    def lease_left(self) -> float:
        """Seconds until the current lease expires (0 when free)."""
        try:
            doc = self.doc()
        except Exception:
            return 0.0
        lease = doc.get("lease") or {}
        if not lease.get("owner") or lease.get("expires_at") is None:
            return 0.0
        return max(0.0, float((lease["expires_at"] - datetime.now(UTC)).total_seconds()))

    def wait_lease(self) -> None:
        """Until the lease is free, less the time a run takes to reach its acquire."""
        time.sleep(max(0.0, self.lease_left() - self.world.launcher.startup_s))

    def recover(self, max_runs: int = 20) -> None:
        """Plain runs until one finds nothing new: every event must then be delivered."""
        for _ in range(max_runs):
            self.wait_lease()
            proc = self.run()
            summary = (proc.summaries() or [{}])[-1]
            if summary.get("outcome") == "idle":
                self.recovered = True
                self.check_status(True, "after recovery")
                return
            if summary.get("outcome") == "skipped":
                time.sleep(0.1)
        self.notes.append(f"not caught up after {max_runs} recovery runs")

    # Observations ---------------------------------------------------------------------------
    def doc(self) -> dict[str, Any]:
        ref = self.client.collection("relayers").document(self.relayer_id)
        return ref.get(timeout=5.0).to_dict() or {}

    def check_status(
        self, healthy: bool, when: str, reason: str = "", timeout: float = 20.0
    ) -> None:
        """/status must say what happened, in time: unhealthy (HTTP 503) with the reason,
        or healthy (200) after recovery."""
        entry = relayer_status(self.world.launcher, self.env(), timeout)
        reasons = [str(r) for r in entry.get("reasons") or []]
        right = entry.get("healthy") is healthy and entry.get("http") == (200 if healthy else 503)
        right = right and (not reason or any(reason in r for r in reasons))
        last = entry.get("last_run") or {}
        self.status_checks.append(
            {"when": when, "expected": healthy, "got": entry.get("healthy"), "right": right,
             "reasons": reasons, "last_outcome": last.get("outcome")}
        )  # fmt: skip

    def drain_now(self) -> None:
        """Take what the subscription holds now (before an emulator restart wipes it)."""
        self.copies.extend(drain(self.pubsub_host, self.topic.subscription_path, idle_s=0.3))

    def evidence(self) -> dict[str, Any]:
        """Everything the verdict needs, once every run has ended."""
        self.wait_all()
        self.poller.stop()
        self.drain_now()
        doc = self.doc()
        if self.settle is not None:
            self.world = self.settle()
        # the product's own reader: a large block's record spans documents
        store = FirestoreState(self.client, self.relayer_id, {})
        recorded = [
            {"event_id": e.event_id, "state": e.state}
            for r in store.records.read(0)
            for e in r.entries
        ]
        return {
            "strict_duplicates": self.strict_duplicates,
            "copies": self.copies,
            "procs": self.procs,
            "checkpoints": self.poller.seen,
            "doc": doc,
            "recorded": recorded,
            "status": self.status_checks,
            "notes": self.notes,
            "recovered": self.recovered,
        }

    def close(self) -> None:
        self.poller.stop()
        for proc in self.procs:
            proc.signal(signal.SIGKILL)
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        self.client.close()  # type: ignore[no-untyped-call]
        shutil.rmtree(self.dir, ignore_errors=True)
