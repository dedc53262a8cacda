"""A follower woken by new heads (RPC_WS_URL: `eth_subscribe("newHeads")` on anvil's own
websocket), through `python main.py`: with a poll interval longer than the window, only the
wake-ups can bring the blocks mined meanwhile into the same run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from harness import ROOT, Deployment, assert_exactly_once, payloads, relayer_doc_or_none


def test_new_heads_bring_blocks_mined_during_the_window_into_the_run(
    deployment: Deployment,
) -> None:
    before = deployment.make_activity(10, blocks=2, seed=5)
    ws_url = deployment.env()["RPC_URL"].replace("http://", "ws://", 1)
    env = deployment.env(
        RELAYER_RUN_SECONDS="12",
        RELAYER_POLL_INTERVAL="60",  # no second look by polling inside the 12 s window
        RELAYER_LEASE_SECONDS="150",
        RPC_WS_URL=ws_url,
        LOG_LEVEL="DEBUG",
    )
    proc = subprocess.Popen(
        [sys.executable, "main.py"], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the first look is committed
            if (relayer_doc_or_none(deployment.relayer_id) or {}).get("last_look_at"):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the run never recorded a look")
        during = deployment.make_activity(10, blocks=2, seed=6)
        head = deployment.head()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    summary = next(json.loads(line) for line in out.splitlines() if '"run_summary"' in line)
    assert summary["outcome"] == "ok", summary
    assert summary.get("woken_by_heads", 0) >= 1 and summary["looks"] >= 2, out + err
    assert summary["to_block"] == head
    assert_exactly_once(payloads(deployment.topic.pull_all()), [*before, *during])
    assert "woken by new heads from 127.0.0.1" in out + err  # the host only, never the URL
