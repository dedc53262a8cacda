"""The lag a run leaves behind, as its summary line carries it for the log-based metrics
(infra/monitoring.tf): blocks behind the head it saw, seconds between the last relayed
block's time and the run's end; absent (never 0) when the run did not learn it."""

from __future__ import annotations

from test_follow_mode import World

from devstack.sim.clock import deterministic
from function.core.summary import log_fields


def test_a_run_that_relays_reports_its_lag_in_blocks_and_seconds() -> None:
    world = World()
    with deterministic(world.clock):
        world.chain.mine([1, 0, 2, 0, 0, 1, 0, 0])  # blocks 1..8
        outcome = world.run(run_s=0.0, batch_size=5, confirmations=1)
    s = outcome.summary
    assert (s.outcome, s.from_block, s.to_block, s.head_block) == ("ok", 0, 4, 8)
    assert s.to_block_time == world.chain.canonical[4].timestamp  # the range's end: no event
    assert s.finished_at is not None
    shown = log_fields(s)
    assert shown["lag_blocks"] == 4
    assert shown["lag_seconds"] == round(s.finished_at.timestamp() - s.to_block_time, 3)


def test_a_run_that_relays_nothing_reports_no_lag_rather_than_none() -> None:
    world = World()
    with deterministic(world.clock):
        world.chain.mine([1])
        assert world.run(run_s=0.0).summary.to_block == 1
        idle = world.run(run_s=0.0).summary
    assert idle.outcome == "idle" and idle.head_block == 1
    shown = log_fields(idle)
    assert "lag_blocks" not in shown and "lag_seconds" not in shown
    assert idle.to_block_time is None


def test_a_follower_reports_the_lag_of_its_last_look() -> None:
    world = World()
    with deterministic(world.clock):
        world.chain.mine([1, 1])
        world.mine_at(5.0, 1)
        world.mine_at(7.0, 0)
        outcome = world.run(run_s=12.0)
    s = outcome.summary
    assert s.to_block == 4 and s.head_block == 4
    assert s.to_block_time == world.chain.canonical[4].timestamp
    assert log_fields(s)["lag_blocks"] == 0
