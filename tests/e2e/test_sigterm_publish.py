"""SIGTERM while a publish request is on the wire (CONTRACT §7.5): no request the run sent may
be accepted after it releases its lease.

A TCP proxy in front of the Pub/Sub emulator (devstack/stack/tcphold.py) holds the messages of the
first publish request for 12 s, after its headers (and so its gRPC deadline, inside the lease)
reached the server. SIGTERM comes while it is held: the run gives up waiting after its grace
period and must end `ok`, interrupted, within 10 s; but the request can still be accepted
until its deadline, so the lease must stay with the stopped run until then, and the next run
must not publish the same events meanwhile.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

import pytest

from devstack.stack.services import Stack
from devstack.stack.tcphold import TcpHoldProxy
from harness import ROOT, Deployment, payloads, relayer_doc, run_main, run_until_idle


@pytest.fixture
def slow_pubsub(stack: Stack) -> Iterator[TcpHoldProxy]:
    proxy = TcpHoldProxy(stack.pubsub.address)
    yield proxy
    proxy.stop()


def test_sigterm_with_a_publish_in_flight_holds_the_lease_until_it_cannot_be_accepted(
    deployment: Deployment, slow_pubsub: TcpHoldProxy
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=3)
    env = deployment.env(RELAYER_LEASE_SECONDS="20")
    hold = slow_pubsub.arm(b'"event_id"', 12.0)
    proc = subprocess.Popen(
        [sys.executable, "main.py"],
        cwd=ROOT,
        text=True,
        env={**env, "PUBSUB_EMULATOR_HOST": slow_pubsub.address},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while hold.seen_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hold.seen_at is not None, "the run never sent a publish request"
    time.sleep(0.5)

    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent

    assert took < 10, f"exited {took:.1f} s after SIGTERM"
    assert proc.returncode == 0, out + err
    summary = next(json.loads(line) for line in out.splitlines() if '"run_summary"' in line)
    assert summary["outcome"] == "ok" and summary["interrupted"] is True, summary
    assert hold.released_at is None, "the held request went through before the run ended"

    # The held request may still be accepted: the next run must leave these blocks alone.
    doc = relayer_doc(deployment.relayer_id)
    assert doc["lease"]["owner"] == summary["run_id"]
    held_until: datetime = doc["lease"]["expires_at"]
    second = run_main(env)
    assert second.summary["outcome"] == "skipped", second.stdout

    assert hold.done.wait(30), "the proxy never released the held request"
    assert hold.released_wall is not None
    assert held_until.timestamp() > hold.released_wall, "lease released before the request landed"
    time.sleep(max(0.0, held_until.timestamp() - time.time()) + 0.5)
    run_until_idle(env)

    copies: dict[str, list[dict[str, object]]] = defaultdict(list)
    for p in payloads(deployment.topic.pull_all()):
        copies[str(p["event_id"])].append(p)
    assert set(copies) == {e["event_id"] for e in deployment.expected}
    for e in deployment.expected:
        assert all(c == e for c in copies[e["event_id"]])
    doc = relayer_doc(deployment.relayer_id)
    assert doc["lease"]["owner"] is None
    assert doc["next_block"] == deployment.head() + 1


@pytest.fixture
def slow_firestore(stack: Stack) -> Iterator[TcpHoldProxy]:
    proxy = TcpHoldProxy(stack.firestore.address)
    yield proxy
    proxy.stop()


def test_sigterm_with_firestore_hung_still_ends_in_a_summary(
    deployment: Deployment, slow_firestore: TcpHoldProxy
) -> None:
    deployment.expected = deployment.make_activity(120, blocks=30)
    env = deployment.env(RELAYER_BATCH_SIZE="1000", RELAYER_CHECKPOINT_INTERVAL="2")
    proc = subprocess.Popen(
        [sys.executable, "devstack/faults/crashing_main.py"],
        cwd=ROOT,
        text=True,
        env={
            **env,
            "FIRESTORE_EMULATOR_HOST": slow_firestore.address,
            "CRASH_AT": "slow_publish",
            "CRASH_SLEEP": "0.3",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = relayer_doc(deployment.relayer_id) if _exists(deployment) else {}
        if doc.get("next_block", 0) > 1:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("the run never committed a checkpoint")
    slow_firestore.arm(b"", 60.0)  # from now on Firestore answers nothing for a minute

    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent

    assert took < 10.5, f"exited {took:.1f} s after SIGTERM"
    summaries = [json.loads(line) for line in out.splitlines() if '"run_summary"' in line]
    assert len(summaries) == 1, out + err
    (summary,) = summaries
    assert summary["outcome"] == "failed" and summary["interrupted"] is True
    assert "after SIGTERM" in summary["message"]
    assert proc.returncode == 1


def _exists(deployment: Deployment) -> bool:
    try:
        relayer_doc(deployment.relayer_id)
    except AssertionError:
        return False
    return True
