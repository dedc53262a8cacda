"""The relayer's state in memory behind the `State` port, with `FirestoreState`'s rules.

Same document fields and the same pure decisions (`guard`, `merge_recent`, the adapter's own
grant and summary helpers): a lease with a fencing counter; record and commit check the fence
and raise `LeaseLostError` once another run took the lease; the checkpoint refuses to move
back except to rewind; a summary releases the lease, `lease_until` keeps it. Faults are the
real adapter's, as the run sees them after the adapter's own recovery:
- acquire: "contention" (another run's transaction won: None), "error" (StateError, nothing
  written), "lost" (applied, answer lost, read back: the grant), "lost_unread" (applied, and
  the read-back failed too: StateError while the lease is taken);
- commit: "error" (nothing written), "lost" (applied, answer lost, recovered by reading
  back: no error), "lost_unread" (applied, the read-back failed: StateError);
- record: "error" (nothing written), "lost" (applied, answer lost: StateError, the real
  write does not read back), "partial" (the first batch only, StateError);
- reads: "error".
`fencing=False` is the known defect of a store that accepts a fenced-out run's writes.
Every write is journaled (`writes`) with the lease it found, for the simulation's checks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import function.core.guard as guard
from function.adapters.firestore.blockstore import check_fence
from function.adapters.firestore.state import _finish_fields, _grant, _refs, _totals
from function.core.blockrecords import BlockRecord, base_id, range_bounds
from function.core.checkpoint import Grant, Progress
from function.core.guard import Lease
from function.core.model import BlockRef
from function.core.planning import BlockRange, merge_recent
from function.core.summary import SKIPPED, RunSummary
from function.errors import StateError


def _entries(fields: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(e) for e in fields.get("events", [])]


def _record(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy as a read or write of Firestore makes one (entries are flat dicts)."""
    return {**fields, "events": _entries(fields)}


@dataclass(frozen=True)
class Write:
    """One write that reached the store: who, under which fence, what lease it found."""

    kind: str  # acquire, record, commit
    run_id: str
    fence: int
    found: Lease
    applied: bool
    next_block: int | None = None
    block_hash: str | None = None
    rewind: bool = False


@dataclass
class FakeState:
    identity: dict[str, Any] = field(default_factory=dict)
    fencing: bool = True
    doc: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[tuple[str, str]] = field(default_factory=list)  # (method, fault), in order
    writes: list[Write] = field(default_factory=list)
    on_write: list[Callable[[Write], None]] = field(default_factory=list)
    exists: bool = False

    def _fault(self, method: str) -> str | None:
        for i, (name, fault) in enumerate(self.faults):
            if name == method:
                del self.faults[i]
                return fault
        return None

    def _read_fault(self, method: str) -> None:
        if self._fault(method) == "error":
            raise StateError(f"Firestore read of the processed-event set failed ({method})")

    @property
    def lease(self) -> Lease:
        return guard.lease_of(self.doc)

    def read(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.doc) if self.exists else None

    # -- lease ---------------------------------------------------------------------
    def acquire(self, run_id: str, now: datetime, lease_s: float) -> Grant | None:
        fault = self._fault("acquire")
        held = self.lease
        if held.held_by_other(run_id, now):
            return None
        if fault == "contention":
            return None
        if fault == "error":
            raise StateError("Firestore lease acquisition failed: ServiceUnavailable")
        lease = guard.acquire(held, run_id, now, lease_s)
        if lease is None:
            return None
        before = dict(self.doc)  # nested values are replaced, never changed in place
        self.doc.update({"updated_at": now, **self.identity, "lease": lease.as_doc()})
        self.exists = True
        self._journal(Write("acquire", run_id, lease.fence, self.lease, True))
        if fault == "lost_unread":
            raise StateError("Firestore lease acquisition failed: answer lost, read back failed")
        return _grant(run_id, lease, before)

    # -- the processed-event set ---------------------------------------------------
    def processed(self, blocks: BlockRange) -> dict[str, list[dict[str, Any]]]:
        self._read_fault("processed")
        return {i: _entries(f) for i, f in self._between(blocks.start, blocks.end)}

    def recorded_blocks(self, blocks: BlockRange) -> list[BlockRef]:
        self._read_fault("recorded_blocks")
        return [self._ref(i) for i, _ in self._between(blocks.start, blocks.end)]

    def recorded_below(self, number: int, limit: int) -> list[BlockRef]:
        self._read_fault("recorded_below")
        below = [i for i, f in sorted(self.blocks.items()) if int(f["block_number"]) < number]
        return [self._ref(i) for i in below[-limit:]] if limit > 0 else []

    def blocks_from(self, start: int) -> list[BlockRecord]:
        self._read_fault("blocks_from")
        lower, _ = range_bounds(start, start)
        return [(i, _record(f)) for i, f in sorted(self.blocks.items()) if i >= lower]

    def _between(self, start: int, end: int) -> list[tuple[str, dict[str, Any]]]:
        lower, upper = range_bounds(start, end)
        return [(i, f) for i, f in sorted(self.blocks.items()) if lower <= i < upper]

    @staticmethod
    def _ref(doc_id: str) -> BlockRef:
        number, _, block_hash = base_id(doc_id).partition("-")
        return BlockRef(int(number), block_hash)

    def _fence(self, grant: Grant) -> Lease:
        """The lease the write finds; LeaseLostError unless it is still the grant's."""
        found = self.lease
        if self.fencing:
            check_fence(found, grant.run_id, grant.fence)
        return found

    def _journal(self, write: Write) -> None:
        self.writes.append(write)
        for listener in self.on_write:
            listener(write)

    def record(self, grant: Grant, records: Sequence[BlockRecord]) -> None:
        fault = self._fault("record")
        if fault == "error":
            raise StateError("Firestore write of the processed-event set failed: Unavailable")
        found = self._fence(grant)
        written = records[:1] if fault == "partial" else records
        for doc_id, fields in written:
            self.blocks[doc_id] = _record(fields)
        self._journal(Write("record", grant.run_id, grant.fence, found, True))
        if fault in ("partial", "lost", "lost_unread"):  # the real write has no read-back
            raise StateError("Firestore write of the processed-event set failed: answer lost")

    # -- commits -------------------------------------------------------------------
    def commit(
        self,
        grant: Grant,
        now: datetime,
        *,
        progress: Progress | None = None,
        lease_until: datetime | None = None,
        summary: RunSummary | None = None,
        rpc_limits: dict[str, int] | None = None,
    ) -> None:
        fault = self._fault("commit")
        if fault == "error":
            raise StateError("Firestore checkpoint commit failed: Unavailable")
        doc = self.doc
        found = self._fence(grant)
        update: dict[str, Any] = {"updated_at": now, **self.identity}
        if doc.get("first_commit_at") is None:
            update["first_commit_at"] = now
        totals = _totals(doc)
        if progress is not None:
            totals["events_published"] += progress.events_published
            totals["events_retracted"] += progress.events_retracted
            totals["events_deadlettered"] += progress.events_deadlettered
        if progress is not None and progress.next_block is not None:
            stored = doc.get("next_block")
            if stored is not None and progress.next_block < int(stored) and not progress.rewind:
                raise StateError(
                    f"refusing to move the checkpoint back from {stored} to {progress.next_block}"
                )
            kept = [r for r in _refs(doc.get("recent_blocks")) if r.number < progress.next_block]
            recent = merge_recent(kept, progress.recent)
            if progress.replay is not None:
                update["replay"] = {"from": progress.replay.start, "to": progress.replay.end}
            update.update(
                next_block=progress.next_block,
                checkpoint_block_hash=progress.block_hash,
                recent_blocks=[{"number": r.number, "hash": r.hash} for r in recent],
            )
        renewed: Lease | None = None
        if rpc_limits is not None:
            update["rpc_limits"] = [{"host": h, "blocks": n} for h, n in rpc_limits.items()]
        if summary is not None:
            update.update(_finish_fields(doc, update, totals, summary))
            renewed = guard.released(self.lease)
        if lease_until is not None:
            renewed = Lease(grant.run_id, lease_until, grant.fence)
        if renewed is not None:
            update["lease"] = renewed.as_doc()
        update["totals"] = totals
        doc.update(update)
        self.exists = True
        self._journal(
            Write(
                "commit",
                grant.run_id,
                grant.fence,
                found,
                True,
                progress.next_block if progress else None,
                progress.block_hash if progress else None,
                bool(progress and progress.rewind),
            )
        )
        if fault == "lost_unread":
            raise StateError("Firestore checkpoint commit failed: answer lost, read back failed")

    def count_skipped(self, now: datetime) -> None:
        if self._fault("count_skipped") == "error":
            raise StateError("Firestore run counter update failed: Unavailable")
        totals = self.doc.setdefault("totals", {})
        totals["runs"] = int(totals.get("runs") or 0) + 1
        outcomes = totals.setdefault("outcomes", {})
        outcomes[SKIPPED] = int(outcomes.get(SKIPPED) or 0) + 1
        self.exists = True
