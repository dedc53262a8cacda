"""SIGTERM in the middle of a long batch (CONTRACT §7.5): out within 10 s, work committed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from devstack.rpcproxy import RpcProxy
from harness import (
    ROOT,
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    run_main,
    run_until_idle,
)


def test_sigterm_commits_what_was_published_and_exits_in_time(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(240, blocks=60)
    env = deployment.env(RELAYER_BATCH_SIZE="1000", RELAYER_CHECKPOINT_INTERVAL="2")
    # Each block's publish takes 0.5 s: a batch of 60 blocks would take half a minute.
    proc = subprocess.Popen(
        [sys.executable, "devstack/faults/crashing_main.py"],
        cwd=ROOT,
        text=True,
        env={**env, "CRASH_AT": "slow_publish", "CRASH_SLEEP": "0.5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = relayer_doc_or_none(deployment.relayer_id)
        if doc and doc.get("next_block", 0) > 1:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("the run never committed a checkpoint")

    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent

    assert took < 10, f"exited {took:.1f} s after SIGTERM"
    assert proc.returncode == 0, out + err
    summary = next(json.loads(line) for line in out.splitlines() if '"run_summary"' in line)
    assert summary["outcome"] == "ok" and summary["interrupted"] is True
    doc = relayer_doc(deployment.relayer_id)
    assert doc["lease"]["owner"] is None
    committed = doc["next_block"]
    assert committed <= deployment.head(), "the run should not have finished the batch"
    # Everything published is committed, and nothing past the checkpoint was published.
    received = payloads(deployment.topic.pull_all())
    assert {p["event_id"] for p in received} == {
        e["event_id"] for e in deployment.expected if e["block_number"] < committed
    }
    assert summary["to_block"] == committed - 1

    run_until_idle(env)
    later = payloads(deployment.topic.pull_all())
    assert_exactly_once([*received, *later], deployment.expected)


def relayer_doc_or_none(relayer_id: str) -> dict[str, Any] | None:
    try:
        return relayer_doc(relayer_id)
    except AssertionError:
        return None


@pytest.mark.parametrize("method", ["eth_getLogs", "eth_blockNumber"])
def test_sigterm_during_a_stalled_rpc_call_releases_the_lease(
    deployment: Deployment, method: str
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=5)
    proxy = RpcProxy(deployment.anvil.rpc_url)
    try:
        # The node holds the call 30 s: longer than the client's timeout and the 10 s a
        # stopped run has (eth_blockNumber: the run's first request, for the head).
        proxy.stall(30, method=method)
        env = deployment.env(RPC_URL=proxy.url("/v2/SECRETKEY"), RELAYER_LEASE_SECONDS="300")
        proc = subprocess.Popen(
            [sys.executable, "main.py"],
            cwd=ROOT,
            text=True,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while proxy.count(method) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.count(method) == 1, "the stalled request never arrived"
        time.sleep(0.3)  # well inside the call

        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent

        assert took < 10, f"exited {took:.1f} s after SIGTERM"
        assert proc.returncode == 0, out + err
        summaries = [json.loads(line) for line in out.splitlines() if '"run_summary"' in line]
        assert len(summaries) == 1, out + err
        assert summaries[0]["interrupted"] is True
        assert summaries[0]["outcome"] in ("ok", "idle")
        assert "SECRETKEY" not in out + err
        doc = relayer_doc(deployment.relayer_id)
        assert doc["lease"]["owner"] is None  # released: the next run is not skipped
        assert payloads(deployment.topic.pull_all()) == []

        # The very next run takes the lease and relays everything.
        run = run_main(env)
        assert run.code == 0 and run.summary["outcome"] == "ok", run.stdout + run.stderr
        run_until_idle(env)
        assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
    finally:
        proxy.stop()
