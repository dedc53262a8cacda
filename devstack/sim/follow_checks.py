"""What a follow schedule must show beyond the guarantees every schedule keeps (`invariants`),
checked after it from what the fakes recorded (docs/CONTRACT.md §7.7, README "Follow mode"):
- coverage: between two consecutive looks at the chain, across executions, at most
  2 x RELAYER_POLL_INTERVAL passes, plus the start-up of the execution that looks next;
- every follower exits within its window + RELAYER_POLL_INTERVAL + the hand-over grace;
- a run that waited for a follower about to end took over from it (`handed_over_by`);
- a killed follower's lease is taken only once it expired; a SIGTERM ends a run within
  10 s (§7.5); with no fault injected, a follower fails only over a reorganisation.
A look is what the product commits of it (`last_look_at`, as `/status` shows it): a look no
commit recorded did not happen for an operator either. Each check holds only while nothing
but the protocol decided: a gap, an exit or a wait that a disturbance (a fault, a crash, a
stop, a freeze, a slow call, an extra execution, a failed run) could explain is not judged.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from devstack.sim.clock import EPOCH, FakeClock
from devstack.sim.fake_state import FakeState, Write
from devstack.sim.invariants import Checker
from devstack.sim.scheduler import RunThread
from function.config import Settings
from function.core.lease import Lease
from function.run.relay import HANDOVER_GRACE_S, HANDOVER_MARGIN_S

SLACK = 1e-6  # float rounding of the fake clock's sums
STOP_S = 10.0  # docs/CONTRACT.md §7.5: out within 10 s of SIGTERM
CLOCK_MOVING = ("slow call", "slow", "doubt_accept", "doubt_drop")  # time passes for everyone


@dataclass
class RunTimes:
    """One execution's instants on the fake clock (monotonic seconds)."""

    started: float
    following: bool = True  # a follower (not one of the clean one-batch runs at the end)
    startup: float = 0.0  # from its scheduled instant to its start
    took_at: float | None = None  # when it had the lease
    waited_from: float | None = None  # when it began to wait for a hand-over
    waited_for: str | None = None  # the run id of the follower it waited for
    stopped_at: float | None = None  # SIGTERM
    ended: float | None = None


@dataclass(frozen=True)
class Disturbance:
    """Something that is not the protocol's own doing, at an instant, to a run (or None)."""

    at: float
    run: str | None
    what: str


@dataclass
class FollowChecker:
    """One follow schedule's checks: a listener while it runs (leases of killed followers),
    the rest after it (`check`); each judged case counts in `covered`."""

    settings: Settings
    clock: FakeClock
    state: FakeState
    runs: Mapping[str, RunThread]
    checker: Checker
    calm: bool  # no fault injected: a failure needs a reorganisation to explain it
    times: dict[str, RunTimes] = field(default_factory=dict)  # the schedule notes them
    disturbances: list[Disturbance] = field(default_factory=list)
    reorgs: list[float] = field(default_factory=list)  # instants the chain reorganised
    covered: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("handovers", "gaps", "exits", "waits", "expiries", "failures", "stops"), 0
        )
    )
    _dead: Lease | None = None  # the lease of a follower killed while it held it

    def attach(self) -> None:
        self.state.on_write.append(self.written)

    def killed(self, run: RunThread) -> None:
        lease = self.state.lease
        if run.grant is not None and lease.owner == run.grant.run_id:
            self._dead = lease

    def written(self, w: Write) -> None:
        """A killed follower's lease is taken only once it expired (nobody releases it)."""
        dead = self._dead
        if w.kind != "acquire" or dead is None or w.fence != dead.fence + 1:
            return
        self._dead = None
        self.count("expiries")
        assert dead.expires_at is not None
        if self.clock.utc() < dead.expires_at:
            self.checker.fail(
                f"run {w.run_id} took the lease of killed run {dead.owner} before it expired "
                f"({dead.expires_at})"
            )

    def count(self, what: str) -> None:
        """One more `what` judged: a check that could have failed."""
        self.covered[what] += 1
        self.checker.checks += 1

    def check(self, until: float) -> None:
        self.covered["follow"] = 1
        self.coverage(until)
        self.exits()
        self.handovers()
        self.failures()
        self.stops()

    # -- coverage ------------------------------------------------------------------
    def looks(self, until: float) -> list[tuple[float, str]]:
        """Every look the followers committed, by instant: (instant, run name)."""
        names = self.names()
        looks = {
            ((w.looked_at - EPOCH).total_seconds(), names[w.run_id])
            for w in self.state.writes
            if w.kind == "commit" and w.looked_at is not None and w.run_id in names
        }
        return sorted(look for look in looks if look[0] <= until)

    def names(self) -> dict[str, str]:
        """The followers' run ids, to the simulation's names."""
        names = {}
        for name, run in self.runs.items():
            run_id = run.outcome.summary.run_id if run.outcome else None
            run_id = run_id or (run.grant.run_id if run.grant else None)
            if run_id and self.times[name].following:
                names[run_id] = name
        return names

    def excused(self, a: float, b: float) -> Disturbance | None:
        """A disturbance that may explain no look in (a, b]: one in it, or one to a run that
        could have looked in it (started within a clean run's life before `a`)."""
        s = self.settings
        life = s.run_s + s.poll_interval_s + HANDOVER_MARGIN_S + HANDOVER_GRACE_S
        for d in self.disturbances:
            if d.at > b:
                continue
            if d.at >= a or (d.run is not None and self.times[d.run].started >= a - life):
                return d
        return None

    def coverage(self, until: float) -> None:
        poll = self.settings.poll_interval_s
        looks = self.looks(until)
        for (a, ran), (b, rbn) in itertools.pairwise(looks):
            if self.excused(a, b) is not None:
                continue
            self.count("gaps")
            bound = 2 * poll + (self.times[rbn].startup if rbn != ran else 0.0)
            if b - a > bound + SLACK:
                self.checker.fail(
                    f"§7.7 no look at the chain for {b - a:.3f} s, from t={a - 1000:.3f} "
                    f"({ran}) to t={b - 1000:.3f} ({rbn}): more than 2 x "
                    f"RELAYER_POLL_INTERVAL ({poll:g} s) + the start-up ({bound - 2 * poll:.3f} s)"
                )

    # -- exits and hand-overs -------------------------------------------------------
    def _undisturbed(self, name: str, times: RunTimes) -> bool:
        assert times.ended is not None
        return not any(
            d.run == name or (d.what in CLOCK_MOVING and times.started <= d.at <= times.ended)
            for d in self.disturbances
        )

    def _alive(self, name: str | None, at: float) -> bool:
        times = self.times.get(name or "")
        return times is not None and times.started <= at and (times.ended or at) >= at

    def exits(self) -> None:
        s = self.settings
        longest = s.run_s + s.poll_interval_s + HANDOVER_GRACE_S
        for name, times in self.times.items():
            run = self.runs[name]
            if not times.following or times.ended is None or run.outcome is None:
                continue
            if not self._undisturbed(name, times):
                continue
            self.count("exits")
            took = times.ended - times.started
            if took > longest + SLACK:
                self.checker.fail(
                    f"{name} ran {took:.3f} s, beyond its window + RELAYER_POLL_INTERVAL + the "
                    f"hand-over grace ({longest:g} s)"
                )

    def handovers(self) -> None:
        names = self.names()
        for name, times in self.times.items():
            run = self.runs[name]
            summary = run.outcome.summary if run.outcome else None
            if summary and summary.extra.get("handed_over_by"):
                self.covered["handovers"] += 1
            if times.waited_from is None or summary is None or times.ended is None:
                continue
            waited_to = times.took_at if times.took_at is not None else times.ended
            holder = names.get(times.waited_for or "")
            if any(
                d.at <= waited_to
                and (d.at >= times.started or d.run == holder or self._alive(d.run, times.started))
                for d in self.disturbances
            ):
                continue  # e.g. the follower crashed, or an extra execution took over first
            self.count("waits")
            if summary.extra.get("handed_over_by") != times.waited_for:
                self.checker.fail(
                    f"{name} waited for {times.waited_for} to hand over from "
                    f"t={times.waited_from - 1000:.3f} yet ended {summary.outcome} "
                    f"(handed_over_by={summary.extra.get('handed_over_by')}): {summary.error}"
                )

    def failures(self) -> None:
        """With no fault injected, a follower fails only over a reorganisation: in its life,
        or one deeper than the records, which stops every run until `relayer reset`."""
        if not self.calm:
            return
        for name, times in self.times.items():
            run = self.runs[name]
            summary = run.outcome.summary if run.outcome else None
            if summary is None or summary.outcome != "failed" or times.ended is None:
                continue
            self.count("failures")
            error = summary.error or ""
            if "reorganised below" in error:
                continue
            if not any(times.started <= t <= times.ended for t in self.reorgs):
                self.checker.fail(f"{name} failed with no fault or reorganisation: {error}")

    def stops(self) -> None:
        """Out within 10 s of SIGTERM (§7.5), unless frozen (a stopped process handles no
        signal) or a slow call meanwhile took the clock with it."""
        for name, times in self.times.items():
            run, stopped, ended = self.runs[name], times.stopped_at, times.ended
            if stopped is None or ended is None or run.outcome is None:
                continue
            if any(
                (d.run == name and d.what == "frozen")
                or (d.what in CLOCK_MOVING and stopped <= d.at <= ended)
                for d in self.disturbances
            ):
                continue
            self.count("stops")
            if ended - stopped > STOP_S + SLACK:
                self.checker.fail(f"§7.5 {name} ran {ended - stopped:.3f} s after its SIGTERM")
