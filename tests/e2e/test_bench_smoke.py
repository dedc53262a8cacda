"""`make bench` still works: every phase on tiny chains, with its delivery checks.

No timing is asserted (benchmarks are not tests); what is checked is that each relayer the
bench measures delivered exactly the events the chain holds (both publish paths of the
floor, and the relayer, on loopback and through the delaying proxies), that the peak-RSS
phase relayed its whole chain in one run, and that the results carry the keys and the six
targets the issue names. The follow phase runs on a shortened schedule (three executions of
a 6 s window) and is checked for what it delivered and what it measured from, never how fast.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.follow import FollowSettings
from bench.phases import Settings
from bench.report import table
from bench.run import measure
from devstack.stack.services import Stack

# All six escrow events occur among these 120, and the naive relayer gets all of them too.
TINY = Settings(
    events=120, event_blocks=6, empty_blocks=1_000, naive_events=120, repeat=1, cheap_repeat=1,
    idle_repeat=1,
    batch_size=1000, checkpoint_interval=4, empty_batch=1_000, empty_small_batch=500,
    small_batch_repeat=1, rss_events=2_500, rss_logs_per_tx=1_000, verify=True,
    verify_delayed=True,
    follow=FollowSettings(window_s=6, period_s=6, executions=3, batch_period_s=6,
                          batch_executions=2, confirmations=1),
)  # fmt: skip

KEYS = {
    "floor_events_per_s", "relayer_events_per_s", "naive_events_per_s",
    "floor_delayed_events_per_s", "relayer_delayed_events_per_s", "relayer_to_floor_delayed",
    "relayer_cpu_s_per_1000_events", "floor_cpu_s_per_1000_events", "relayer_cpu_to_floor",
    "raw_empty_blocks_per_s", "relayer_empty_blocks_per_s", "idle_run_s", "peak_rss_mb",
    "peak_rss_100k_mb", "relayer_to_floor", "relayer_to_naive", "relayer_empty_to_raw",
    "follow_latency_p50_s", "follow_latency_p95_s", "batch_latency_p50_s",
    "batch_latency_p95_s", "coverage_max_gap_s", "follow_cpu_s_per_hour",
    "guarded_events_per_s", "guarded_delayed_events_per_s", "guarded_to_floor",
    "guarded_to_floor_delayed", "guarded_cpu_to_floor", "relayer_to_guarded",
}  # fmt: skip
TARGET_KEYS = [
    "relayer_to_floor", "relayer_to_floor_delayed", "relayer_cpu_to_floor",
    "relayer_empty_to_raw", "idle_run_s", "peak_rss_100k_mb",
]  # fmt: skip
ONCE = {"messages": 120, "exactly_once": True}


@pytest.fixture(scope="module")
def results(stack: Stack) -> dict[str, Any]:
    """One tiny bench for the module's tests: it takes a minute or two."""
    return measure(TINY, stack, time.perf_counter())


@pytest.mark.slow
def test_every_bench_phase_runs_and_delivers_each_event_once(results: dict[str, Any]) -> None:
    assert set(results) >= KEYS
    assert all(results[k] > 0 for k in KEYS)
    details = results["details"]
    busy = details["busy"]
    guarded = {**ONCE, "recorded": 120}  # and every event in its block records
    wanted = {"floor_requests": ONCE, "floor_batching": ONCE, "guarded": guarded,
              "relayer": ONCE}  # fmt: skip
    assert busy["delivery"] == {"local": wanted, "delayed": wanted}
    for label in ("local", "delayed"):
        network = busy["networks"][label]
        assert set(network["floor"]) == {"requests", "batching"}  # both timed, the faster kept
        assert network["floor_path"] in network["floor"]
        assert network["relayer"]["runs_per_catch_up"] == 1
        assert network["guarded"]["runs"] == 1
    assert busy["networks"]["delayed"]["rtt_s"] == TINY.rtt_s
    assert results["floor_publish_path"] in ("requests", "batching")
    assert details["naive"]["delivery"] == ONCE
    assert details["empty"]["blocks"] == 1_000
    assert details["empty"]["many_runs"]["runs"] == 2
    assert details["rss"]["events"] == 2_500 and details["rss"]["runs"] == 1
    assert details["rss"]["floor_peak_rss_mb"] > 0  # the floor relayed them too
    assert [t["key"] for t in results["targets"]] == TARGET_KEYS
    assert all(isinstance(t["holds"], bool) for t in results["targets"])
    follow_keys = {t["key"] for t in results["follow_targets"]}
    assert follow_keys == {"follow_latency_p95_s", "coverage_max_gap_s"}
    after = table(results, details).split("Targets (issue 13):")[1]
    targets_part, ceiling = after.split("\n\nCeiling (bench/guarded.py")
    printed = targets_part.strip().splitlines()
    assert len(printed) == 2 + 6  # header, rule, the six targets
    assert ceiling.count(" x") == 3  # local, delayed and CPU, each against the floor
    assert all(row.rstrip(" |").endswith(("held", "MISSED")) for row in printed[2:])


def _delivered_everything(segment: dict[str, Any]) -> bool:
    wanted = {"messages": segment["events"], "exactly_once": True, "in_order": True}
    return bool(segment["delivery"] == wanted)


def _follow(results: dict[str, Any]) -> dict[str, Any]:
    follow: dict[str, Any] = results["details"]["follow"]
    return follow


@pytest.mark.slow
def test_the_follow_phase_delivers_every_event_once_in_order_across_executions(
    results: dict[str, Any],
) -> None:
    follow, batch = _follow(results)["follow"], _follow(results)["batch"]
    assert follow["events"] > 0 and _delivered_everything(follow)
    assert batch["events"] > 0 and _delivered_everything(batch)
    # Three follow executions, each of which looked (coverage is measured across them) and
    # relayed in its own window; the one-batch executions looked once each.
    assert follow["outcomes"] == ["ok", "ok", "ok"]
    assert all(n >= 1 for n in follow["looks_per_execution"])
    assert batch["looks_per_execution"] == [1, 1]
    assert follow["latency_s"]["n"] >= 1 and batch["latency_s"]["n"] >= 1
    assert follow["ops"]["total"]["pubsub_messages"] == follow["events"]
    assert follow["ops"]["total"]["firestore_writes"] > 0
