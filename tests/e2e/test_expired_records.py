"""Records expire after RELAYER_EVENT_TTL_DAYS (Firestore TTL): moving the checkpoint back over
blocks that old must not publish their events again as if they were new.

Firestore's emulator does not run TTL deletion, so the test deletes the records itself, as
the TTL would, after the blocks have grown older than a tiny RELAYER_EVENT_TTL_DAYS.
"""

from __future__ import annotations

import time

from google.cloud import firestore

from harness import (
    PROJECT,
    Deployment,
    payloads,
    relayer_doc,
    run_cli,
    run_until_idle,
)

TTL_DAYS = "0.0001"  # 8.64 s


def _expire_records(relayer_id: str) -> None:
    blocks = (
        firestore.Client(project=PROJECT)
        .collection("relayers")
        .document(relayer_id)
        .collection("blocks")
    )
    for snapshot in blocks.stream():
        snapshot.reference.delete()


def test_reset_over_blocks_older_than_the_ttl_refuses_then_marks_replays(
    deployment: Deployment,
) -> None:
    deployment.expected = deployment.make_activity(20, blocks=4)
    env = deployment.env(RELAYER_EVENT_TTL_DAYS=TTL_DAYS)
    run_until_idle(env)
    first = deployment.topic.pull_all()
    assert len(first) == 20 and all("replay" not in m.attributes for m in first)
    before = relayer_doc(deployment.relayer_id)["next_block"]
    time.sleep(9)  # every block is now older than the TTL
    _expire_records(deployment.relayer_id)

    refused = run_cli(env, "reset", "--to-block", "0", "--yes")

    assert refused.code == 2, refused.stdout + refused.stderr
    assert "RELAYER_EVENT_TTL_DAYS" in refused.stderr and "--replay-expired" in refused.stderr
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == before and doc["lease"]["owner"] is None

    allowed = run_cli(env, "reset", "--to-block", "0", "--yes", "--replay-expired")
    assert allowed.code == 0, allowed.stdout + allowed.stderr
    runs = run_until_idle(env)

    again = deployment.topic.pull_all()
    assert sorted(p["event_id"] for p in payloads(again)) == sorted(
        e["event_id"] for e in deployment.expected
    )
    assert all(m.attributes.get("replay") == "true" for m in again)
    assert sum(r.summary.get("replayed_unrecorded", 0) for r in runs) == 20


def test_reset_over_recent_blocks_needs_no_flag_and_publishes_nothing_again(
    deployment: Deployment,
) -> None:
    deployment.expected = deployment.make_activity(10, blocks=3)
    env = deployment.env()
    run_until_idle(env)
    assert len(deployment.topic.pull_all()) == 10

    done = run_cli(env, "reset", "--to-block", "0", "--yes")
    assert done.code == 0, done.stdout + done.stderr
    runs = run_until_idle(env)

    assert deployment.topic.pull_all() == []
    assert sum(r.summary["duplicates_skipped"] for r in runs) == 10


def test_backfill_over_blocks_the_job_relayed_before_the_ttl_refuses_then_marks_replays(
    deployment: Deployment,
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=6)
    first_job_block = deployment.expected[len(deployment.expected) // 2]["block_number"]
    env = deployment.env(RELAYER_EVENT_TTL_DAYS=TTL_DAYS, START_BLOCK=str(first_job_block))
    run_until_idle(env)  # the job relays from first_job_block on
    job_ids = {e["event_id"] for e in deployment.expected if e["block_number"] >= first_job_block}
    assert {p["event_id"] for p in payloads(deployment.topic.pull_all())} == job_ids
    time.sleep(9)
    _expire_records(deployment.relayer_id)
    last = deployment.expected[-1]["block_number"] - 1  # below the job's checkpoint

    refused = run_cli(env, "backfill", "--from-block", "0", "--to-block", str(last))
    assert refused.code == 2, refused.stdout + refused.stderr
    assert f"blocks {first_job_block}..{last} were relayed" in refused.stderr
    assert deployment.topic.pull_all() == []

    done = run_cli(
        env, "backfill", "--from-block", "0", "--to-block", str(last), "--replay-expired"
    )
    assert done.code == 0, done.stdout + done.stderr
    got = deployment.topic.pull_all()
    in_range = [e for e in deployment.expected if e["block_number"] <= last]
    assert sorted(p["event_id"] for p in payloads(got)) == sorted(e["event_id"] for e in in_range)
    for m, p in zip(got, payloads(got), strict=True):
        relayed_before = p["block_number"] >= first_job_block
        assert (m.attributes.get("replay") == "true") == relayed_before, p["block_number"]


def test_backfill_over_an_earlier_backfill_older_than_the_ttl_refuses_then_marks_replays(
    deployment: Deployment,
) -> None:
    deployment.expected = deployment.make_activity(10, blocks=3)
    head = deployment.head()
    env = deployment.env(RELAYER_EVENT_TTL_DAYS=TTL_DAYS, START_BLOCK=str(head + 1))
    first = run_cli(env, "backfill", "--from-block", "0", "--to-block", str(head))
    assert first.code == 0, first.stdout + first.stderr
    assert len(deployment.topic.pull_all()) == 10
    time.sleep(9)
    _expire_records(deployment.relayer_id)

    refused = run_cli(env, "backfill", "--from-block", "1", "--to-block", str(head))
    assert refused.code == 2, refused.stdout + refused.stderr
    assert "were relayed before" in refused.stderr and "--replay-expired" in refused.stderr
    assert deployment.topic.pull_all() == []

    again = run_cli(
        env, "backfill", "--from-block", "1", "--to-block", str(head), "--replay-expired"
    )
    assert again.code == 0, again.stdout + again.stderr
    got = deployment.topic.pull_all()
    assert got and all(m.attributes.get("replay") == "true" for m in got)

    # The first backfill run again is its own range resumed: nothing to do, nothing refused.
    resumed = run_cli(env, "backfill", "--from-block", "0", "--to-block", str(head))
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert deployment.topic.pull_all() == []
