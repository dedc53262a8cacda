"""The verdict on a run stopped by SIGTERM (CONTRACT §7.5): out within 10 s, exit 0, its
summary `interrupted` when it was stopped mid-work, what it published committed, and its
lease released, or held while a publish request it gave up on may still be accepted.
"""

from __future__ import annotations

import signal
from collections import Counter
from datetime import datetime
from typing import Any

from devstack.faults.proc import Proc
from devstack.faults.world import Copy, World


def finished_before_term(proc: Proc, summaries: list[dict[str, Any]]) -> bool:
    """The run's summary says it finished before the SIGTERM was sent."""
    finished = summaries[0].get("time") if len(summaries) == 1 else None  # logged at the end
    if not finished or proc.term_sent is None:
        return False
    return datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp() < proc.term_sent


def sigterm(
    world: World,
    tag: str,
    proc: Proc,
    journal: list[dict[str, Any]],
    copies: list[Copy],
    figures: Counter[str],
    findings: list[str],
) -> None:
    """§7.5: out within 10 s, exit 0 (`interrupted` when it was stopped mid-work), what it
    published committed, and the lease released, or held while a publish request it gave up
    on may still be accepted (then until after every copy of it Pub/Sub took)."""
    figures["sigterms"] += 1
    interrupted = any(s.get("interrupted") for s in proc.summaries())
    figures["sigterm_interrupted"] += interrupted
    assert proc.ended is not None and proc.term_sent is not None
    took = proc.ended - proc.term_sent
    if took > 10:
        figures["sigterm_late"] += 1
        findings.append(f"{tag} exited {took:.1f} s after SIGTERM")
    if proc.expect_interrupted and not interrupted:
        figures["sigterm_not_interrupted"] += 1
        findings.append(f"{tag}: stopped mid-work by SIGTERM, its summary says not interrupted")
    doc = proc.doc_after or {}
    lease = doc.get("lease") or {}
    mine = [s.get("run_id") for s in proc.summaries()]
    committed = int(doc.get("next_block") or world.start_block)
    held = lease.get("owner") in mine and lease.get("owner") is not None
    in_flight = _unanswered(journal) > 0
    until = lease["expires_at"].timestamp() if held and lease.get("expires_at") else proc.ended
    problems = []
    late = proc.code == -signal.SIGTERM and finished_before_term(proc, proc.summaries())
    if proc.code != 0 and not late:
        problems.append(f"exit {proc.code}")
    if held and not in_flight:
        problems.append("lease kept with no publish request in flight")
    for c in copies:
        if c.run != tag or world.block_of(c.event_id) < committed:
            continue
        if c.accepted_at <= proc.ended and not held:  # held: a request it gave up on
            problems.append(f"{c.event_id} accepted before the exit, above the checkpoint")
        elif c.accepted_at > until:
            problems.append(f"{c.event_id} accepted after the lease was let go")
    if problems:
        figures["sigterm_unclean"] += 1
        findings.append(f"{tag} after SIGTERM (checkpoint {committed}, lease owner "
                        f"{lease.get('owner')}): " + "; ".join(problems[:4]))  # fmt: skip


def _unanswered(journal: list[dict[str, Any]]) -> int:
    """Publish requests handed to Pub/Sub whose answer the run never saw."""
    handed = sum(1 for e in journal if e["what"] == "handed")
    return handed - sum(1 for e in journal if e["what"] == "answered" and e.get("ok"))
