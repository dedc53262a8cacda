"""The verdict on one trial: the chain's truth against what a subscriber received, what
Firestore recorded, what /status said and what each run's journal says it did.

The truth is the world as the trial left it: the final canonical chain's logs (each to
arrive live, with exactly the payload written from what was sent) and, for a chain that
reorganised, the orphans (each published live must be retracted once:
retractions.py). A checkpoint may move back only to a fork, to rewind over it.
VIOLATIONS must all be 0; the other figures describe the trial (runs, kills, outcomes,
duplicates allowed by §7.4; see duplicates.py for how duplicates are judged).
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from typing import Any

from devstack.faults.duplicates import duplicates, takeovers
from devstack.faults.proc import Proc
from devstack.faults.retractions import records_match, retractions, stale_writes
from devstack.faults.sigterm import finished_before_term, sigterm
from devstack.faults.world import Copy, World

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
    "unretracted",
    "retracted_wrong",
    "stale_writes",
    "records_wrong",
    "dup_in_one_run",
    "sigterm_not_interrupted",
    "summaries_missing",
    "fleet_blocked",
    "secret_leaked",
)
SECRET = "secret-key"  # the API key the proxied trials put in the RPC URL's path
OUTCOMES = {"ok": (0,), "idle": (0,), "skipped": (0,), "failed": (1, 2)}


def judge(world: World, ev: dict[str, Any], interval: int) -> tuple[Counter[str], list[str]]:
    """Figures and findings (one line per violation) of a finished trial."""
    figures: Counter[str] = Counter()
    findings: list[str] = []
    procs: dict[str, Proc] = {p.tag: p for p in ev["procs"]}
    journals = {tag: p.journal() for tag, p in procs.items()}
    live = [c for c in ev["copies"] if not c.removed]
    removed = [c for c in ev["copies"] if c.removed]
    _runs(procs, journals, figures, findings)
    _delivery(world, live, figures, findings)
    strict = bool(ev.get("strict_duplicates"))
    duplicates(world, live, procs, journals, interval, figures, findings, strict)
    retractions(world, live, removed, procs, figures, findings)
    stale_writes(journals, takeovers(journals), figures, findings)
    records_match(ev["recorded"], live, figures, findings)
    _leases(journals, figures, findings)
    _checkpoints(world, {**ev, "copies": live}, figures, findings)
    for tag, proc in procs.items():
        if proc.term_sent is not None:
            sigterm(world, tag, proc, journals[tag], live, figures, findings)
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
        if SECRET in proc.out.read_text(errors="replace"):
            figures["secret_leaked"] += 1
            findings.append(f"{tag}'s output shows the RPC URL's key")
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
        if proc.cli:  # `relayer backfill`: 0 done (or stopped), 1 told to run it again
            figures[f"cli_exit_{proc.code}"] += 1
            if proc.code not in (0, 1):
                figures["unclear"] += 1
                findings.append(f"{tag}: the CLI exited {proc.code}")
            continue
        summaries = proc.summaries()
        outcome = summaries[0].get("outcome") if len(summaries) == 1 else None
        figures[f"outcome_{outcome}"] += 1
        code = proc.code
        if code == -signal.SIGTERM and finished_before_term(proc, summaries):
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


def _checkpoints(
    world: World, ev: dict[str, Any], figures: Counter[str], findings: list[str]
) -> None:
    """§7.1 and §7.3 at every checkpoint seen: never back, never past an event Pub/Sub had
    not accepted by then."""
    accepted: dict[str, float] = {}
    for c in ev["copies"]:
        accepted[c.event_id] = min(accepted.get(c.event_id, c.accepted_at), c.accepted_at)
    fork = min(world.forks, default=None)  # a rewind may go back to the first replaced block
    previous = None
    for seen_at, value in ev["checkpoints"]:
        if previous is not None and value < previous and (fork is None or value < fork):
            figures["regressions"] += 1
            findings.append(f"checkpoint moved back from {previous} to {value}")
        previous = value
        before_reorg = world.reorged_at is not None and seen_at < world.reorged_at
        ahead = [e for e in world.truth if world.block_of(e) < value
                 and not (before_reorg and fork is not None and world.block_of(e) >= fork)
                 and accepted.get(e, float("inf")) > seen_at]  # fmt: skip
        if ahead:
            figures["checkpoint_ahead"] += 1
            findings.append(f"checkpoint {value} seen before {len(ahead)} events were accepted")


def _delivery(world: World, copies: list[Copy], figures: Counter[str], findings: list[str]) -> None:
    received = {c.event_id for c in copies}
    lost = set(world.truth) - received
    stray = received - set(world.known)
    figures["lost"] += len(lost)
    figures["stray"] += len(stray)
    figures["events"] += len(world.truth)
    figures["messages"] += len(copies)
    if lost:
        blocks = sorted(world.block_of(e) for e in lost)
        findings.append(f"{len(lost)} events never arrived, blocks {blocks[:10]}")
    known = world.known
    for c in copies:
        want = known.get(c.event_id)
        if want is not None and (got := json.loads(c.data)) != want:
            figures["wrong_data"] += 1
            findings.append(f"{c.event_id} ({want['event']}) arrived with other data than "
                            f"the chain's: {_differs(got, want)}")  # fmt: skip


def _differs(got: dict[str, Any], want: dict[str, Any]) -> str:
    """Which fields differ, and how, briefly (a 600 kB argument is not printed whole)."""
    keys = sorted(k for k in {*got, *want} if got.get(k) != want.get(k))
    if keys == ["args"]:
        args_got, args_want = got.get("args") or {}, want.get("args") or {}
        keys = [f"args.{k}" for k in sorted({*args_got, *args_want})
                if args_got.get(k) != args_want.get(k)]  # fmt: skip
        pairs = [(k, args_got.get(k[5:]), args_want.get(k[5:])) for k in keys]
    else:
        pairs = [(k, got.get(k), want.get(k)) for k in keys]
    return ", ".join(f"{k}: {str(g)[:40]!r} (len {len(str(g))}) not {str(w)[:40]!r} "
                     f"(len {len(str(w))})" for k, g, w in pairs[:3])  # fmt: skip


def _leases(
    journals: dict[str, list[dict[str, Any]]], figures: Counter[str], findings: list[str]
) -> None:
    """No lease was granted over another run's valid lease, and no fence was granted twice."""
    fences: Counter[tuple[str, int]] = Counter()
    for tag, journal in journals.items():
        for e in journal:
            if e["what"] != "acquired":
                continue
            fences[(e.get("lease", ""), e["fence"])] += 1
            valid = e["seen_expires"] is not None and e["seen_expires"] > e["now"]
            if e["seen_owner"] not in (None, e["run_id"]) and valid:
                figures["lease_overlaps"] += 1
                findings.append(f"{tag} took the lease of {e['seen_owner']}, valid until "
                                f"{e['seen_expires']}, at {e['now']}")  # fmt: skip
    for (lease, fence), n in fences.items():
        if n > 1:
            figures["lease_overlaps"] += 1
            findings.append(f"fence {fence} of {lease} granted {n} times")


def _final(world: World, ev: dict[str, Any], figures: Counter[str], findings: list[str]) -> None:
    """After recovery: checkpoint at the head, lease free, every event recorded once."""
    if not ev["recovered"]:
        figures["final_wrong"] += 1
        findings.append("the relayer did not catch up: " + "; ".join(ev["notes"]))
        return
    doc = ev["doc"]
    states = [(str(e["event_id"]), e.get("state", "published")) for e in ev["recorded"]]
    recorded = Counter(i for i, _ in states)
    published = {i for i, state in states if state == "published"}
    received = {c.event_id for c in ev["copies"]}
    problems = []
    if doc.get("next_block") != world.head + 1:
        problems.append(f"next_block {doc.get('next_block')}, head {world.head}")
    if (doc.get("lease") or {}).get("owner") is not None:
        problems.append("lease still held")
    if published != set(world.truth) or max(recorded.values(), default=1) > 1:
        problems.append(f"{len(published)} recorded published of {len(world.truth)}")
    if set(recorded) - set(world.known):
        problems.append(f"{len(set(recorded) - set(world.known))} records of no chain's event")
    if set(recorded) - received:
        problems.append(f"{len(set(recorded) - received)} recorded but never received")
    if problems:
        figures["final_wrong"] += 1
        findings.append("final state: " + ", ".join(problems))
