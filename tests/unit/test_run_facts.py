"""What a run keeps for the status page beyond its counts: the Cloud Run execution that ran
it, the endpoint it ended on after a failover, and its reorganisation in the run history."""

from __future__ import annotations

from datetime import UTC, datetime

from test_follow_mode import World

from devstack.sim.clock import deterministic
from function.adapters.firestore.relayerdoc import _history_entry
from function.core.summary import RunSummary, log_fields
from function.ops.status import reorganisations
from function.stopping import StopSignal


def test_the_history_keeps_a_runs_reorganisation_and_only_then() -> None:
    started = datetime(2026, 12, 1, tzinfo=UTC)
    quiet = RunSummary("r1", "x", started)
    assert "reorg" not in _history_entry(quiet, 10)
    moved = RunSummary("r2", "x", started)
    moved.extra["reorg"] = {"depth": 2, "ancestor": 7, "retracted": 3}
    entry = _history_entry(moved, 10)
    assert entry["reorg"] == {"depth": 2, "ancestor": 7, "retracted": 3}
    shown = reorganisations({"recent_runs": [entry], "last_run": quiet.as_dict()})
    assert [(r["run_id"], r["depth"], r["retracted"]) for r in shown] == [("r2", 2, 3)]


def test_the_execution_is_kept_in_the_state_not_repeated_on_the_log_line() -> None:
    s = RunSummary("r1", "x", datetime(2026, 12, 1, tzinfo=UTC))
    s.extra.update(execution="relay-job-x7k2p", rpc_host="backup.example")
    assert s.as_dict()["execution"] == "relay-job-x7k2p"  # last_run, for status
    fields = log_fields(s)
    assert "execution" not in fields  # Cloud Run labels the line with it already
    assert fields["rpc_host"] == "backup.example"


def test_a_run_keeps_its_execution_and_a_failed_over_endpoint() -> None:
    world = World()
    with deterministic(world.clock):
        world.chain.mine([1])
        stop = StopSignal()
        relay = world.relay(stop, run_s=0.0)
        relay.execution = "relay-job-x7k2p"
        first = relay.run().summary
        assert first.extra["execution"] == "relay-job-x7k2p"
        assert "rpc_host" not in first.extra  # it stayed on the first endpoint
        world.watched.chain.host = "backup.example"  # type: ignore[misc]
        world.chain.mine([1])
        second = world.relay(StopSignal(), run_s=0.0).run().summary
    assert second.extra["rpc_host"] == "backup.example"
    assert world.state.last_run is second
