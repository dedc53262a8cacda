"""The verdict on one trial: the chain's truth against what a subscriber received, what
Firestore recorded, what /status said and what each run's journal says it did.

VIOLATIONS must all be 0; the other figures describe the trial (runs, kills, outcomes,
duplicates allowed by §7.4; see faults_duplicates.py for how duplicates are judged).
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import datetime
from typing import Any

from devstack.faults_duplicates import duplicates
from devstack.faults_trial import Proc
from devstack.faults_world import Copy, World

VIOLATIONS = (
    "lost",
    "double_published",
    "replayed",
    "window_exceeded",
    "regressions",
    "unclear",
    "status_wrong",
    "final_wrong",
    "lease_overlaps",
    "dup_unexplained",
    "dup_data_differs",
    "wrong_data",
    "stray",
    "sigterm_late",
    "sigterm_unclean",
    "checkpoint_ahead",
)
OUTCOMES = {"ok": (0,), "idle": (0,), "skipped": (0,), "failed": (1, 2)}


def judge(world: World, ev: dict[str, Any], interval: int) -> tuple[Counter[str], list[str]]:
    """Figures and findings (one line per violation) of a finished trial."""
    figures: Counter[str] = Counter()
    findings: list[str] = []
    procs: dict[str, Proc] = {p.tag: p for p in ev["procs"]}
    journals = {tag: p.journal() for tag, p in procs.items()}
    _runs(procs, journals, figures, findings)
    _delivery(world, ev["copies"], figures, findings)
    duplicates(world, ev["copies"], procs, journals, interval, figures, findings)
    _leases(journals, figures, findings)
    _checkpoints(world, ev, figures, findings)
    for tag, proc in procs.items():
        if proc.term_sent is not None:
            _sigterm(world, tag, proc, ev["copies"], figures, findings)
    for check in ev["status"]:
        figures["status_checks"] += 1
        if not check["right"]:
            figures["status_wrong"] += 1
            findings.append(f"status {check['when']}: {check}")
    _final(world, ev, figures, findings)
    return figures, findings


def _runs(
    procs: dict[str, Proc],
    journals: dict[str, list[dict[str, Any]]],
    figures: Counter[str],
    findings: list[str],
) -> None:
    """Every run that was not killed ends with one summary whose outcome matches its exit."""
    for tag, proc in procs.items():
        figures["runs"] += 1
        points = [e for e in journals[tag] if e["what"] == "point"]
        if proc.hung:
            figures["unclear"] += 1
            findings.append(f"{tag} still running after the trial's timeout")
            continue
        if proc.killed:
            planned = proc.killed_by_us or any(e["action"] == "kill" for e in points)
            figures["kills"] += 1
            figures[f"kill@{points[0]['point'] if points else 'random'}"] += 1
            if not planned:
                figures["unclear"] += 1
                findings.append(f"{tag} died of SIGKILL nobody sent")
            continue
        summaries = proc.summaries()
        outcome = summaries[0].get("outcome") if len(summaries) == 1 else None
        figures[f"outcome_{outcome}"] += 1
        code = proc.code
        if code == -signal.SIGTERM and _finished_before_term(proc, summaries):
            code = 0  # SIGTERM came while the interpreter was exiting, after the run's end
        if outcome == "failed":
            figures[f"failed_{_failure_kind(str(summaries[0].get('error')))}"] += 1
        if outcome not in OUTCOMES or code not in OUTCOMES[outcome]:
            figures["unclear"] += 1
            findings.append(f"{tag}: exit {proc.code} with {len(summaries)} summaries ({outcome})")


def _failure_kind(error: str) -> str:
    """What a failed run ran into: `lock` is Firestore contention (§2: a run that loses the
    lease to contention is `skipped`, exit 0)."""
    lowered = error.lower()
    if "lock timeout" in lowered or "failed to commit transaction" in lowered:
        return "lock"
    for kind, marks in (("pubsub", ("pub/sub",)), ("firestore", ("firestore", "retryerror")),
                        ("rpc", ("eth_", "rpc", "endpoint", "node"))):  # fmt: skip
        if any(m in lowered for m in marks):
            return kind
    return "other"


def _finished_before_term(proc: Proc, summaries: list[dict[str, Any]]) -> bool:
    finished = summaries[0].get("time") if len(summaries) == 1 else None  # logged at the end
    if not finished or proc.term_sent is None:
        return False
    return datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp() < proc.term_sent


def _checkpoints(
    world: World, ev: dict[str, Any], figures: Counter[str], findings: list[str]
) -> None:
    """§7.1 and §7.3 at every checkpoint seen: never back, never past an event Pub/Sub had
    not accepted by then."""
    accepted: dict[str, float] = {}
    for c in ev["copies"]:
        accepted[c.event_id] = min(accepted.get(c.event_id, c.accepted_at), c.accepted_at)
    previous = None
    for seen_at, value in ev["checkpoints"]:
        if previous is not None and value < previous:
            figures["regressions"] += 1
            findings.append(f"checkpoint moved back from {previous} to {value}")
        previous = value
        ahead = [e for e in world.truth if world.block_of(e) < value
                 and accepted.get(e, float("inf")) > seen_at]  # fmt: skip
        if ahead:
            figures["checkpoint_ahead"] += 1
            findings.append(f"checkpoint {value} seen before {len(ahead)} events were accepted")


def _sigterm(
    world: World,
    tag: str,
    proc: Proc,
    copies: list[Copy],
    figures: Counter[str],
    findings: list[str],
) -> None:
    """§7.5: out within 10 s, exit 0, lease released, everything it published committed."""
    figures["sigterms"] += 1
    figures["sigterm_interrupted"] += any(s.get("interrupted") for s in proc.summaries())
    assert proc.ended is not None and proc.term_sent is not None
    took = proc.ended - proc.term_sent
    if took > 10:
        figures["sigterm_late"] += 1
        findings.append(f"{tag} exited {took:.1f} s after SIGTERM")
    doc = proc.doc_after or {}
    owner = (doc.get("lease") or {}).get("owner")
    mine = [s.get("run_id") for s in proc.summaries()]
    committed = int(doc.get("next_block") or world.start_block)
    uncommitted = [c for c in copies if c.run == tag and world.block_of(c.event_id) >= committed]
    late = proc.code == -signal.SIGTERM and _finished_before_term(proc, proc.summaries())
    if (proc.code != 0 and not late) or owner in mine or uncommitted:
        figures["sigterm_unclean"] += 1
        findings.append(
            f"{tag} after SIGTERM: exit {proc.code}, lease owner {owner}, "
            f"{len(uncommitted)} published above the checkpoint {committed}"
        )


def _delivery(world: World, copies: list[Copy], figures: Counter[str], findings: list[str]) -> None:
    received = {c.event_id for c in copies}
    lost = set(world.truth) - received
    stray = received - set(world.truth)
    figures["lost"] += len(lost)
    figures["stray"] += len(stray)
    figures["events"] += len(world.truth)
    figures["messages"] += len(copies)
    if lost:
        blocks = sorted(world.block_of(e) for e in lost)
        findings.append(f"{len(lost)} events never arrived, blocks {blocks[:10]}")
    for c in copies:
        if c.event_id in world.truth and json.loads(c.data) != world.truth[c.event_id]:
            figures["wrong_data"] += 1
            findings.append(f"{c.event_id} arrived with other data than the chain's")


def _leases(
    journals: dict[str, list[dict[str, Any]]], figures: Counter[str], findings: list[str]
) -> None:
    """No lease was granted over another run's valid lease, and no fence was granted twice."""
    fences: Counter[int] = Counter()
    for tag, journal in journals.items():
        for e in journal:
            if e["what"] != "acquired":
                continue
            fences[e["fence"]] += 1
            valid = e["seen_expires"] is not None and e["seen_expires"] > e["now"]
            if e["seen_owner"] not in (None, e["run_id"]) and valid:
                figures["lease_overlaps"] += 1
                findings.append(f"{tag} took the lease of {e['seen_owner']}, valid until "
                                f"{e['seen_expires']}, at {e['now']}")  # fmt: skip
    for fence, n in fences.items():
        if n > 1:
            figures["lease_overlaps"] += 1
            findings.append(f"fence {fence} granted {n} times")


def _final(world: World, ev: dict[str, Any], figures: Counter[str], findings: list[str]) -> None:
    """After recovery: checkpoint at the head, lease free, every event recorded once."""
    if not ev["recovered"]:
        figures["final_wrong"] += 1
        findings.append("the relayer did not catch up: " + "; ".join(ev["notes"]))
        return
    doc = ev["doc"]
    recorded = Counter(e["event_id"] for e in ev["recorded"])
    received = {c.event_id for c in ev["copies"]}
    problems = []
    if doc.get("next_block") != world.head + 1:
        problems.append(f"next_block {doc.get('next_block')}, head {world.head}")
    if (doc.get("lease") or {}).get("owner") is not None:
        problems.append("lease still held")
    if set(recorded) != set(world.truth) or max(recorded.values(), default=1) > 1:
        problems.append(f"{len(recorded)} recorded of {len(world.truth)}")
    if set(recorded) - received:
        problems.append(f"{len(set(recorded) - received)} recorded but never received")
    if problems:
        figures["final_wrong"] += 1
        findings.append("final state: " + ", ".join(problems))
