"""Follow-mode schedules (RELAYER_RUN_SECONDS, docs/CONTRACT.md §7.7): executions started by a
simulated scheduler every period, each following the chain for its window, overlapping the
next at its end (the hand-over), on the fake clock.

A run waits (between looks, for a hand-over) through `Relay.wait`, which parks it until the
fake clock reaches the end of the wait or a SIGTERM wakes it; when no run can move, the clock
jumps to the next instant something happens (a wake, a start, a block), so a window costs no
real time. On top of that come the one-batch schedules' faults, by a level drawn from the
seed: "calm" (blocks and reorganisations only: the hand-over alone decides coverage),
"mild" and "rough" (port faults at a fraction of one-batch's rate, followers killed
mid-window, SIGTERM, a follower frozen past its lease, an operator's extra execution, slow
calls). Everything that is not the protocol's own doing is noted as a disturbance, which
the follow checks (`follow_checks`) excuse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from devstack.sim.fake_chain import Block
from devstack.sim.follow_checks import Disturbance, FollowChecker, RunTimes
from devstack.sim.scheduler import GO, Decision, RunThread, SimChain, SimSink, SimState
from devstack.sim.simulation import Schedule
from function.config import Settings
from function.run.relay import Relay

FOLLOW_EVERY = 6  # one seed in six is a follow schedule
POLLS = (1.0, 1.0, 2.0, 2.5, 3.0, 5.0)  # RELAYER_POLL_INTERVAL, drawn from the seed
LEVELS = ("calm", "calm", "mild", "rough")
FAULT_SCALE = {"calm": 0.0, "mild": 0.04, "rough": 0.2}


class FollowSchedule(Schedule):
    """Executions of a follower on a schedule's beat, and what may go wrong around them."""

    kind = "follow"

    def __init__(
        self, seed: int, mutation: str | None = None, polls: tuple[float, ...] | None = None
    ) -> None:
        self.polls = polls or POLLS
        super().__init__(seed, mutation)
        rng = self.rng
        s = self.settings
        self.level = rng.choice(LEVELS)
        self.fault_scale = FAULT_SCALE[self.level]
        # Cloud Scheduler's period: the first scheduled run at or after a window's end comes
        # within RELAYER_POLL_INTERVAL of it (what both deploy paths require), or up to a
        # poll interval before it (the successor waits).
        self.period = s.run_s + rng.uniform(-s.poll_interval_s, s.poll_interval_s / 2)
        self.startup_max = rng.choice((0.0, 0.5, 1.0, 2.0))
        self.executions = 3
        self.block_time = s.poll_interval_s * rng.uniform(0.5, 3.0)  # many looks find nothing
        self.following = True  # runs started now follow; the clean runs at the end do not
        self._timed: list[tuple[float, int, str, Callable[[], None]]] = []
        self._seq = 0
        self.play_end = self.horizon = 0.0
        self.follow = FollowChecker(
            s, self.clock, self.state, self.runs, self.checker, self.level == "calm"
        )
        self.follow.attach()
        self.times, self.disturbances = self.follow.times, self.follow.disturbances
        real_reorg = self.chain.reorg

        def reorg(depth: int, events: Sequence[int]) -> list[Block]:
            self.follow.reorgs.append(self.clock.now)
            return real_reorg(depth, events)

        self.chain.reorg = reorg  # type: ignore[method-assign]

    def choose_settings(self) -> Settings:
        rng = self.rng
        base = super().choose_settings()
        poll = rng.choice(self.polls)
        return replace(
            base,
            poll_interval_s=poll,
            run_s=max(10.0, round(poll * rng.uniform(3.0, 5.0), 1)),
            # above 2 x RELAYER_POLL_INTERVAL, as the configuration requires
            lease_s=round(poll * rng.choice((2.2, 3.0, 4.0)), 2),
        )

    # -- runs ----------------------------------------------------------------------
    def _relay(self, run: RunThread) -> Relay:
        s = self.settings if self.following else replace(self.settings, run_s=0.0)
        seen = SimState(run, self.state, lease_reads=True)
        return Relay(
            settings=s,
            specs=self.specs,
            factory=self.factory,
            chain=SimChain(run, self.chain),
            state=seen,
            records=seen,
            sink=SimSink(run, self.sink),
            stop=run.stop,
            clock=self.clock.utc,
            wait=self._waiter(run),
        )

    def _waiter(self, run: RunThread) -> Callable[[float], bool]:
        """`Relay.wait` for `run` (`RunThread.sleep`), noting a wait for a hand-over."""

        def wait(seconds: float) -> bool:
            times = self.times.get(run.name)
            if times is not None and run.grant is None and times.waited_from is None:
                times.waited_from = self.clock.now
                times.waited_for = run.lease_seen.owner if run.lease_seen else None
            return run.sleep(seconds, self.clock)

        return wait

    def start(self) -> RunThread:
        name = f"r{len(self.runs) + 1}"
        self.times[name] = RunTimes(self.clock.now, following=self.following)
        return super().start()

    def step(self, run: RunThread, decision: Decision) -> None:
        super().step(run, decision)
        times = self.times[run.name]
        if times.took_at is None and run.grant is not None:
            times.took_at = self.clock.now
            if times.waited_from is not None:
                self.log(
                    f"{run.name} takes the lease after waiting "
                    f"{self.clock.now - times.waited_from:.3f} s for {times.waited_for}"
                )
        if run.finished and times.ended is None:
            times.ended = self.clock.now
            if run.outcome and run.outcome.summary.outcome == "failed":
                self.disturb(run, "failed")

    def runnable(self) -> list[RunThread]:
        return [r for r in self.active() if r.wakes_at() <= self.clock.now]

    def _later(self) -> list[float]:
        return [t for r in self.active() if (t := r.wakes_at()) > self.clock.now]

    # -- disturbances --------------------------------------------------------------
    def disturb(self, run: RunThread | None, what: str) -> None:
        self.disturbances.append(Disturbance(self.clock.now, run.name if run else None, what))

    def decide(self, run: RunThread) -> Decision:
        if run.parked == "pause" or self.fault_scale == 0.0:
            return GO  # kills come at instants of their own (`_kill`)
        decision = super().decide(run)
        if decision is not GO:
            self.disturb(run, decision.crash or decision.fault)
        return decision

    def _between_reads(self, run: RunThread) -> None:
        """One-batch's reorganisations between two reads of a run, a quarter as often: a
        follower reads at every look."""
        if self.rng.random() >= 0.25:
            return
        stopped = run.stop.is_set()
        super()._between_reads(run)
        if run.stop.is_set() and not stopped:
            self._stopped(run)

    # -- the timeline --------------------------------------------------------------
    def at(self, instant: float, what: str, action: Callable[[], None]) -> None:
        self._seq += 1
        self._timed.append((instant, self._seq, what, action))
        self._timed.sort(key=lambda t: (t[0], t[1]))

    def _plan(self) -> None:
        rng, t0, s = self.rng, self.clock.now, self.settings
        for k in range(self.executions):
            startup = rng.uniform(0.0, self.startup_max)
            self.at(t0 + k * self.period + startup, "scheduled", self._scheduled(startup))
        horizon = t0 + (self.executions - 1) * self.period + s.run_s
        self.horizon = horizon
        self.at(t0 + self.block_time, "mine", self._mine)
        for _ in range(rng.choice((0, 1, 1, 2))):
            self.at(rng.uniform(t0, horizon), "reorg", self._reorg)
        if self.level == "calm":
            return
        rough = self.level == "rough"
        for _ in range(rng.choice((0, 1, 1, 2) if rough else (0, 0, 1))):
            self.at(rng.uniform(t0, horizon), "kill", self._kill)
        for _ in range(rng.choice((0, 1) if rough else (0, 0, 1))):
            self.at(rng.uniform(t0, horizon), "sigterm", self._sigterm)
        for _ in range(rng.choice((0, 1) if rough else (0, 0, 1))):
            self.at(rng.uniform(t0, horizon), "freeze", self._freeze)
        if rng.random() < 0.3:
            self.at(rng.uniform(t0, horizon), "extra", self._extra)

    def _scheduled(self, startup: float) -> Callable[[], None]:
        def begin() -> None:
            run = self.start()
            self.times[run.name].startup = startup

        return begin

    def _mine(self) -> None:
        events = [self.rng.choice((0, 0, 1, 2, 3))]
        self.chain.mine(events)
        self.log(f"mine {events} (head {self.chain.head})")
        if self.clock.now + self.block_time <= self.horizon:
            self.at(self.clock.now + self.block_time, "mine", self._mine)

    def _reorg(self) -> None:
        rng = self.rng
        depth = rng.randint(1, max(1, min(self.chain.head, 6)))
        events = [rng.choice((0, 1, 2)) for _ in range(max(0, depth + rng.randint(-1, 2)))]
        self.chain.reorg(depth, events)
        self.log(f"reorg depth {depth} -> {events} (head {self.chain.head})")

    def _kill(self) -> None:
        if not self.active():
            return
        run = self.rng.choice(self.active())
        self.disturb(run, "killed")
        self.follow.killed(run)
        self.log(f"{run.name} killed at {run.parked}")
        self.step(run, Decision(crash="before"))

    def _sigterm(self) -> None:
        live = [r for r in self.active() if not r.stop.is_set()]
        if live:
            run = self.rng.choice(live)
            run.stop.set()
            self._stopped(run)
            self.log(f"{run.name} SIGTERM at {run.parked}")

    def _stopped(self, run: RunThread) -> None:
        self.disturb(run, "SIGTERM")
        self.times[run.name].stopped_at = self.clock.now

    def _freeze(self) -> None:
        if not self.active():
            return
        run = self.rng.choice(self.active())
        lease = self.settings.lease_s
        for_s = lease + self.rng.uniform(0.0, lease)
        run.frozen_until = max(self.clock.now, run.sleep_until or 0.0) + for_s
        self.disturb(run, "frozen")
        self.log(f"{run.name} freezes at {run.parked} for {for_s:.3f} s")

    def _extra(self) -> None:
        run = self.start()  # an operator's, off the schedule's beat: coverage may gap
        self.disturb(run, "an extra execution")
        self.log(f"{run.name} is an extra execution")

    # -- the schedule --------------------------------------------------------------
    def play(self) -> None:
        s = self.settings
        self.log(
            f"follow ({self.level}): window {s.run_s:g} s, poll {s.poll_interval_s:g} s, lease "
            f"{s.lease_s:g} s, {self.executions} executions every {self.period:.3f} s, start-up "
            f"up to {self.startup_max:g} s, a block every {self.block_time:.3f} s"
        )
        self._plan()
        rng = self.rng
        while True:
            while self._timed and self._timed[0][0] <= self.clock.now:
                _, _, _, action = self._timed.pop(0)
                action()
            runnable = self.runnable()
            if runnable:
                run = rng.choice(runnable)
                if self.level == "rough" and rng.random() < 0.02:  # a slow call
                    dt = rng.uniform(0.05, 2.0)
                    self.disturb(run, "slow call")
                    self.log(f"clock +{dt:.3f} at {run.name} {run.parked}")
                    self.clock.advance(dt)
                self._between_reads(run)
                self.step(run, self.decide(run))
                continue
            later = self._later()
            if self._timed:
                later.append(self._timed[0][0])
            if not later:
                break
            self.clock.advance_to(min(later))
        self.play_end = self.clock.now

    def settle(self) -> None:
        self.faults = False
        self._timed.clear()
        while self.active():
            if runnable := self.runnable():
                self.step(self.rng.choice(runnable), GO)
            else:
                self.clock.advance_to(min(self._later()))

    def finish(self) -> None:
        self.following = False
        super().finish()

    def check(self) -> None:
        self.follow.check(self.play_end)

    def covered(self) -> dict[str, int]:
        return dict(self.follow.covered)
