"""The verdict on what a trial left behind a reorganisation, and on the records' writers.

Retractions (§3): every event a run published live on a block that is no longer canonical
must reach subscribers exactly once more, with the same data and `"removed": true`.
`unretracted` counts orphans published live with no retraction; `retracted_wrong` counts
retractions with other data, of events never published live or still canonical, and extra
copies not explained as §7.4 allows (an earlier run killed, stalled or failed before it
marked the record `removed`).

Writers (§7.6): a run whose lease another run took over writes nothing more. `stale_writes`
counts the records and commits a run's journal shows after the takeover; `records_wrong`
counts published records whose message id is no copy a subscriber received of that event.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from typing import Any

from devstack.faults.proc import Proc
from devstack.faults.world import Copy, World


def retractions(
    world: World,
    live: list[Copy],
    removed: list[Copy],
    procs: dict[str, Proc],
    figures: Counter[str],
    findings: list[str],
) -> None:
    published = {c.event_id: c for c in live}
    by_event: dict[str, list[Copy]] = defaultdict(list)
    for c in removed:
        by_event[c.event_id].append(c)
    for event_id in world.orphans:
        if event_id not in published:
            continue
        figures["orphans_published"] += 1
        got = sorted(by_event.get(event_id, []), key=lambda c: c.accepted_at)
        if not got:
            figures["unretracted"] += 1
            findings.append(f"{event_id} (block {world.block_of(event_id)}, orphaned) was "
                            "published live and never retracted")  # fmt: skip
            continue
        figures["retracted"] += 1
        want = {**json.loads(published[event_id].data), "removed": True}
        if any(json.loads(c.data) != want for c in got):
            figures["retracted_wrong"] += 1
            findings.append(f"{event_id}: a retraction with other data than the live message")
        for before, after in itertools.pairwise(got):
            figures["retraction_dups"] += 1
            if before.run == after.run or not _may_repeat(procs.get(before.run)):
                figures["retracted_wrong"] += 1
                findings.append(f"{event_id} retracted again by {after.run} after {before.run}")
    for event_id, got in by_event.items():
        if event_id in world.truth or event_id not in published:
            figures["retracted_wrong"] += len(got)
            why = "still canonical" if event_id in world.truth else "never published live"
            findings.append(f"{event_id} retracted {len(got)} times, {why}")


def _may_repeat(proc: Proc | None) -> bool:
    """An earlier run that did not end on its own terms may leave a retraction unrecorded."""
    if proc is None:
        return False
    if proc.killed or proc.hung or proc.frozen or proc.term_sent is not None:
        return True
    journal = proc.journal()
    if any(e["what"] in ("lease_lost",) or e.get("action") in ("stall", "freeze")
           for e in journal):  # fmt: skip
        return True
    return any(s.get("outcome") == "failed" for s in proc.summaries())


def stale_writes(
    journals: dict[str, list[dict[str, Any]]],
    takeover: dict[str, float],
    figures: Counter[str],
    findings: list[str],
) -> None:
    """§7.6 from the journals: nothing recorded or committed after another run took over."""
    for tag, journal in journals.items():
        after = takeover.get(tag, float("inf"))
        # a record call with no events writes nothing; a commit refused for the lease
        # leaves no journal line; a write that began before the takeover was fenced by the
        # lease it read then (a freeze may have delayed only its journal line)
        writes = [e for e in journal if e["what"] == "committed"
                  or (e["what"] == "recorded" and e.get("event_ids"))]  # fmt: skip
        late = [e for e in writes if e.get("started", e["t"]) > after]
        if late:
            figures["stale_writes"] += len(late)
            kinds = Counter(e["what"] for e in late)
            findings.append(f"{tag} wrote after its lease was taken over at {after:.3f}: "
                            f"{dict(kinds)}")  # fmt: skip


def records_match(
    records: list[dict[str, Any]], live: list[Copy], figures: Counter[str], findings: list[str]
) -> None:
    """Each published record names a message a subscriber received for that event."""
    ids: dict[str, set[str]] = defaultdict(set)
    for c in live:
        ids[c.event_id].add(c.message_id)
    wrong = [
        r for r in records
        if r.get("state", "published") == "published" and r.get("message_id")
        and str(r["message_id"]) not in ids[str(r["event_id"])]
    ]  # fmt: skip
    if wrong:
        figures["records_wrong"] += len(wrong)
        findings.append(f"{len(wrong)} records name a message nobody received, first "
                        f"{wrong[0]['event_id']}")  # fmt: skip
