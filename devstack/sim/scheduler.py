"""Runs of the real `Relay` as threads that take turns: one runs at a time, between two port
calls, when the simulation says so; every port call is a step the simulation decides.

A run's chain, state and sink are proxies that park the run's thread at each call until the
simulation steps it with a `Decision`: go on (maybe with a fault in that call), crash before
or after the call (a `Crash`, which the run code does not catch: a crashed run makes no
further call). Waiting on a publish answer is a step too. The simulation's thread and the
runs' never run at once, so a seed always gives the same schedule.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from devstack.sim.clock import FakeClock
from devstack.sim.fake_chain import ChainView, FakeChain
from devstack.sim.fake_sink import FakeSink, Fate
from devstack.sim.fake_state import FakeState
from function.core.catalogue import TopicQuery
from function.core.checkpoint import Commit, Grant
from function.core.lease import Lease
from function.core.messages import Message
from function.core.model import BlockRecord, BlockRef, Header, RawLog
from function.core.planning import BlockRange
from function.core.watch import Child
from function.errors import RpcError
from function.run.relay import Outcome, Relay
from function.stopping import StopSignal

T = TypeVar("T")


class Crash(BaseException):
    """The process died at this instant."""


@dataclass(frozen=True)
class Decision:
    """What happens to one port call."""

    crash: str = ""  # "", "before" or "after"
    fault: str = ""  # a fault of that port (see the proxies)
    arg: float = 0.0  # the fault's parameter (a lag, a delay)


GO = Decision()


class Baton:
    """A binary semaphore on a bare lock (any thread may release it): the fastest hand-over
    between two threads that CPython has."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()


class RunThread:
    """One run of the relay job, in a thread that only moves when stepped."""

    def __init__(self, name: str, make: Callable[[RunThread], Relay], baton: Baton) -> None:
        self.name = name
        self.stop = StopSignal()
        self.relay = make(self)
        self.grant: Grant | None = None
        self.parked = "start"
        self.finished = False
        self.crashed = False
        self.outcome: Outcome | None = None
        self.frozen_until: float | None = None
        self.sleep_until: float | None = None  # parked in `Relay.wait` until then (follow)
        self.lease_seen: Lease | None = None  # the lease it read when it could not take it
        self.calls_after_crash = 0
        self._decision = GO
        self._go = Baton()
        self._baton = baton
        self._thread = threading.Thread(target=self._main, name=f"sim-{name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        self._go.acquire()
        try:
            self.outcome = self.relay.run()
        except Crash:
            self.crashed = True
        finally:
            self.finished = True
            self._baton.release()

    def step(self, decision: Decision) -> None:
        """Let the run make its parked call and go on to its next one (or its end)."""
        self._decision = decision
        self._go.release()
        self._baton.acquire()

    def park(self, call: str) -> Decision:
        """In the run's thread: wait for the simulation to decide this call."""
        if self.crashed:
            self.calls_after_crash += 1
            raise Crash()
        self.parked = call
        self._baton.release()
        self._go.acquire()
        decision = self._decision
        if decision.crash == "before":
            self.crashed = True
            raise Crash()
        return decision

    def after(self, decision: Decision) -> None:
        if decision.crash == "after":
            self.crashed = True
            raise Crash()

    def sleep(self, seconds: float, clock: FakeClock) -> bool:
        """In the run's thread, `Relay.wait`: a step the simulation takes once `clock` has
        reached the end of the wait, or at a stop (True); stepped sooner (no simulation
        waits for it), it moves the clock itself."""
        self.sleep_until = clock.now + max(0.0, seconds)
        try:
            decision = self.park("pause")
            if not self.stop.is_set():
                clock.advance_to(self.sleep_until)
        finally:
            self.sleep_until = None
        self.after(decision)
        return self.stop.is_set()

    def wakes_at(self) -> float:
        """When the run can move next: at once (-1), or when its wait or its freeze ends."""
        due = -1.0 if self.sleep_until is None or self.stop.is_set() else self.sleep_until
        return max(due, self.frozen_until or -1.0)

    def join(self) -> None:
        self._thread.join()


class SimChain:
    """The chain a run sees: a node of the world's chain, with this call's fault."""

    def __init__(self, run: RunThread, chain: FakeChain) -> None:
        self._run = run
        self._chain = chain

    @property
    def host(self) -> str:
        return self._chain.host

    def _node(self, method: str) -> tuple[ChainView, Decision]:
        d = self._run.park(f"chain.{method}")
        if d.fault == "rpc_error":
            raise RpcError(f"RPC endpoint {self._chain.host} failed: 503 Service Unavailable")
        node = self._chain.view(
            older=int(d.arg) if d.fault == "stale" else 0,
            lag=int(d.arg) if d.fault == "lag" else 0,
        )
        node.duplicates = d.fault == "duplicates"
        return node, d

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        node, _ = self._node("head_and_header")
        return node.head_and_header(tag, number)

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        node, _ = self._node("headers")
        return node.headers(numbers)

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        node, d = self._node("logs_with_headers")
        if d.fault == "refuse" and len(blocks) > 1:
            node.max_span = max(1, min(len(blocks) - 1, int(d.arg)))
        return node.logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


class SimState:
    """The state and records a run sees (both ports): the world's store, this call's fault,
    crashes around writes. `lease_reads`: reading the lease (for a hand-over) is a step too;
    off where no follower runs, so those schedules stay what they were."""

    def __init__(self, run: RunThread, state: FakeState, lease_reads: bool = False) -> None:
        self._run = run
        self._state = state
        self._lease_reads = lease_reads

    def _call(self, method: str, do: Callable[[], T]) -> T:
        d = self._run.park(f"state.{method}")
        if d.fault:
            self._state.faults.insert(0, (method, d.fault))
        try:
            result = do()
        finally:
            self._state.faults[:] = [f for f in self._state.faults if f[0] != method]
        self._run.after(d)
        return result

    def acquire(
        self, run_id: str, now: Any, lease_s: float, follow_until: datetime | None = None
    ) -> Grant | None:
        grant = self._call(
            "acquire", lambda: self._state.acquire(run_id, now, lease_s, follow_until)
        )
        self._run.grant = grant or self._run.grant
        return grant

    def read(self, start: int, end: int | None = None) -> list[BlockRecord]:
        return self._call("read", lambda: self._state.read(start, end))

    def refs(self, blocks: BlockRange) -> list[BlockRef]:
        return self._call("refs", lambda: self._state.refs(blocks))

    def refs_below(self, number: int, limit: int) -> list[BlockRef]:
        return self._call("refs_below", lambda: self._state.refs_below(number, limit))

    def write(self, grant: Grant, records: Sequence[BlockRecord]) -> None:
        self._call("write", lambda: self._state.write(grant, records))

    def commit(self, grant: Grant, now: datetime, change: Commit) -> None:
        self._call("commit", lambda: self._state.commit(grant, now, change))

    def read_lease(self) -> Lease:
        if not self._lease_reads:
            return self._state.read_lease()
        lease = self._call("read_lease", self._state.read_lease)
        self._run.lease_seen = lease
        return lease

    def count_skipped(self, now: Any) -> None:
        self._call("count_skipped", lambda: self._state.count_skipped(now))

    def children(self, grant: Grant) -> tuple[list[Child], int | None]:
        return self._state.children(grant)  # not a step: the simulated runs have no factory


class SimSink:
    """The topic a run publishes to: this request's fate, crashes around it."""

    def __init__(self, run: RunThread, sink: FakeSink) -> None:
        self._run = run
        self._sink = sink

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        d = self._run.park("sink.publish")
        fate = Fate(d.fault) if d.fault else Fate.ACCEPT
        if d.crash == "after":  # accepted, then the process died before the answer
            with contextlib.suppress(Exception):  # not sent: the deadline had passed
                self._sink.publish_as(self._run.name, messages, deadline)
            self._run.after(d)
        return self._sink.publish_as(self._run.name, messages, deadline, fate, d.arg)
