"""A follower SIGKILLed in the middle of its window (docs/CONTRACT.md §7.4, §7.7): the next
execution takes over once the dead follower's lease has expired and goes on from its
checkpoint; nothing is lost, and only what the follower published after its last commit
may arrive twice, with the same event_id."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from follow_harness import (
    CRASHING_MAIN,
    Emitter,
    Execution,
    assert_chain_order,
    first_copies,
    follow_env,
    journal,
    wait_until,
)
from harness import Deployment, assert_exactly_once, payloads, relayer_doc

BEFORE = 10  # events on the chain before the follower starts: its first look's messages
# A lease must outlast two poll intervals in follow mode (RELAYER_POLL_INTERVAL=1): 3 s
# keeps the wait for its expiry short. The window is shorter than a waiter's patience
# (poll + 10 s), so the next execution waits for the dead follower instead of skipping.
LEASE = {"RELAYER_LEASE_SECONDS": "3", "RELAYER_CHECKPOINT_INTERVAL": "2"}


@pytest.mark.parametrize(
    ("point", "on"),
    [
        # Each comes early in the window (a busy machine fits few looks in it), yet after
        # the first look (which publishes the BEFORE messages).
        ("between_looks", 2),  # the second look committed, waiting for the third
        ("mid_publish", BEFORE + 1),  # the first message of a later look accepted
        ("during_look_commit", 2),  # the commit after the second look in flight
    ],
)
def test_a_follower_killed_mid_window_is_taken_over_after_its_lease_expires(
    deployment: Deployment, tmp_path: Path, point: str, on: int
) -> None:
    before = deployment.make_activity(BEFORE, blocks=4, seed=3)
    crash_log = tmp_path / "journal.jsonl"
    env = follow_env(deployment, 10, **LEASE)
    crash = {"CRASH_AT": point, "CRASH_ON": str(on), "FAULT_LOG": str(crash_log)}
    dying = Execution.start(
        "dying", {**env, **crash, "FAULT_RUN": "dying"}, tmp_path, script=CRASHING_MAIN
    )
    emitter = Emitter(deployment)
    successor: Execution | None = None
    try:
        # Events from its second look on: the crash lands after the first look's messages.
        wait_until(lambda: bool(dying.looks()) or not dying.alive, "the follower looked")
        emitter.start()
        code = dying.wait(timeout=60)
        assert code == -signal.SIGKILL, dying.text()
        assert any(e["what"] == "point" for e in journal(crash_log)), "the crash never came"
        assert len(dying.looks()) >= 1 and not any(r.get("run_summary") for r in dying.records())
        left = relayer_doc(deployment.relayer_id)  # what the dead follower left
        assert left["lease"]["owner"] is not None and left["lease"]["follow_until"] is not None

        # The next scheduled execution, at once; its first look, after it took the lease,
        # sees every event mined.
        emitted = emitter.stop()
        successor = Execution.start("successor", follow_env(deployment, 6, **LEASE), tmp_path)
        assert successor.wait(timeout=120) == 0, successor.text()
        head = deployment.head()
    finally:
        emitter.close()
        dying.reap()
        if successor is not None:
            successor.reap()

    summary = successor.summary()
    # ok, or idle when the dead follower's last commit landed over every event emitted
    assert summary["outcome"] in ("ok", "idle"), summary
    assert summary["from_block"] == left["next_block"]  # from the dead follower's checkpoint
    # Taken only once expired: never while the dead follower's lease still held.
    assert successor.looks()[0] > left["lease"]["expires_at"].timestamp()
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == head + 1 and doc["lease"]["owner"] is None

    messages = deployment.topic.pull_all()
    got = payloads(messages)
    firsts = first_copies(got)  # every copy of an event is the same message
    assert_exactly_once(firsts, [*before, *emitted])
    assert_chain_order(firsts)
    # Duplicates (CONTRACT §7.4): only messages the dead follower handed to Pub/Sub for
    # blocks past the checkpoint it committed last, each once again by the successor.
    counts = Counter(p["event_id"] for p in got)
    doubled = {event_id for event_id, n in counts.items() if n > 1}
    handed = {
        event_id
        for entry in journal(crash_log)
        if entry["what"] == "handed"
        for event_id in entry["event_ids"]
    }
    uncommitted = {p["event_id"] for p in firsts if p["block_number"] >= left["next_block"]}
    assert doubled <= handed & uncommitted, sorted(doubled - (handed & uncommitted))[:3]
    assert all(counts[event_id] == 2 for event_id in doubled)
    for event_id in doubled:
        tags = sorted(
            m.attributes.get("fault_run", "successor")
            for m in messages
            if m.attributes["event_id"] == event_id
        )
        assert tags == ["dying", "successor"], (event_id, tags)
    if point == "between_looks":  # everything it published was committed
        assert not doubled
