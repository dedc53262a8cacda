"""Follow mode through `python main.py` on anvil and the emulators (docs/CONTRACT.md §1,
§7.7): one run relays what is there, then the blocks mined while it follows, and ends `ok`;
executions started on a schedule hand over to each other, so the chain is looked at
continuously across them."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

from follow_harness import Emitter, Execution, assert_chain_order, follow_env, wait_until
from harness import (
    ROOT,
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    relayer_doc_or_none,
)


def test_a_follower_relays_blocks_mined_while_it_runs_exactly_once(
    deployment: Deployment,
) -> None:
    before = deployment.make_activity(30, blocks=6, seed=3)
    env = deployment.env(RELAYER_RUN_SECONDS="6", RELAYER_POLL_INTERVAL="1")
    proc = subprocess.Popen(
        [sys.executable, "main.py"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the first look is committed: it follows now
            doc = relayer_doc_or_none(deployment.relayer_id)
            if doc and doc.get("last_look_at") and (doc.get("lease") or {}).get("follow_until"):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the run never recorded a look")
        assert proc.poll() is None, "the run ended before following"
        during = deployment.make_activity(20, blocks=4, seed=4)
        head = deployment.head()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    summaries = [json.loads(line) for line in out.splitlines() if '"run_summary"' in line]
    assert len(summaries) == 1, out  # one summary for the whole window
    summary = summaries[0]
    assert summary["outcome"] == "ok" and not summary.get("interrupted")
    assert summary["from_block"] == 0 and summary["to_block"] == head
    assert summary["looks"] >= 3
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == head + 1 and doc["last_look_at"] is not None
    assert doc["lease"]["owner"] is None and doc["lease"].get("follow_until") is None
    assert doc["last_run"]["outcome"] == "ok"
    assert_exactly_once(payloads(deployment.topic.pull_all()), [*before, *during])


# A simulated Cloud Scheduler: a new execution every PERIOD_S, each following for WINDOW_S.
# The window exceeds the period by more than an execution's start-up, so each execution
# reaches the lease while the one before still follows (with period == window, whether it
# waits for a hand-over or finds the lease just released depends on which of the two
# started faster). Two periods exceed the window by more than a hand-over takes (the
# waiter polls the lease every second), so an execution arrives only after the one two
# before it has handed over: one arriving at that release could take the lease before the
# waiting one (nothing makes waiters first in line), which then gets it only after its own
# window. The executions are started warm (imports done, see follow_harness.WARM) and
# fired on the schedule: imports are what varies most on a busy machine.
POLL_S = 1.0
WINDOW_S = 11.0
PERIOD_S = 7.0
EXECUTIONS = 3


def test_scheduled_executions_cover_the_chain_continuously(
    deployment: Deployment, tmp_path: Path
) -> None:
    before = deployment.make_activity(10, blocks=4, seed=3)
    env = follow_env(deployment, WINDOW_S)
    runs = [Execution.warm(f"run{i}", env, tmp_path) for i in range(EXECUTIONS)]
    emitter = Emitter(deployment).start()
    try:
        wait_until(lambda: all(run.warmed for run in runs), "the executions imported")
        schedule = time.time()
        for i, run in enumerate(runs):
            time.sleep(max(0.0, schedule + i * PERIOD_S - time.time()))
            if run is runs[-1]:
                # Events stop as the last execution fires: its first look, after it took
                # the lease, sees all of them (the earlier ones saw events throughout).
                emitted = emitter.stop()
            run.fire()
        codes = [run.wait(timeout=120) for run in runs]
        head = deployment.head()
    finally:
        emitter.close()
        for run in runs:
            run.reap()
    assert codes == [0] * EXECUTIONS, "\n".join(run.text() for run in runs)
    summaries = [run.summary() for run in runs]
    assert not any(s.get("interrupted") for s in summaries), summaries
    # The last may find nothing new: the one before may have relayed the last events.
    outcomes = [s["outcome"] for s in summaries]
    spans = [(s["outcome"], s["from_block"], s["to_block"], s.get("looks")) for s in summaries]
    assert outcomes[:-1] == ["ok"] * (EXECUTIONS - 1) and outcomes[-1] in ("ok", "idle"), spans

    # Each later execution found the one before following and waited for its hand-over
    # (the summary line carries who handed over), then went on from its checkpoint.
    assert "handed_over_by" not in summaries[0]
    for earlier, later in itertools.pairwise(summaries):
        assert later["handed_over_by"] == earlier["run_id"], later
        assert later["from_block"] == earlier["to_block"] + 1
    doc = relayer_doc(deployment.relayer_id)
    assert doc["last_run"]["handed_over_by"] == summaries[-2]["run_id"]
    assert doc["next_block"] == head + 1 and doc["lease"]["owner"] is None

    # Coverage: the looks of all executions, one execution after the other, never further
    # apart than CONTRACT §7.7 allows: 2 x RELAYER_POLL_INTERVAL plus an execution's start-up,
    # the start-up measured on the first execution (fired to its first look: the settings,
    # the clients, the chain id and topic checks, the lease, one look), the only one that
    # did not wait for the lease.
    looks = [run.looks() for run in runs]
    assert all(len(x) >= 2 for x in looks), looks
    for earlier_looks, later_looks in itertools.pairwise(looks):
        assert max(earlier_looks) < min(later_looks), "two executions looked at the same time"
    start_up = looks[0][0] - runs[0].spawned_at
    every = sorted(t for x in looks for t in x)
    longest = max(b - a for a, b in itertools.pairwise(every))
    assert longest <= 2 * POLL_S + start_up, (
        f"{longest:.2f} s between two looks, start-up {start_up:.2f} s"
    )

    got = payloads(deployment.topic.pull_all())
    assert_exactly_once(got, [*before, *emitted])
    assert_chain_order(got)
