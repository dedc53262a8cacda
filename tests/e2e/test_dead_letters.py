"""A log that matches a contract but not its ABI is never dropped silently (issue: dead
letters). The ABI here declares EscrowFunded's `funder` as not indexed: same signature,
same topic0, but the logs carry one topic more than the ABI expects: a real ABI mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.stack.clients import PubSubTopic, create_topic_and_subscription
from devstack.stack.services import Stack
from harness import ARTIFACT, Deployment, assert_exactly_once, payloads, relayer_doc, run_main


@pytest.fixture
def mismatched_abi(tmp_path: Path) -> str:
    abi = json.loads(ARTIFACT.read_text())["abi"]
    for entry in abi:
        if entry.get("name") == "EscrowFunded":
            for param in entry["inputs"]:
                if param["name"] == "funder":
                    param["indexed"] = False
    path = tmp_path / "Escrow-mismatched.json"
    path.write_text(json.dumps(abi))
    return str(path)


@pytest.fixture
def dead_letter_topic(stack: Stack, pubsub_topic: PubSubTopic) -> PubSubTopic:
    name = pubsub_topic.topic_id + "-dlq"
    return create_topic_and_subscription(stack.pubsub.address, stack.project, name, name + "-sub")


def test_undecodable_logs_go_to_the_dead_letter_topic(
    deployment: Deployment, mismatched_abi: str, dead_letter_topic: PubSubTopic
) -> None:
    deployment.expected = deployment.make_activity(80, blocks=10)
    env = deployment.env(
        ABI_URI=mismatched_abi,
        RELAYER_DEADLETTER_TOPIC=dead_letter_topic.topic_id,
        RELAYER_CHECKPOINT_INTERVAL="3",
    )
    run = run_main(env)
    assert run.code == 0, run.stdout

    funded = [e for e in deployment.expected if e["event"] == "EscrowFunded"]
    others = [e for e in deployment.expected if e["event"] != "EscrowFunded"]
    assert funded and others
    assert_exactly_once(payloads(deployment.topic.pull_all()), others)
    dead = payloads(dead_letter_topic.pull_all())
    assert sorted(d["event_id"] for d in dead) == sorted(e["event_id"] for e in funded)
    for d in dead:
        assert "indexed topics" in d["reason"]
        assert d["log"]["blockHash"] == d["block_hash"]
        assert d["relayer_id"] == deployment.relayer_id
    assert run.summary["dead_lettered"] == len(funded)
    assert relayer_doc(deployment.relayer_id)["totals"]["events_deadlettered"] == len(funded)

    # Recorded like published events: a later run over the same blocks sends nothing again.
    deployment.mine(1)
    again = run_main(env)
    assert again.code == 0 and again.summary["dead_lettered"] == 0
    assert dead_letter_topic.pull_all(idle_s=0.3) == []


def test_without_a_dead_letter_topic_the_run_fails_and_skips_nothing(
    deployment: Deployment, mismatched_abi: str
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=4)
    run = run_main(deployment.env(ABI_URI=mismatched_abi))
    assert run.code == 1
    assert run.summary["outcome"] == "failed"
    assert "RELAYER_DEADLETTER_TOPIC" in run.summary["message"]
    doc = relayer_doc(deployment.relayer_id)
    assert doc.get("next_block") is None  # no checkpoint: nothing was passed over
    assert deployment.topic.pull_all(idle_s=0.3) == []
