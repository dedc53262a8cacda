"""A run that lost its lease writes nothing, block records included (CONTRACT §7.6).

Run A (an older deployment relaying fewer events, `RELAYER_EVENTS`) publishes some of a
block's events and stalls before recording them (devstack/faults/crashing_main.py,
`before_record` with `stall`) past its lease; run B takes over, publishes the block and
records them all. A then wakes with its few: its record must not replace B's, or later runs,
retractions, `verify` and `reset` see the rest as never relayed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.cloud import firestore

from devstack.stack.services import FirestoreEmulator
from function.adapters.firestore.state import FirestoreState
from function.core.model import BlockRecord, RecordEntry
from function.errors import LeaseLostError
from harness import PROJECT, ROOT, Deployment, block_docs, relayer_doc, run_main


def _wait_for(journal: Path, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if journal.exists() and any(
            json.loads(line).get("point") == what
            for line in journal.read_text().splitlines()
            if line.strip()
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"the run never reached {what}")


def test_a_run_stalled_past_its_lease_leaves_the_newer_record_whole(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.expected = deployment.make_activity(40, blocks=3)
    first = deployment.expected[0]["event"]
    fewer = [e for e in deployment.expected if e["event"] == first]
    assert 0 < len(fewer) < len(deployment.expected)
    env = deployment.env(RELAYER_LEASE_SECONDS="2")
    journal = tmp_path / "a.jsonl"
    stalled = subprocess.Popen(
        [sys.executable, "devstack/faults/crashing_main.py"],
        cwd=ROOT,
        env={
            **env,
            "RELAYER_EVENTS": first,
            "CRASH_AT": "before_record",
            "CRASH_ACTION": "stall",
            "CRASH_SLEEP": "8",
            "FAULT_LOG": str(journal),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(journal, "before_record")  # A's events accepted, A sleeps
    time.sleep(2.2)  # A's lease expires
    newer = run_main(env)
    assert newer.code == 0 and newer.summary["outcome"] == "ok", newer.stdout + newer.stderr
    out, err = stalled.communicate(timeout=60)
    resumed = [json.loads(x) for x in journal.read_text().splitlines() if "resumed" in x]
    assert resumed, journal.read_text() + out + err

    # A woke after B finished: it must have written nothing over B's record.
    docs = block_docs(deployment.relayer_id)
    recorded = {e["event_id"]: e["state"] for d in docs for e in d["events"]}
    assert recorded == {e["event_id"]: "published" for e in deployment.expected}, out + err
    assert {d["run_id"] for d in docs} == {newer.summary["run_id"]}
    assert relayer_doc(deployment.relayer_id)["next_block"] == deployment.head() + 1
    deployment.topic.pull_all()
    again = run_main(env)
    assert again.code == 0 and again.summary["events_published"] == 0, again.stdout
    assert deployment.topic.pull_all() == []


def test_record_writes_nothing_once_another_run_took_the_lease(
    firestore_reset: FirestoreEmulator,
) -> None:
    client = firestore.Client(project=PROJECT)
    state = FirestoreState(client, "fence-test", {"chain_id": 31337, "contracts": []})
    now = datetime.now(UTC)
    old = state.acquire("old", now, 1)
    assert old is not None
    newer = state.acquire("newer", now + timedelta(seconds=2), 30)  # old's lease expired
    assert newer is not None and newer.fence == old.fence + 1
    entry = RecordEntry("e", 0, "0xt", "E", "m", "published", "{}")
    record = BlockRecord(5, "0xb", (entry,), "old", now, now)
    with pytest.raises(LeaseLostError, match="lease lost to run newer"):
        state.records.write(old, [record])
    assert state.records.read(0) == []
    state.records.write(newer, [record])
    (stored,) = state.records.read(0)
    assert stored.ref == record.ref and stored.entries == (entry,)
