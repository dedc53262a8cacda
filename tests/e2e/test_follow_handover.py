"""Hand-over between followers that overlap, and a follower stopped by SIGTERM in the middle of
its window (docs/CONTRACT.md §7.3, §7.5, §7.7), through `python main.py` on anvil and the
emulators while the chain keeps getting events."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from follow_harness import (
    CRASHING_MAIN,
    Emitter,
    Execution,
    assert_chain_order,
    follow_env,
    journal,
    wait_until,
)
from harness import Deployment, assert_exactly_once, payloads, relayer_doc

WAITING = "waiting for it to hand over"  # what a run waiting for a follower logs


def test_overlapping_followers_publish_one_at_a_time(
    deployment: Deployment, tmp_path: Path
) -> None:
    before = deployment.make_activity(10, blocks=4, seed=3)
    log = tmp_path / "journal.jsonl"
    # A window shorter than a waiter's patience (poll + 10 s): whoever finds the lease held
    # by a follower waits for it rather than skipping (README "Follow mode"); long enough
    # that the third starts while the first still follows, even on a busy machine.
    env = follow_env(deployment, 10, CRASH_AT="none", FAULT_LOG=str(log))
    # Warm (imports done, see follow_harness.WARM), so that each starts when fired.
    runs = [
        Execution.warm(name, {**env, "FAULT_RUN": name}, tmp_path, script=CRASHING_MAIN)
        for name in ("a", "b", "c")
    ]
    emitter = Emitter(deployment).start()
    try:
        wait_until(lambda: all(r.warmed for r in runs), "the executions imported")
        # Two at nearly the same instant (Cloud Scheduler's at-least-once delivery) ...
        runs[0].fire()
        runs[1].fire()
        wait_until(lambda: bool(_acquired(log)), "one of them took the lease")
        holder = next(r for r in runs if r.proc.pid == _acquired(log)[0]["pid"])
        wait_until(lambda: len(holder.looks()) >= 2, "it looked twice")
        # ... and a third while both are alive. Events stop here: the later holders take
        # the lease after this, and their first looks see every event mined.
        emitted = emitter.stop()
        third = runs[2]
        third.fire()
        wait_until(lambda: third.logged(WAITING) or not third.alive, "the third waits")
        head = deployment.head()
        codes = [r.wait(timeout=120) for r in runs]
    finally:
        emitter.close()
        for r in runs:
            r.reap()
    assert codes == [0, 0, 0], "\n".join(r.text() for r in runs)
    summaries = {r.name: r.summary() for r in runs}
    assert all(s["outcome"] in ("ok", "idle") for s in summaries.values()), summaries
    # One took the lease at once; each other waited for a follower to hand over to it.
    first = [n for n, s in summaries.items() if "handed_over_by" not in s]
    assert len(first) == 1, summaries
    ids = {s["run_id"] for s in summaries.values()}
    for name, s in summaries.items():
        if name not in first:
            assert s["handed_over_by"] in ids - {s["run_id"]}

    # From the journal: the three held the lease one after the other (each acquired after
    # the one before had begun its last commit, the release), under growing fences, and each
    # handed messages to Pub/Sub only while it held the lease.
    entries = journal(log)
    pids = {r.proc.pid: r.name for r in runs}
    spans = []
    for pid, name in pids.items():
        mine = [e for e in entries if e["pid"] == pid]
        acquired = [e for e in mine if e["what"] == "acquired"]
        released = [e for e in mine if e["what"] == "committed" and e["final"]]
        assert len(acquired) == 1 and len(released) == 1, (name, mine)
        begin, end = acquired[0]["t"], released[0]["started"]
        handed = [e["t"] for e in mine if e["what"] in ("handed", "answered")]
        assert all(begin <= t <= end for t in handed), name
        spans.append((begin, end, acquired[0]["fence"], name))
    spans.sort()
    for (_, end, fence, _), (begin, _, later_fence, name) in itertools.pairwise(spans):
        assert end < begin and fence < later_fence, f"{name} held the lease too early"
    # The third found the lease held (it waited) before the first holder let it go: all
    # three were alive at once.
    waited = [r for r in third.records() if WAITING in str(r.get("message"))]
    assert waited and _seconds(waited[0]["time"]) < spans[0][1], "the third came too late"

    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == head + 1 and doc["lease"]["owner"] is None
    got = payloads(deployment.topic.pull_all())
    assert_exactly_once(got, [*before, *emitted])
    assert_chain_order(got)


def _acquired(log: Path) -> list[dict[str, Any]]:
    return [e for e in journal(log) if e["what"] == "acquired"]


def _seconds(logged: str) -> float:
    """A log line's `time` (RFC 3339, Z) on the journal's clock (epoch seconds)."""
    return datetime.fromisoformat(logged.replace("Z", "+00:00")).timestamp()


# CONTRACT §7.5 gives a stopped run 10 s to commit, release and exit; the test allows that
# much, no more (a busy machine slows the exit, but the bound is the contract's own).
SIGTERM_EXIT_S = 10.0


def test_a_follower_stopped_mid_window_hands_over_at_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    before = deployment.make_activity(10, blocks=4, seed=3)
    # Its window (12 s) ends within the next execution's patience (poll + 10 s) once that
    # one has started: the next one waits for it. Its lease (30 s) outlasts the test. The
    # next one is warm (imports done, see follow_harness.WARM): it starts when fired.
    successor = Execution.warm("successor", follow_env(deployment, 10), tmp_path)
    stopped = Execution.start("stopped", follow_env(deployment, 12), tmp_path)
    emitter = Emitter(deployment).start()
    try:
        # Fired after the follower's second look: its window (12 s from its start) then ends
        # within the successor's patience (poll + 10 s) however fast that look came.
        wait_until(lambda: len(stopped.looks()) >= 2, "the follower looked twice")
        wait_until(lambda: successor.warmed, "the next execution imported")
        successor.fire()
        wait_until(lambda: successor.logged(WAITING), "the next execution waits for it")
        held = relayer_doc(deployment.relayer_id)["lease"]
        assert stopped.alive
        # Events stop here: the successor takes the lease after the SIGTERM, and its first
        # look sees every event mined.
        emitted = emitter.stop()

        stopped.terminate()
        sent = time.monotonic()
        code = stopped.wait(timeout=30)
        took = time.monotonic() - sent
        assert successor.wait(timeout=120) == 0, successor.text()
        head = deployment.head()
    finally:
        emitter.close()
        stopped.reap()
        successor.reap()

    assert code == 0, stopped.text()
    assert took < SIGTERM_EXIT_S, f"exited {took:.1f} s after SIGTERM"
    ended = stopped.summary()
    assert ended["outcome"] == "ok" and ended["interrupted"] is True, ended
    assert ended["looks"] >= 2
    # The successor took the released lease: handed over by the stopped follower, from its
    # checkpoint, before that follower's lease (renewed for 30 s at each look) expired.
    summary = successor.summary()
    # `ok` when blocks came after the stopped one's last look, `idle` when it had relayed
    # them all (how far it got before the SIGTERM depends on the machine's speed).
    assert summary["outcome"] in ("ok", "idle"), summary
    assert summary["handed_over_by"] == ended["run_id"]
    assert summary["from_block"] == ended["to_block"] + 1
    assert successor.looks()[0] < held["expires_at"].timestamp()
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == head + 1 and doc["lease"]["owner"] is None
    got = payloads(deployment.topic.pull_all())
    assert_exactly_once(got, [*before, *emitted])
    assert_chain_order(got)
