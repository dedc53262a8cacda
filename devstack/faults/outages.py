"""Scenarios where a dependency fails: Pub/Sub or Firestore stopped mid-run and restarted,
Firestore transactions contended, the JSON-RPC endpoint misbehaving (devstack/rpcproxy/proxy.py).

The emulators that get stopped are dedicated ones (`Restartable`), restarted on the same
port, so other trials never notice. Pub/Sub loses its topics on a restart: before stopping
it, the run is frozen (SIGSTOP) and the subscription drained, so nothing Pub/Sub accepted
is lost by the test itself; topic and subscription are made again (the runs frozen again
meanwhile) before it is thawed. Firestore is exported while the run is frozen and restarted
from that export: an outage, not a loss of the database.
"""

from __future__ import annotations

import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from google.cloud import firestore

from devstack.faults.proc import Proc
from devstack.faults.trial import Trial
from devstack.faults.world import World, firestore_client
from devstack.rpcproxy import RpcProxy
from devstack.rpcproxy.bodies import FAILURES, RANGE_BODIES, RATE_BODIES, RESULT_BODIES
from devstack.stack.clients import export_firestore
from devstack.stack.services import Emulator, start_firestore_emulator, start_pubsub_emulator

OUTAGE_LEASE_S = 6.0  # the frozen moments must not cost the run its lease
STATUS_WAIT_S = 10.0  # how long /status may take to answer during an outage


class Restartable:
    """A dedicated emulator that can be stopped and started again on its port."""

    def __init__(self, kind: str, project: str) -> None:
        self.kind, self.project = kind, project
        self.lock = threading.Lock()  # one outage trial at a time
        self.emulator: Emulator = self._start(None, None)
        self.address = self.emulator.address

    def _start(self, port: int | None, data: Path | None) -> Emulator:
        if self.kind == "pubsub":
            return start_pubsub_emulator(self.project, port=port)
        return start_firestore_emulator(self.project, port=port, import_data=data)

    def stop(self) -> None:
        self.emulator.stop()

    def start(self, data: Path | None = None) -> None:
        self.emulator = self._start(self.emulator.port, data)


def _frozen(procs: list[Proc | None], action: Callable[[], None]) -> None:
    """Do `action` while the runs that are still going are stopped (SIGSTOP ... SIGCONT)."""
    alive = [p for p in procs if p is not None and not p.done.is_set()]
    for p in alive:
        p.signal(signal.SIGSTOP)
    try:
        action()
    finally:
        for p in alive:
            p.signal(signal.SIGCONT)


def _outage_run(trial: Trial, rng: random.Random) -> Proc:
    """A run slowed enough (20 ms a message) for the outage to land inside it."""
    run = trial.launch("slow_publish", pause=0.02)
    granted = trial.wait_for(run, "acquired")
    if granted is not None:
        time.sleep(max(0.0, granted["t"] + rng.uniform(0.0, 1.4) - time.time()))
    return run


def _judge_status_after(trial: Trial, run: Proc) -> None:
    """A run that failed and could record it must show in /status (it held the lease)."""
    summary = (run.summaries() or [{}])[0]
    last = (trial.doc().get("last_run") or {}) if summary else {}
    if summary.get("outcome") == "failed" and last.get("run_id") == summary.get("run_id"):
        trial.check_status(False, "after the failed run", reason="last run failed")
    elif summary.get("outcome") == "failed":
        trial.notes.append("a failure Firestore could not record")


def _after_outage(trial: Trial, run: Proc, fresh: Proc | None) -> None:
    """The runs end; the failed one shows in /status; then recovery."""
    run.wait()
    if fresh is not None:
        fresh.wait()
    _judge_status_after(trial, run)
    trial.wait_lease()
    trial.recover()


def pubsub_outage(world: World, rng: random.Random, pubsub: Restartable) -> Trial:
    """The Pub/Sub emulator stops mid-run for 0.5-3 s, then comes back (empty)."""
    with pubsub.lock:
        trial = Trial(world, "pubsub-outage", lease_s=OUTAGE_LEASE_S, pubsub_host=pubsub.address,
                      interval=rng.choice((2, 3, 4)))  # fmt: skip
        run = _outage_run(trial, rng)

        def stop() -> None:  # what Pub/Sub accepted so far is taken before it is wiped
            trial.drain_now()
            pubsub.stop()

        def start() -> None:  # back with the topic and subscription before a run sees it
            pubsub.start()
            trial.make_topic()

        _frozen([run], stop)
        fresh = trial.launch() if rng.random() < 0.5 else None  # a run starting in the outage
        time.sleep(rng.uniform(0.5, 3.0))
        _frozen([run, fresh], start)
        _after_outage(trial, run, fresh)
    return trial


def firestore_outage(world: World, rng: random.Random, store: Restartable) -> Trial:
    """The Firestore emulator stops mid-run for 0.5-3 s, then comes back with its data."""
    with store.lock:
        trial = Trial(world, "firestore-outage", lease_s=OUTAGE_LEASE_S,
                      firestore_host=store.address, interval=rng.choice((2, 3, 4)))  # fmt: skip
        exports = Path(tempfile.mkdtemp(prefix="faults-export-"))
        try:
            run = _outage_run(trial, rng)
            saved: list[Path] = []

            def stop() -> None:  # exported while the run is frozen: nothing written after it
                saved.append(export_firestore(store.address, store.project, exports))
                store.stop()

            _frozen([run], stop)
            fresh = trial.launch() if rng.random() < 0.5 else None
            # /status asked during the outage must answer in time, unhealthy: the outage lasts
            # until it has answered (at most STATUS_WAIT_S) or 0.5-3 s, whichever is longer.
            status = threading.Thread(
                target=trial.check_status,
                args=(False, "during the Firestore outage", "state unreadable", STATUS_WAIT_S),
            )
            status.start()
            time.sleep(rng.uniform(0.5, 3.0))
            status.join()
            store.start(saved[0])
            _after_outage(trial, run, fresh)
        finally:
            shutil.rmtree(exports, ignore_errors=True)
    return trial


def contention(world: World, rng: random.Random, writers: int = 3) -> Trial:
    """Transactions on the relayer document in a loop while overlapping runs relay."""
    trial = Trial(world, "contention", batch=6, interval=rng.choice((2, 3)))
    stop = threading.Event()

    def hammer() -> None:
        client = firestore_client(world.project, trial.firestore_host)
        ref = client.collection("relayers").document(trial.relayer_id)

        @firestore.transactional
        def touch(txn: firestore.Transaction) -> None:
            snapshot = ref.get(transaction=txn)
            probes = int((snapshot.to_dict() or {}).get("contention_probe") or 0)
            txn.set(ref, {"contention_probe": probes + 1}, merge=True)

        while not stop.is_set():
            try:
                touch(client.transaction())
            except Exception:
                time.sleep(0.01)
        client.close()  # type: ignore[no-untyped-call]

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(writers)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            for _ in range(rng.randint(2, 6)):
                proc = trial.launch()
                if rng.random() < 0.25:
                    threading.Thread(
                        target=trial.kill_after, args=(proc, rng.uniform(0, 0.6)), daemon=True
                    ).start()
            trial.wait_all()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    trial.wait_lease()
    trial.recover()
    return trial


def _arm(proxy: RpcProxy, rng: random.Random) -> None:
    """One to three provider misbehaviours for the next run."""
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("fail", "rate", "delay", "lag", "range", "results"))
        if kind == "fail":
            method = rng.choice((None, "eth_getLogs", "eth_getBlockByNumber", "eth_blockNumber"))
            proxy.fail(rng.randint(1, 4), kind=rng.choice(FAILURES), method=method)
        elif kind == "rate":
            proxy.rate_limit(rng.randint(1, 3), retry_after=rng.choice((None, 0.2, 1.0)),
                             provider=rng.choice(list(RATE_BODIES)))  # fmt: skip
        elif kind == "delay":
            proxy.delay(rng.uniform(0.1, 1.2), count=rng.randint(1, 4))
        elif kind == "lag":
            proxy.lag(rng.randint(1, 6), logs=rng.choice(("error", "truncate")))
        elif kind == "range":
            proxy.limit_log_range(rng.choice((3, 5)), provider=rng.choice(list(RANGE_BODIES)))
        else:
            proxy.limit_log_results(rng.choice((4, 9)), provider=rng.choice(list(RESULT_BODIES)))


def rpc_faults(world: World, rng: random.Random, runs: int = 4) -> Trial:
    """Runs through a misbehaving provider, some killed while eth_getLogs is in flight."""
    proxy = RpcProxy(world.rpc_url)
    proxy._server.handle_error = lambda *_: None  # type: ignore[method-assign]  # killed clients
    trial = Trial(world, "rpc", rpc_url=proxy.url("/v2/secret-key"),
                  batch=rng.choice((6, 10, 1000)), interval=rng.choice((2, 3, 4)))  # fmt: skip
    try:
        for _ in range(runs):
            _arm(proxy, rng)
            roll = rng.random()
            if roll < 0.25:
                proxy.delay(0.3, count=2)
                proc = trial.launch("during_getlogs", delay_ms=rng.uniform(20, 250))
            else:
                proc = trial.launch()
                if roll < 0.5:
                    trial.kill_after(proc, rng.uniform(0, 1.0))
            proc.wait()
            if (proc.summaries() or [{}])[0].get("outcome") == "failed":
                trial.check_status(False, "after a failed run", reason="last run failed")
            proxy.clear()
            trial.wait_lease()
        trial.recover()
    finally:
        proxy.stop()
    return trial
