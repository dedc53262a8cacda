"""The relayers of one task run side by side (`function.ops.app.run_relayers`), over the
in-memory fakes: a relayer whose RPC endpoint hangs or whose topic fails never keeps the
others from their looks; each log record carries its own relayer's id; the hard exit after
SIGTERM reports every relayer still running; outcomes keep the fleet's order; one-batch runs
are bounded, followers are not.

The relays run in real threads (that is the point), on one shared fake clock that only one
of them moves at a time; a real wait happens only when a test fails (a bounded `Event.wait`).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time as real_time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import function.logs as logs
import function.stopping as stopping
from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink, Fate
from devstack.sim.fake_state import FakeState
from function.config import Runtime, Settings
from function.core.model import Header
from function.errors import StoppedError
from function.ops.app import run_relayers
from function.ops.side_by_side import BATCH_RUNS_AT_ONCE
from function.run.relay import Outcome, Relay
from function.stopping import StopSignal

SPECS = catalogue()
POLL = 5.0
FOLLOW = {"run_s": 60.0, "poll_interval_s": POLL, "lease_s": 12.0, "batch_size": 50}
FAILS_AFTER_S = 30.0  # how long a test waits for what should happen at once


class HungChain:
    """An RPC endpoint that never answers: every call waits for the stop, then gives up as
    the interruptible JSON-RPC client does."""

    def __init__(self, stop: StopSignal) -> None:
        self.stop = stop
        self.entered = threading.Event()

    host = "hung.example"  # what the endpoint is shown as (no call)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the hung chain got {name} before its first answer")

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        self.entered.set()
        self.stop.wait(3600)
        raise StoppedError("stopped while waiting for eth_blockNumber: the run was asked to stop")


class GatedChain:
    """The fake chain, whose reads of the head go through `gate` first."""

    def __init__(self, chain: FakeChain, gate: Callable[[], None]) -> None:
        self.chain, self.gate = chain, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chain, name)

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        self.gate()
        return self.chain.head_and_header(tag, number)


@dataclass
class Fleet:
    """Relayers, each with its own chain, state and topic, on one fake clock."""

    stop: StopSignal = field(default_factory=StopSignal)
    clock: FakeClock = field(default_factory=FakeClock)
    chains: dict[str, Any] = field(default_factory=dict)
    states: dict[str, FakeState] = field(default_factory=dict)
    sinks: dict[str, FakeSink] = field(default_factory=dict)
    settings: list[Settings] = field(default_factory=list)

    def add(self, relayer_id: str, chain: Any = None, **overrides: Any) -> FakeSink:
        self.settings.append(settings(relayer_id=relayer_id, **overrides))
        if chain is None:
            chain = FakeChain()
            chain.mine([1, 2, 1])
        sink = FakeSink()
        sink.clock = self.clock.monotonic
        self.clock.listeners.append(sink.deliver)
        self.chains[relayer_id], self.states[relayer_id] = chain, FakeState()
        self.sinks[relayer_id] = sink
        return sink

    def wait(self, seconds: float) -> bool:
        """`StopSignal.wait` on the fake clock (steps of 0.25 s), ending at a stop."""
        end = self.clock.now + max(0.0, seconds)
        while self.clock.now < end and not self.stop.is_set():
            self.clock.advance(min(0.25, end - self.clock.now))
            # A real pause: on a loaded machine the other relayers' threads get to run
            # before a follower's whole window has gone by on the fake clock.
            real_time.sleep(0.001)
        return self.stop.is_set()

    def build(self, s: Settings, stop: StopSignal) -> Relay:
        state = self.states[s.relayer_id]
        return Relay(
            settings=s,
            specs=SPECS,
            chain=self.chains[s.relayer_id],
            state=state,
            records=state,
            sink=self.sinks[s.relayer_id],
            stop=stop,
            clock=self.clock.utc,
            wait=self.wait,
        )

    def run(self) -> list[Outcome]:
        return run_relayers(Runtime(None, 0, 1), self.settings, self.stop, build=self.build)

    def in_background(self) -> tuple[threading.Thread, list[list[Outcome]]]:
        out: list[list[Outcome]] = []
        thread = threading.Thread(target=lambda: out.append(self.run()), daemon=True)
        thread.start()
        return thread, out

    def ended(self, relayer_id: str) -> threading.Event:
        """Set when that relayer's run has committed its summary."""
        done = threading.Event()
        state = self.states[relayer_id]
        state.on_write.append(lambda _: done.set() if state.last_run is not None else None)
        return done


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet()
    with deterministic(f.clock):
        try:
            yield f
        finally:
            f.stop.set()  # whatever failed, nothing is left hanging


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The JSON lines the relayer logs (DEBUG: the look records too)."""
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    out = io.StringIO()
    logs.setup("DEBUG", "json")
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    yield out
    root.handlers[:], _ = kept
    root.setLevel(kept[1])


def records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def label(record: dict[str, Any]) -> str | None:
    return (record.get("logging.googleapis.com/labels") or {}).get("relayer_id")


def test_a_hung_endpoint_and_a_failing_topic_do_not_starve_a_follower(fleet: Fleet) -> None:
    hung = HungChain(fleet.stop)
    fleet.add("hung", chain=hung, **FOLLOW)  # first: one after the other, it blocked all
    fleet.add("failing", **FOLLOW).fates.extend([(Fate.FAIL, 0.0)] * 5)
    fleet.add("healthy", **FOLLOW)
    healthy_done = fleet.ended("healthy")

    runner, out = fleet.in_background()
    assert healthy_done.wait(FAILS_AFTER_S), "the healthy follower never finished its window"
    assert hung.entered.is_set() and runner.is_alive()  # still hanging meanwhile
    fleet.stop.set()  # SIGTERM: the hung one gives up its call
    runner.join(FAILS_AFTER_S)
    assert not runner.is_alive()

    [outcomes] = out
    assert [o.summary.relayer_id for o in outcomes] == ["hung", "failing", "healthy"]
    hung_run, failing, healthy = outcomes
    assert healthy.summary.outcome == "ok" and not healthy.summary.interrupted
    assert healthy.summary.extra["looks"] == 13  # at 0, 5, ..., 60 on the fake clock
    assert healthy.summary.to_block == 3 and fleet.states["healthy"].next_block == 4
    assert failing.summary.outcome == "failed" and failing.exit_code == 1
    assert hung_run.summary.interrupted and hung_run.summary.outcome == "idle"
    for state in fleet.states.values():
        assert state.lease.owner is None  # every relayer released its lease


def test_each_record_carries_its_own_relayer_s_id(fleet: Fleet, lines: io.StringIO) -> None:
    # Both relayers are in their first look at once, then log: a label shared by the
    # process would carry whichever relayer set it last.
    both = threading.Barrier(2, timeout=FAILS_AFTER_S)
    for name in ("alpha", "beta"):
        chain = FakeChain()
        chain.mine([1, 1])
        fleet.add(name, chain=GatedChain(chain, both.wait))
    outcomes = fleet.run()

    assert [o.summary.outcome for o in outcomes] == ["ok", "ok"]
    run_of = {o.summary.run_id: o.summary.relayer_id for o in outcomes}
    found = records(lines)
    looks = [r for r in found if "look" in r]
    assert sorted(label(r) or "" for r in looks) == ["alpha", "beta"]
    for record in found:
        if "run_id" in record:
            assert label(record) in (None, run_of[record["run_id"]]), record
    summaries = [r for r in found if r.get("run_summary")]
    assert sorted(r["relayer_id"] for r in summaries) == ["alpha", "beta"]
    assert all(label(r) is None for r in summaries)  # its own field, not repeated as a label
    assert all(label(r) is not None for r in found if "run_id" in r and not r.get("run_summary"))


def test_the_hard_exit_reports_every_relayer_still_running(
    fleet: Fleet, lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = {name: HungChain(fleet.stop) for name in ("one", "two", "three")}
    for name, chain in chains.items():
        fleet.add(name, chain=chain, **FOLLOW)
    exits: list[int] = []
    monkeypatch.setattr(stopping.os, "_exit", exits.append)
    monkeypatch.setattr(stopping.logging, "shutdown", lambda: None)
    runner, _ = fleet.in_background()
    for chain in chains.values():
        assert chain.entered.wait(FAILS_AFTER_S)

    stopping._hard_exit(1, fleet.stop)  # 9.5 s after SIGTERM, every relayer still in its call

    assert exits == [1]
    last_words = [r for r in records(lines) if r.get("run_summary")]
    assert sorted(r["relayer_id"] for r in last_words) == ["one", "three", "two"]
    for r in last_words:
        assert r["outcome"] == "failed" and r["interrupted"] is True
        assert "after SIGTERM" in r["message"]
    fleet.stop.set()
    runner.join(FAILS_AFTER_S)


def test_outcomes_keep_the_fleet_s_order_whoever_ends_first(fleet: Fleet) -> None:
    first = FakeChain()
    first.mine([1])
    fleet.add("first", chain=GatedChain(first, lambda: after_the_second()))
    fleet.add("second")
    second_done = fleet.ended("second")

    def after_the_second() -> None:
        assert second_done.wait(FAILS_AFTER_S), "the second relayer did not run meanwhile"

    outcomes = fleet.run()
    assert [o.summary.relayer_id for o in outcomes] == ["first", "second"]
    assert [o.summary.outcome for o in outcomes] == ["ok", "ok"]


@pytest.mark.parametrize(("mode", "at_once"), [("one batch", BATCH_RUNS_AT_ONCE), ("follow", 6)])
def test_one_batch_runs_are_bounded_followers_all_run(
    fleet: Fleet, mode: str, at_once: int
) -> None:
    # Each run's first look waits until `at_once` are in theirs: a bound below that never
    # gets there, one above it shows in `peak`.
    lock, gate = threading.Lock(), threading.Event()
    active, peak = [0], [0]

    def enter() -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            if active[0] == at_once:
                gate.set()
        gate.wait(FAILS_AFTER_S)
        with lock:
            active[0] -= 1

    overrides = FOLLOW | {"run_s": 1.0} if mode == "follow" else {}
    for n in range(6):
        chain = FakeChain()
        chain.mine([1])
        fleet.add(f"r{n}", chain=GatedChain(chain, enter), **overrides)
    outcomes = fleet.run()

    assert [o.summary.outcome for o in outcomes] == ["ok"] * 6
    assert gate.is_set() and peak[0] == at_once


def test_a_publish_thread_logs_with_its_relayer_s_label(lines: io.StringIO) -> None:
    # The Pub/Sub client's retry warning is logged from the thread a publish request runs in.
    import function.run.dispatch as dispatch

    def publish() -> list[str]:
        logging.getLogger("function.adapters.pubsub").warning("Pub/Sub publish failed; retrying")
        return ["1"]

    with logs.relayer_labelled("gamma"):
        assert dispatch._in_thread(publish).result(timeout=FAILS_AFTER_S) == ["1"]
    [record] = records(lines)
    assert label(record) == "gamma"
