"""Follow mode in the deterministic simulation (devstack/sim/follow.py): a scheduler's
executions that follow the chain for their window and hand over to the next, with the faults
of one-batch schedules, checked for §7.7's coverage, the followers' exits and the hand-overs
(devstack/sim/follow_checks.py), on the fake clock."""

from __future__ import annotations

from unittest import mock

from devstack.sim.follow import FOLLOW_EVERY, FollowSchedule
from devstack.sim.simulation import Schedule, run_schedule, schedule_of
from function.run.relay import HANDOVER_STEP_S
from function.stopping import StopSignal

FOLLOW_SEEDS = [FOLLOW_EVERY * i + FOLLOW_EVERY - 1 for i in range(60)]
CALM = 11  # a calm follow schedule (no fault: blocks and reorganisations only), never stuck


def test_one_seed_in_six_follows_and_the_others_stay_one_batch() -> None:
    kinds = [type(schedule_of(seed)) for seed in range(2 * FOLLOW_EVERY)]
    assert kinds.count(FollowSchedule) == 2 and kinds.count(Schedule) == 10
    assert kinds[FOLLOW_EVERY - 1] is FollowSchedule
    follow = schedule_of(FOLLOW_SEEDS[0])
    assert follow.settings.run_s >= 10 and follow.settings.lease_s > 2 * (
        follow.settings.poll_interval_s
    )


def test_a_follow_seed_replays_exactly() -> None:
    first, second = run_schedule(CALM), run_schedule(CALM)
    assert first.kind == "follow" and first.trace == second.trace
    assert first.violations == second.violations == []
    assert first.covered == second.covered and first.covered["gaps"] > 5


def test_the_windows_pass_on_the_fake_clock_alone() -> None:
    # Every wait of a follower goes through `Relay.wait`: none reaches the stop signal's
    # real wait, yet the schedule's clock goes through every window.
    with mock.patch.object(StopSignal, "wait", autospec=True, return_value=False) as real:
        schedule = FollowSchedule(CALM)
        result = schedule.run()
    assert real.call_count == 0
    assert schedule.level == "calm" and not result.violations
    assert result.outcomes.get("failed", 0) == 0
    windows = schedule.executions * schedule.settings.run_s
    assert schedule.play_end - 1000.0 >= windows - schedule.settings.run_s
    looks = [w for w in schedule.state.writes if w.looked_at is not None]
    assert len({w.run_id for w in looks}) >= schedule.executions
    assert len(looks) > schedule.executions * 2


def test_follow_schedules_bring_what_one_batch_schedules_bring_into_the_window() -> None:
    seen: set[str] = set()
    covered: dict[str, int] = {}
    kinds = (
        *("killed", "SIGTERM", "freezes", "reorg", "takes the lease after waiting"),
        *("sink.publish: ", "state.commit: ", "is an extra execution"),
    )
    for seed in FOLLOW_SEEDS:
        result = run_schedule(seed)
        assert not result.violations, result.report()
        for line in result.trace:
            seen.update(k for k in kinds if k in line)
        levels = [line for line in result.trace if "follow (" in line]
        seen.update(level.split("follow (")[1].split(")")[0] for level in levels)
        for what, n in result.covered.items():
            covered[what] = covered.get(what, 0) + n
    # "port.call: " marks a fault or a crash injected at that call (`Schedule.step`'s line)
    assert seen >= {*kinds, "calm", "mild", "rough"}, seen
    assert covered["handovers"] >= 30 and covered["waits"] >= 10 and covered["gaps"] >= 300


def test_a_sub_second_poll_interval_keeps_coverage_across_a_hand_over() -> None:
    assert HANDOVER_STEP_S > 2 * 0.25
    result = run_schedule(71, polls=(0.25,))
    assert result.covered["handovers"] >= 1
    assert not result.violations, result.report()
