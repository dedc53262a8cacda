"""The relay job end to end: `python main.py` against anvil and the real emulators.

Ground truth is the escrow driver's record of the calls it made (devstack/chain/escrow.py), never
the relayer's own decoder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness import (
    ROOT,
    Deployment,
    assert_exactly_once,
    block_docs,
    payloads,
    relayer_doc,
    run_main,
    run_script,
    run_until_idle,
)


def test_every_event_arrives_exactly_once_as_the_contract_says(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(150, blocks=25)
    env = deployment.env(RELAYER_BATCH_SIZE="10", RELAYER_CHECKPOINT_INTERVAL="4")

    runs = run_until_idle(env)

    messages = deployment.topic.pull_all()
    assert_exactly_once(payloads(messages), deployment.expected)
    assert sum(r.summary["events_published"] for r in runs) == len(deployment.expected)
    for m in messages:
        p = json.loads(m.data)
        assert m.ordering_key == f"31337:{deployment.contract}"
        assert m.attributes["ce-id"] == m.attributes["event_id"] == p["event_id"]
        assert m.attributes["ce-type"] == f"evm.event.{p['event']}"
        assert m.attributes["ce-source"] == f"eip155:31337:{deployment.contract}"
        assert m.attributes["block_number"] == str(p["block_number"])
        assert m.attributes["removed"] == "false"
    # The ordered subscription delivers the contract's events in chain order.
    order = [(p["block_number"], p["log_index"]) for p in payloads(messages)]
    assert order == sorted(order)
    # Firestore: the processed-event set holds every event, once, as published.
    recorded = [e for doc in block_docs(deployment.relayer_id) for e in doc["events"]]
    assert sorted(e["event_id"] for e in recorded) == sorted(
        e["event_id"] for e in deployment.expected
    )
    assert {e["state"] for e in recorded} == {"published"}
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == deployment.head() + 1
    assert doc["totals"]["events_published"] == len(deployment.expected)
    assert doc["lease"]["owner"] is None
    assert doc["last_run"]["outcome"] == "idle"


def test_checkpoint_moves_by_at_most_a_batch_and_stays_behind_the_head(
    deployment: Deployment,
) -> None:
    deployment.expected = deployment.make_activity(40, blocks=30)
    env = deployment.env(RELAYER_BATCH_SIZE="7", RELAYER_CONFIRMATIONS="5")
    head = deployment.head()
    previous = 0
    while True:
        run = run_main(env)
        assert run.code == 0, run.stdout
        next_block = relayer_doc(deployment.relayer_id)["next_block"]
        assert 0 <= next_block - previous <= 7
        if run.summary["outcome"] == "idle":
            break
        assert run.summary["to_block"] - run.summary["from_block"] + 1 <= 7
        previous = next_block
    assert next_block == head - 5 + 1
    confirmed = [e for e in deployment.expected if e["block_number"] <= head - 5]
    messages = deployment.topic.pull_all()
    assert_exactly_once(payloads(messages), confirmed)

    again = run_main(env)
    assert again.code == 0
    assert again.summary["outcome"] == "idle"
    assert again.summary["events_published"] == 0
    assert deployment.topic.pull_all(idle_s=0.3) == []
    assert relayer_doc(deployment.relayer_id)["next_block"] == next_block


def test_four_runs_started_at_once_publish_every_event_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.expected = deployment.make_activity(200, blocks=20)
    env = deployment.env(RELAYER_BATCH_SIZE="1000", RELAYER_CHECKPOINT_INTERVAL="2")
    # The first run holds the lease, paused just before it publishes (within its 30 s
    # lease), while three more start at once: they overlap it whatever the machine's load
    # (started bare, a run may finish before the next one's interpreter is up).
    journal = tmp_path / "first.jsonl"
    first = subprocess.Popen(
        [sys.executable, "devstack/faults/crashing_main.py"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "CRASH_AT": "before_publish",
             "FAULT_LOG": str(journal), "CRASH_ACTION": "stall", "CRASH_SLEEP": "10"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (journal.exists() and '"point": "before_publish"' in journal.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    procs = [
        first,
        *(
            subprocess.Popen(
                [sys.executable, "main.py"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ),
    ]
    outcomes = Counter()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        summary = [json.loads(line) for line in out.splitlines() if '"run_summary"' in line]
        outcomes[summary[0]["outcome"]] += 1
    run_until_idle(env)

    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
    assert outcomes["skipped"] >= 1, outcomes  # the lease kept at least one overlapping run out
    totals = relayer_doc(deployment.relayer_id)["totals"]
    assert totals["events_published"] == len(deployment.expected)


def _crash_then_recover(deployment: Deployment, point: str, on: int) -> None:
    deployment.expected = deployment.make_activity(120, blocks=24)
    interval = 4
    env = deployment.env(
        RELAYER_BATCH_SIZE="1000",
        RELAYER_CHECKPOINT_INTERVAL=str(interval),
        RELAYER_LEASE_SECONDS="2",
    )
    crash = subprocess.run(
        [sys.executable, "devstack/faults/crashing_main.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "CRASH_AT": point, "CRASH_ON": str(on)},
        timeout=120,
        check=False,
    )
    assert crash.returncode == -9, crash.stdout + crash.stderr
    checkpoint = relayer_doc(deployment.relayer_id).get("next_block", 0)
    before = payloads(deployment.topic.pull_all())
    assert before, "the crash came before anything was published"

    time.sleep(2.2)  # the killed run's lease must expire before another run may take over
    run_until_idle(env)

    after = payloads(deployment.topic.pull_all())
    everything = before + after
    counts = Counter(p["event_id"] for p in everything)
    expected_ids = {e["event_id"] for e in deployment.expected}
    assert set(counts) == expected_ids, "an event was lost or invented"
    duplicated = {p["event_id"]: p for p in everything if counts[p["event_id"]] > 1}
    # The crash came after Pub/Sub accepted messages the checkpoint did not cover yet.
    assert duplicated, "the crash point was not between publishing and committing"
    for event_id, payload in duplicated.items():
        # §7.4: only what was published after the last checkpoint commit, at most one interval.
        assert checkpoint <= payload["block_number"] < checkpoint + interval, event_id
        copies = [p for p in everything if p["event_id"] == event_id]
        assert all(c == copies[0] for c in copies)
    assert max(counts.values()) <= 2
    assert relayer_doc(deployment.relayer_id)["next_block"] == deployment.head() + 1


def test_sigkill_in_the_middle_of_publishing_loses_nothing(deployment: Deployment) -> None:
    _crash_then_recover(deployment, "mid_publish", on=9)


def test_sigkill_between_publish_and_record_loses_nothing(deployment: Deployment) -> None:
    _crash_then_recover(deployment, "before_record", on=3)


def test_finality_tags_replace_confirmations(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(40, blocks=8)
    deployment.mine(60)  # anvil: safe = head - 32, finalized = head - 64
    head = deployment.head()
    for tag, behind in (("finalized", 64), ("safe", 32)):
        # RELAYER_CONFIRMATIONS is ignored with a finality tag.
        run = run_main(deployment.env(RELAYER_HEAD=tag, RELAYER_CONFIRMATIONS="1000"))
        assert run.code == 0, run.stdout
        assert relayer_doc(deployment.relayer_id)["next_block"] == head - behind + 1
    confirmed = [e for e in deployment.expected if e["block_number"] <= head - 32]
    assert_exactly_once(payloads(deployment.topic.pull_all()), confirmed)


def test_logs_are_structured_for_cloud_logging(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(5, blocks=2)
    run = run_main(deployment.env(CLOUD_RUN_EXECUTION="relay-job-x7k2p", CLOUD_RUN_TASK_INDEX="0"))
    assert run.code == 0
    assert run.stderr == ""
    for record in run.records:
        assert record["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert record["message"]
    summary = run.summary
    # The summary carries relayer_id as a field (the log-based metric reads it), not again
    # as a label (the other lines of a run carry the label).
    assert summary["relayer_id"] == deployment.relayer_id
    assert summary["logging.googleapis.com/labels"] == {
        "run.googleapis.com/execution_name": "relay-job-x7k2p",
        "run.googleapis.com/task_index": "0",
    }
    for key in (
        "outcome",
        "from_block",
        "to_block",
        "events_published",
        "duplicates_skipped",
        "duration_s",
    ):
        assert key in summary
    text = run_main(deployment.env(LOG_FORMAT="text"))
    assert text.code == 0
    assert len(text.lines) == 1 and text.lines[0].split()[1] == "INFO"
    assert "run idle" in text.lines[0]


def test_a_block_time_past_year_9999_does_not_stop_the_relayer(deployment: Deployment) -> None:
    # A devnet's clock may say anything (anvil takes any u64): RFC 3339 cannot write a year
    # past 9999, so `ce-time` is left out; the time stays in the data.
    deployment.w3.provider.make_request("evm_setNextBlockTimestamp", [2**40])  # type: ignore[arg-type]
    deployment.expected = deployment.make_activity(2, blocks=1)
    run = run_main(deployment.env())
    assert run.code == 0, run.stdout + run.stderr
    messages = deployment.topic.pull_all()
    assert_exactly_once(payloads(messages), deployment.expected)
    assert all("ce-time" not in m.attributes for m in messages)
    assert {json.loads(m.data)["block_timestamp"] for m in messages} == {2**40}


def test_a_lease_too_short_to_publish_fails_the_run_and_says_so(deployment: Deployment) -> None:
    # CONTRACT §2 accepts any positive RELAYER_LEASE_SECONDS; one shorter than a publish
    # round trip can never relay: each run must fail saying so, not end "ok" having done
    # nothing (a stall that looks healthy).
    # Pub/Sub is made slower than the lease (each message waits 0.6 s before it goes out),
    # so the lease runs out mid-publish however fast this machine is.
    deployment.expected = deployment.make_activity(5, blocks=2)
    env = deployment.env(RELAYER_LEASE_SECONDS="0.5")
    run = run_script(
        "devstack/faults/crashing_main.py",
        {**env, "CRASH_AT": "slow_publish", "CRASH_SLEEP": "0.6"},
    )
    assert run.code == 1, run.stdout + run.stderr
    assert run.summary["outcome"] == "failed"
    assert "the lease ran out while publishing" in run.summary["message"]
    assert "RELAYER_LEASE_SECONDS=0.5" in run.summary["message"]
    assert relayer_doc(deployment.relayer_id)["last_run"]["outcome"] == "failed"
