"""Who published each copy of an event, and whether §7 allowed the second copy.

A duplicate (one event, two message ids) is allowed by §7.4 when a run published it under a
valid lease and then died, stalled or failed before recording it, and the next run published
it again; all such events of one run must lie within one checkpoint interval above its last
commit. It is a replay (§7.2) when the event had been recorded, or lay below the checkpoint,
before the republishing run took the lease. It is a double publication (§7.3) when Pub/Sub
accepted a copy after another run had taken its run's lease, whether the request went out
before the lease ran out (and was held up: a frozen process, a slow network) or after.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

from devstack.faults.proc import Proc
from devstack.faults.world import Copy, World


def takeovers(journals: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """When each run's lease went to another run: when the taker's grant had returned (not
    its `now`, read when the run started: a run blocked by an outage acquires much later).
    Fences count per lease: the job's, and each backfill task's of its own."""
    grants = [(e.get("lease", ""), e["fence"], e["t"], tag) for tag, j in journals.items()
              for e in j if e["what"] == "acquired"]  # fmt: skip
    out: dict[str, float] = {}
    for lease, fence, _, tag in grants:  # a run's last grant of each lease counts
        later = [t for held, f, t, other in grants if held == lease and f > fence and other != tag]
        out[tag] = min(later, default=float("inf"))
    return out


def _hand_overs(
    journals: dict[str, list[dict[str, Any]]],
) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """When each run handed each event to the Pub/Sub client, and until when its lease held
    (its grant's expiry or its last renewal, on its own clock)."""
    handed: dict[tuple[str, str], float] = {}
    until: dict[str, float] = {}
    for tag, journal in journals.items():
        for e in journal:
            if e["what"] == "handed":
                for event_id in e["event_ids"]:
                    handed[(tag, event_id)] = e["t"]
            elif e["what"] == "acquired":
                until[tag] = max(until.get(tag, 0.0), e["expires"])
            elif e["what"] == "committed" and e["lease_until"]:
                until[tag] = max(until.get(tag, 0.0), e["lease_until"])
    return handed, until


def duplicates(
    world: World,
    copies: list[Copy],
    procs: dict[str, Proc],
    journals: dict[str, list[dict[str, Any]]],
    interval: int,
    figures: Counter[str],
    findings: list[str],
    strict: bool = False,
) -> None:
    """`strict`: one run's own copies of an event are a violation too (`dup_same_run`),
    as when a provider repeats a log in one answer."""
    takeover = takeovers(journals)
    grant_of = {
        t: next((e for e in j if e["what"] == "acquired"), None) for t, j in journals.items()
    }
    recorded_at: dict[str, float] = {}
    committed: dict[str, int] = {}  # run -> the highest checkpoint it committed
    for tag, journal in journals.items():
        for e in journal:
            if e["what"] == "recorded":
                for event_id in e["event_ids"]:
                    recorded_at[event_id] = min(recorded_at.get(event_id, e["t"]), e["t"])
            if e["what"] == "committed" and e["next_block"] is not None:
                committed[tag] = max(committed.get(tag, 0), e["next_block"])
        grant = grant_of[tag]
        if grant is not None and grant["next_block"] is not None and tag not in committed:
            committed[tag] = grant["next_block"]
    handed_at, lease_end = _hand_overs(journals)
    stale = [c for c in copies if c.run and c.accepted_at > takeover.get(c.run, float("inf"))]
    figures["stale_publishes"] += len(stale)
    by_event: dict[str, list[Copy]] = defaultdict(list)
    for c in copies:
        by_event[c.event_id].append(c)
    republished: dict[str, set[str]] = defaultdict(set)  # earlier run -> its events republished
    for event_id, group in by_event.items():
        if event_id not in world.known:
            continue
        block = world.block_of(event_id)
        for c in group:  # §7.2: nothing recorded, or below the run's own checkpoint, again
            grant = grant_of.get(c.run)
            if grant is None:
                continue
            early = recorded_at.get(event_id, float("inf")) < grant["now"]
            # a run that found a reorganisation rewinds: from the fork on it relays anew
            floor = min((grant["next_block"], *world.forks)) if grant["next_block"] else None
            below = floor is not None and block < floor
            if (early and len(group) > 1) or below:
                figures["replayed"] += 1
                findings.append(f"{event_id} (block {block}) published again by {c.run}")
        if len(group) < 2:
            continue
        group.sort(key=lambda c: c.accepted_at)
        figures["dup_events"] += 1
        figures["dup_copies"] += len(group) - 1
        if len({c.data for c in group}) > 1:
            figures["dup_data_differs"] += 1
            findings.append(f"{event_id}: copies with different data")
        runs = [c.run for c in group]
        if len(set(runs)) == 1:
            figures["dup_same_run"] += 1  # a publish retried within the run
            if strict:
                figures["dup_in_one_run"] += 1
                findings.append(f"{event_id} published {len(group)} times by {runs[0]}")
            continue
        late = [c for c in group if c in stale]
        if late:
            # Every publish request carries a deadline before its run's lease ends, so no
            # copy may be accepted after another run took over, however it was sent.
            figures["double_published"] += 1
            handed = min(handed_at.get((c.run, event_id), float("inf")) for c in late)
            within = "within" if handed <= lease_end.get(late[0].run, 0.0) else "after"
            who = ", ".join(f"{c.run}@{c.accepted_at:.3f}" for c in group)
            findings.append(
                f"{event_id} (block {block}) published by {who}: {late[0].run} sent it at "
                f"{handed:.3f}, {within} its lease (to {lease_end.get(late[0].run, 0.0):.3f}), "
                "and Pub/Sub accepted it after another run took over"
            )
            continue
        for before, after in itertools.pairwise(runs):
            if before == after:
                continue
            republished[before].add(event_id)
            fate = _fate(procs[before], journals[before]) if before in procs else "unexplained"
            figures[f"dup_after_{fate}"] += 1
            if fate == "unexplained":
                figures["dup_unexplained"] += 1
                findings.append(f"{event_id} published by {runs}: {before} ended normally")
    for tag, events in republished.items():
        blocks = sorted(world.block_of(e) for e in events)
        floor = committed.get(tag, world.start_block)
        if blocks[-1] - blocks[0] >= interval or blocks[0] < floor:
            figures["window_exceeded"] += len(events)
            findings.append(
                f"{tag}'s events in blocks {blocks} were published again: more than one "
                f"checkpoint interval ({interval}) above its last commit ({floor})"
            )


def _fate(proc: Proc, journal: list[dict[str, Any]]) -> str:
    """How a run whose events were published again ended."""
    if proc.killed:
        return "kill"
    if proc.frozen or any(e["what"] == "point" and e["action"] in ("stall", "freeze")
                          for e in journal):  # fmt: skip
        return "stall"
    if any(e["what"] == "lease_lost" for e in journal):
        return "stall"
    summaries = proc.summaries()
    if summaries and summaries[0].get("outcome") == "failed":
        return "failure"
    if proc.term_sent is not None:
        return "sigterm"
    return "unexplained"
