"""Follow mode through `python main.py` on anvil and the emulators (docs/CONTRACT.md §1):
one run relays what is there, then the blocks mined while it follows, and ends `ok`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from harness import ROOT, Deployment, assert_exactly_once, payloads, relayer_doc


def _doc_or_none(relayer_id: str) -> dict[str, Any] | None:
    try:
        return relayer_doc(relayer_id)
    except AssertionError:
        return None


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
            doc = _doc_or_none(deployment.relayer_id)
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
