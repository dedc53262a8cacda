"""Which backfill tasks relay which blocks: the registry in the `backfill-lease` document.

Each backfill task keeps its lease in its own task document, so the slices of one backfill
(disjoint by construction) run at once without contending for one document. Backfills of
different ranges may overlap, and two runs reading the same unrecorded blocks at once would
both publish them; so every acquisition of a task's lease also writes its claim into one
registry document, conditioned on the version read, after reading the lease of every other
task whose claimed range overlaps (`core.backfills.overlapping`): while one of them is held,
the acquisition is refused (the CLI waits). Since every acquisition writes the registry, two
overlapping ones deciding at once cannot both land. A claimant whose lease expired unreleased
is fenced off in the same batch (its lease released), so a run that stalled past its lease
writes nothing more (docs/CONTRACT.md §7.6) once another range took its blocks over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import firestore

from function.adapters.firestore import conditional
from function.adapters.firestore.leasedoc import lease_fields, lease_of
from function.core.backfills import Claim, claim_of, overlapping
from function.core.lease import released

REGISTRY = "backfill-lease"  # its `lease` field: the one lease every backfill took before


class Claims:
    """One task's claim on its range, taken with its lease."""

    def __init__(
        self, client: firestore.Client, tasks: firestore.CollectionReference, own: Claim
    ) -> None:
        self._client = client
        self._tasks = tasks
        self._own = own

    def put(self, batch: Any, run_id: str, now: datetime) -> bool:
        """Add this claim to `batch` (with the fencing of expired overlapping claimants);
        False while a run of an overlapping range holds its lease."""
        registry = conditional.read(self._tasks.document(REGISTRY), "the backfill registry")
        if lease_of(registry.fields).held_by_other(run_id, now):
            return False  # a backfill of an older version holds the one shared lease
        stored = dict(registry.doc.get("claims") or {})
        claims = [c for c in (claim_of(task) for task in stored) if c is not None]
        for other in overlapping(claims, self._own):
            version = conditional.read(self._tasks.document(other.task), "a backfill task")
            lease = lease_of(version.fields)
            if lease.held_by_other(run_id, now):
                return False
            if lease.owner is not None:  # expired, never released: that run is fenced off
                fields = {"lease": lease_fields(released(lease)), "updated_at": now}
                conditional.put(self._client, batch, version, fields)
            del stored[other.task]  # taken over: its blocks are this task's now
        stored[self._own.task] = {
            "from_block": self._own.blocks.start,
            "to_block": self._own.blocks.end,
            "run_id": run_id,
            "claimed_at": now,
        }
        conditional.put(self._client, batch, registry, {"claims": stored, "updated_at": now})
        return True


def progress(
    tasks: firestore.CollectionReference, now: datetime, timeout_s: float
) -> list[dict[str, Any]]:
    """Every backfill task of a relayer, in block order: its range, next block, whether it
    is done and whether a run holds its lease (`/status`, `relayer status`)."""
    found = []
    for snapshot in conditional.documents(tasks, timeout_s, once=True):
        claim = claim_of(snapshot.id)
        if claim is None:
            continue  # the registry
        fields = snapshot.to_dict() or {}
        next_block = int(fields.get("next_block") or claim.blocks.start)
        found.append(
            {
                "task": claim.task,
                "from_block": claim.blocks.start,
                "to_block": claim.blocks.end,
                "next_block": next_block,
                "done": next_block > claim.blocks.end,
                "running": lease_of(fields).held_by_other("", now),
                "events_published": int((fields.get("totals") or {}).get("events_published") or 0),
            }
        )
    return sorted(found, key=lambda t: (t["from_block"], t["to_block"]))
