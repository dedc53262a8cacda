"""A deterministic simulation of the relay protocol: random schedules from a seed.

Each schedule is a world (the fake chain, state and topic on a fake clock) and runs of the
real `function.run.relay.Relay` that overlap in time. Between any two port calls of any run
the schedule may start another run, move the clock (a little, or past a lease), mine blocks,
reorganise the chain at any depth, send a run SIGTERM, freeze a run past its lease, crash it
before or after a call, or fault the call (a provider's refusal, an error, a lagging node,
a node on an older fork, repeated logs; a Firestore error, contention, a lost answer; a
publish that fails, answers late or never). Then the faults stop, the frozen runs wake, and
clean runs relay to the tip; the guarantees (`invariants`) are checked throughout and after.

Everything that varies comes from the seed: `run_schedule(seed)` twice gives the same trace.
`MUTATIONS` put back known protocol defects, to show the checks catch them.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from unittest import mock

import function.core.watch as watch_module
from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import FACTORY_SETTING, catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink, Fate
from devstack.sim.fake_state import FakeState
from devstack.sim.invariants import Checker
from devstack.sim.mutations import MUTATIONS, mutated
from devstack.sim.scheduler import GO, Baton, Decision, RunThread, SimChain, SimSink, SimState
from function.config import Settings
from function.core.creations import Factory, factory_of
from function.core.factory import parse_factory
from function.run.relay import Relay

__all__ = ["MUTATIONS", "Result", "Schedule", "follow_line", "run_schedule", "run_schedules"]

SPECS = catalogue()
FACTORY_SPECS = catalogue(factory=True)
FACTORY = factory_of(parse_factory(FACTORY_SETTING), FACTORY_SPECS, "sim")
FACTORY_EVERY = 4  # one schedule in four is of the factory world (RELAYER_FACTORY)
FATES = (*(f for f in Fate if f is not Fate.ACCEPT), Fate.DOUBT_ACCEPT, Fate.DOUBT_ACCEPT)
READS_AFTER_CHECK = ("state.refs", "chain.logs_with_headers", "chain.headers")


@dataclass
class Result:
    seed: int
    violations: list[str]
    trace: list[str]
    runs: int
    steps: int
    outcomes: dict[str, int] = field(default_factory=dict)
    checks: int = 0  # invariant checks made
    kind: str = "batch"  # "batch": one-batch runs; "follow": follow mode (devstack/sim/follow)
    covered: dict[str, int] = field(default_factory=dict)  # what a follow schedule checked

    def report(self) -> str:
        kind = "" if self.kind == "batch" else f" ({self.kind})"
        lines = [f"seed {self.seed}{kind}: {len(self.violations)} violations"]
        lines += [f"  ! {v}" for v in self.violations]
        lines += ["  schedule:"] + [f"    {t}" for t in self.trace]
        return "\n".join(lines)


class Schedule:
    """One world and its runs, driven by one random generator."""

    kind = "batch"
    fault_scale = 1.0  # how often a port call is faulted or crashed, against one-batch's

    def __init__(self, seed: int, mutation: str | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        rng = self.rng
        self.settings = self.choose_settings()
        self.clock = FakeClock()
        # Drawn apart from `rng`: every other seed's schedule stays what it always was.
        world = random.Random(f"factory:{seed}")
        self.factory: Factory | None = FACTORY if world.randrange(FACTORY_EVERY) == 0 else None
        # Some factory schedules ask by topic alone from their fourth address on.
        self.address_list_max = world.choice((3, watch_module.ADDRESS_LIST_MAX))
        self.chain = FakeChain(salt=f"s{seed}", factory=self.factory is not None)
        self.specs = SPECS if self.factory is None else FACTORY_SPECS
        self.chain.max_span = rng.choice((None, None, None, 2, 3, 5))
        self.state = FakeState(fencing=mutation != "fencing")
        self.sink = FakeSink(self.clock.monotonic)
        self.clock.listeners.append(self.sink.deliver)
        self.mutation = mutation
        self.runs: dict[str, RunThread] = {}
        self.by_thread: dict[int, RunThread] = {}
        self.baton = Baton()
        self.trace: list[str] = []
        self.steps = 0
        self.faults = True
        self.stuck = False  # a fork below every recorded block: the relayer stops, loudly
        self.checker = Checker(
            self.clock, self.chain, self.state, self.sink, self.runs, self.settings.start_block
        )
        self.checker.attach()

    def choose_settings(self) -> Settings:
        rng = self.rng
        return settings(
            batch_size=rng.randint(3, 14),
            checkpoint_interval=rng.randint(1, 5),
            confirmations=rng.choice((0, 0, 1, 2)),
        )

    def log(self, what: str) -> None:
        self.trace.append(f"t={self.clock.now - 1000:8.3f} {what}")

    # -- runs ----------------------------------------------------------------------
    def _relay(self, run: RunThread) -> Relay:
        return Relay(
            settings=self.settings,
            specs=self.specs,
            factory=self.factory,
            chain=SimChain(run, self.chain),
            state=(seen := SimState(run, self.state)),
            records=seen,
            sink=SimSink(run, self.sink),
            stop=run.stop,
            clock=self.clock.utc,
        )

    def start(self) -> RunThread:
        name = f"r{len(self.runs) + 1}"
        run = RunThread(name, self._relay, self.baton)
        self.runs[name] = run
        self.by_thread[run._thread.ident or 0] = run
        self.log(f"{name} starts")
        self.step(run, GO)
        return run

    def step(self, run: RunThread, decision: Decision) -> None:
        self.steps += 1
        if decision is not GO:
            what = f"crash {decision.crash}" if decision.crash else decision.fault
            self.log(f"{run.name} {run.parked}: {what} {decision.arg:g}")
        run.step(decision)
        if run.finished:
            outcome = run.outcome.summary.outcome if run.outcome else "crashed"
            error = run.outcome.summary.error if run.outcome else None
            self.log(f"{run.name} ends {outcome}" + (f": {error[:90]}" if error else ""))

    def waiting(self, seconds: float) -> None:
        """A run waits on publish answers: a step of its own (others go meanwhile)."""
        run = self.by_thread[threading.get_ident()]
        run.after(run.park("wait"))

    def active(self) -> list[RunThread]:
        return [r for r in self.runs.values() if not r.finished]

    def runnable(self) -> list[RunThread]:
        now = self.clock.now
        return [r for r in self.active() if r.frozen_until is None or r.frozen_until <= now]

    # -- decisions -----------------------------------------------------------------
    def decide(self, run: RunThread) -> Decision:
        rng, call = self.rng, run.parked
        if not self.faults or call == "start":
            return GO
        roll = rng.random()
        port = call.split(".")[0]
        scale = self.fault_scale
        if roll < (0.002 if call == "wait" else 0.012) * scale:  # a wait is many steps
            return Decision(crash=rng.choice(("before", "after")))
        if roll > (0.2 if port == "sink" else 0.045) * scale:
            return GO
        if port == "chain":
            fault = rng.choice(("rpc_error", "lag", "stale", "duplicates", "refuse"))
            return Decision(fault=fault, arg=float(rng.randint(1, 3)))
        if port == "state":
            method = call.split(".")[1]
            choices = {
                "acquire": ("contention", "error", "lost", "lost_unread"),
                "write": ("error", "lost", "partial"),
                "commit": ("error", "lost", "lost_unread"),
            }.get(method, ("error",))
            return Decision(fault=rng.choice(choices))
        if port == "sink":
            fate = rng.choice(FATES)
            return Decision(fault=fate.value, arg=rng.uniform(0.01, 12.0))
        return GO

    def chaos(self, budget: int, max_runs: int) -> None:
        rng = self.rng
        lease = self.settings.lease_s
        started = 0
        for _ in range(budget):
            runnable = self.runnable()
            roll = rng.random()
            if (roll < 0.1 and started < max_runs) or (not self.active() and started < max_runs):
                self.start()
                started += 1
            elif roll < 0.65 and runnable:
                run = rng.choice(runnable)
                if rng.random() < 0.02:
                    extra = rng.uniform(0, lease)
                    run.frozen_until = self.clock.now + lease + extra
                    self.log(f"{run.name} freezes at {run.parked} for {lease + extra:.3f} s")
                else:
                    self._between_reads(run)
                    self.step(run, self.decide(run))
            elif roll < 0.75:
                dt = rng.uniform(0.05, 3.0) if rng.random() < 0.85 else lease + rng.uniform(0, 5)
                self.log(f"clock +{dt:.3f}")
                self.clock.advance(dt)
            elif roll < 0.85:
                events = [rng.choice((0, 0, 1, 2, 3)) for _ in range(rng.randint(1, 3))]
                self.chain.mine(events)
                self.log(f"mine {events} (head {self.chain.head})")
            elif roll < 0.91:
                depth = rng.randint(1, max(1, min(self.chain.head, 8)))
                events = [rng.choice((0, 1, 2)) for _ in range(max(0, depth + rng.randint(-2, 2)))]
                self.chain.reorg(depth, events)
                self.log(f"reorg depth {depth} -> {events} (head {self.chain.head})")
            elif roll < 0.94 and self.active():
                run = rng.choice(self.active())
                if not run.stop.is_set():
                    run.stop.set()
                    self.log(f"{run.name} SIGTERM")
            elif not self.active() and started >= max_runs:
                return

    def _between_reads(self, run: RunThread) -> None:
        """Reorganise between two reads of one run (its check and its logs), and stop a run
        while it waits for Pub/Sub, more often than chance alone would."""
        rng = self.rng
        if run.parked in READS_AFTER_CHECK and rng.random() < 0.1:
            depth = rng.randint(1, max(1, min(self.chain.head, 6)))
            checkpoint = run.grant.next_block if run.grant else None
            if checkpoint is not None and rng.random() < 0.5:  # down to the checked block
                depth = max(1, self.chain.head - checkpoint + 1 + rng.randint(1, 3))
            events = [rng.choice((0, 1, 2)) for _ in range(max(0, depth + rng.randint(-1, 2)))]
            self.chain.reorg(depth, events)
            self.log(f"reorg depth {depth} -> {events} before {run.name} {run.parked}")
        if run.parked == "wait" and not run.stop.is_set() and rng.random() < 0.1:
            run.stop.set()
            self.log(f"{run.name} SIGTERM while it waits for Pub/Sub")

    def settle(self) -> None:
        """Faults off; frozen runs wake; every run ends."""
        self.faults = False
        while self.active():
            runnable = self.runnable()
            if not runnable:
                until = min(r.frozen_until or 0.0 for r in self.active())
                self.clock.advance_to(until)
                continue
            self.step(self.rng.choice(runnable), GO)

    def finish(self) -> None:
        """Blocks past every record and the checkpoint, then clean runs one after another up
        to the tip. (A chain that a reorganisation made shorter than the checkpoint looks
        like a node that lags: a run is idle until the chain reaches it again.)"""
        top = max((r.number for r in self.state.blocks.values()), default=0)
        top = max(top, (self.state.next_block or 0) - 1)
        need = top + self.settings.confirmations + 1 - self.chain.head
        self.chain.mine([self.rng.choice((0, 1)) for _ in range(max(1, need))])
        self.clock.advance(self.settings.lease_s * 2 + 30)
        for _ in range(60):
            run = self.start()
            while not run.finished:
                self.step(run, GO)
            summary = run.outcome.summary if run.outcome else None
            if summary is None:
                break
            if summary.outcome == "idle":
                return
            if summary.error and "reorganised below" in summary.error:
                self.log("stuck on a reorganisation deeper than the records (safe)")
                self.stuck = True
                return
            self.clock.advance(self.settings.lease_s + 1 if summary.outcome == "skipped" else 1)
        self.checker.fail("§7.4 clean runs did not catch up with the chain")

    def play(self) -> None:
        """The schedule's runs and faults (follow schedules have their own)."""
        rng = self.rng
        self.chaos(rng.randint(40, 160), rng.randint(2, 6))

    def check(self) -> None:
        """Checks of this kind of schedule on top of `Checker.final`."""

    def run(self) -> Result:
        rng = self.rng
        self.chain.mine([rng.choice((0, 0, 1, 2)) for _ in range(rng.randint(2, 12))])
        world = " (factory world)" if self.factory else ""
        self.log(f"chain head {self.chain.head}{world}; {self.settings}")
        limit = self.address_list_max if self.factory else watch_module.ADDRESS_LIST_MAX
        with (
            deterministic(self.clock, self.waiting),
            mutated(self.mutation),
            mock.patch.object(watch_module, "ADDRESS_LIST_MAX", limit),
        ):
            try:
                self.play()
                self.settle()
                self.finish()
            finally:
                self.faults = False
                for run in self.active():  # never left parked: they die
                    while not run.finished:
                        run.step(Decision(crash="before"))
        self.checker.final(chain=not self.stuck)
        self.check()
        outcomes: dict[str, int] = {}
        for r in self.runs.values():
            key = r.outcome.summary.outcome if r.outcome else "crashed"
            outcomes[key] = outcomes.get(key, 0) + 1
        if self.stuck:
            outcomes["stuck"] = 1
        return Result(
            self.seed,
            self.checker.violations,
            self.trace,
            len(self.runs),
            self.steps,
            outcomes,
            self.checker.checks,
            self.kind,
            self.covered(),
        )

    def covered(self) -> dict[str, int]:
        return {}


def schedule_of(
    seed: int, mutation: str | None = None, polls: tuple[float, ...] | None = None
) -> Schedule:
    """Seed `seed`'s schedule: one in `FOLLOW_EVERY` is a follow-mode one (those seeds'
    one-batch schedules are not run; every other seed's is what it always was). `polls`:
    the RELAYER_POLL_INTERVAL values follow schedules draw from."""
    from devstack.sim.follow import FOLLOW_EVERY, FollowSchedule  # it builds on Schedule

    if seed % FOLLOW_EVERY == FOLLOW_EVERY - 1:
        return FollowSchedule(seed, mutation, polls)
    return Schedule(seed, mutation)


def run_schedule(
    seed: int, mutation: str | None = None, polls: tuple[float, ...] | None = None
) -> Result:
    logging.disable(logging.CRITICAL)
    try:
        return schedule_of(seed, mutation, polls).run()
    finally:
        logging.disable(logging.NOTSET)


def run_schedules(
    first: int,
    count: int,
    mutation: str | None = None,
    stop_at_first: bool = True,
    each: Callable[[Result], None] | None = None,
    polls: tuple[float, ...] | None = None,
) -> list[Result]:
    """Schedules `first`..`first+count-1`; the failing ones (all, or the first)."""
    failing = []
    for seed in range(first, first + count):
        result = run_schedule(seed, mutation, polls)
        if each is not None:
            each(result)
        if result.violations:
            failing.append(result)
            if stop_at_first:
                break
    return failing


def follow_line(covered: dict[str, int]) -> str:
    """What the follow schedules among them judged (their `Result.covered`, summed)."""
    c = {k: covered.get(k, 0) for k in ("follow", "handovers", "gaps", "exits", "waits")}
    return (
        f"{c['follow']} follow schedules: {c['handovers']} hand-overs, {c['gaps']} gaps "
        f"between looks, {c['exits']} exits and {c['waits']} waits judged"
    )
