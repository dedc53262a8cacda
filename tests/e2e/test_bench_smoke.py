"""`make bench` still works: every phase on tiny chains, with its delivery checks.

No timing is asserted (benchmarks are not tests); what is checked is that each relayer the
bench measures delivered exactly the events the chain holds, and that the results carry the
keys the issue names.
"""

from __future__ import annotations

import time

import pytest

from bench.phases import Settings
from bench.run import measure
from devstack.stack.services import Stack

# All six escrow events occur among these 120, and the naive relayer gets all of them too.
TINY = Settings(
    events=120, event_blocks=6, empty_blocks=1_000, naive_events=120, repeat=1, cheap_repeat=1,
    batch_size=1000, checkpoint_interval=4, empty_batch=1_000, empty_small_batch=500,
    verify=True,
)  # fmt: skip

KEYS = {
    "floor_events_per_s", "relayer_events_per_s", "naive_events_per_s",
    "raw_empty_blocks_per_s", "relayer_empty_blocks_per_s", "idle_run_s", "peak_rss_mb",
    "relayer_to_floor", "relayer_to_naive", "relayer_empty_to_raw",
}  # fmt: skip


@pytest.mark.slow
def test_every_bench_phase_runs_and_delivers_each_event_once(stack: Stack) -> None:
    results = measure(TINY, stack, time.perf_counter())

    assert set(results) >= KEYS
    assert all(results[k] > 0 for k in KEYS)
    details = results["details"]
    assert details["floor"]["delivery"] == {"messages": 120, "exactly_once": True}
    assert details["relayer"]["delivery"] == {"messages": 120, "exactly_once": True}
    assert details["naive"]["delivery"] == {"messages": 120, "exactly_once": True}
    assert details["empty"]["blocks"] == 1_000
    assert details["empty"]["many_runs"]["runs"] == 2
    assert {t["key"] for t in results["targets"]} <= set(results)
