"""The relayer's state in memory behind the `State` and `Records` ports, with the rules of
`FirestoreState` and `BlockStore`.

The same pure decisions as the real adapter (`core.lease`, `core.commit`): a lease with a
fencing counter; writes check the fence and raise `LeaseLostError` once another run took the
lease; the checkpoint refuses to move back except to rewind; a summary releases the lease,
`lease_until` keeps it. Faults are the real adapter's, as the run sees them after the
adapter's own recovery:
- acquire: "contention" (another run's conditional write won: None), "error" (StateError, nothing
  written), "lost" (applied, answer lost, read back: the grant), "lost_unread" (applied, and
  the read-back failed too: StateError while the lease is taken);
- commit: "error" (nothing written), "lost" (applied, answer lost, recovered by reading
  back: no error), "lost_unread" (applied, the read-back failed: StateError);
- write: "error" (nothing written), "lost" (applied, answer lost: StateError, the real
  write does not read back), "partial" (the first batch only, StateError);
- reads (the lease's too): "error".
`fencing=False` is the known defect of a store that accepts a fenced-out run's writes.
Every write is journaled (`writes`) with the lease it found, for the simulation's checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from function.core.checkpoint import Commit, Grant
from function.core.commit import Totals, advance, lease_after
from function.core.lease import FREE, Lease, acquire, check_fence
from function.core.model import BlockRecord, BlockRef
from function.core.planning import BlockRange, Density
from function.core.summary import SKIPPED, RunSummary
from function.core.watch import Child
from function.errors import StateError


@dataclass(frozen=True)
class Write:
    """One write that reached the store: who, under which fence, what lease it found."""

    kind: str  # acquire, write (records), commit
    run_id: str
    fence: int
    found: Lease
    applied: bool
    next_block: int | None = None
    block_hash: str | None = None
    rewind: bool = False
    looked_at: datetime | None = None  # a look the commit records (`last_look_at`)


@dataclass
class FakeState:
    fencing: bool = True
    lease: Lease = FREE
    next_block: int | None = None
    checkpoint_hash: str | None = None
    recent: tuple[BlockRef, ...] = ()
    rpc_limits: dict[str, int] = field(default_factory=dict)
    replay: BlockRange | None = None
    first_commit_at: datetime | None = None
    totals: Totals = field(default_factory=Totals)
    last_run: RunSummary | None = None
    last_look_at: datetime | None = None
    blocks: dict[BlockRef, BlockRecord] = field(default_factory=dict)
    children_stored: tuple[Child, ...] = ()  # RELAYER_FACTORY: stored with the checkpoint
    children_to: int | None = None
    density: Density | None = None  # what the last run's windows learnt (`density`)
    faults: list[tuple[str, str]] = field(default_factory=list)  # (method, fault), in order
    writes: list[Write] = field(default_factory=list)
    on_write: list[Callable[[Write], None]] = field(default_factory=list)

    def _fault(self, method: str) -> str | None:
        for i, (name, fault) in enumerate(self.faults):
            if name == method:
                del self.faults[i]
                return fault
        return None

    def _read_fault(self, method: str) -> None:
        if self._fault(method) == "error":
            what = "the lease" if method == "read_lease" else "the processed-event set"
            raise StateError(f"Firestore read of {what} failed ({method})")

    # -- State: lease, checkpoint, counters -----------------------------------------
    def read_lease(self) -> Lease:
        self._read_fault("read_lease")
        return self.lease

    def acquire(
        self, run_id: str, now: datetime, lease_s: float, follow_until: datetime | None = None
    ) -> Grant | None:
        fault = self._fault("acquire")
        if self.lease.held_by_other(run_id, now) or fault == "contention":
            return None
        if fault == "error":
            raise StateError("Firestore lease acquisition failed: ServiceUnavailable")
        lease = acquire(self.lease, run_id, now, lease_s, follow_until)
        if lease is None:
            return None
        self.lease = lease
        self._journal(Write("acquire", run_id, lease.fence, lease, True))
        if fault == "lost_unread":
            raise StateError("Firestore lease acquisition failed: answer lost, read back failed")
        assert lease.expires_at is not None
        return Grant(
            run_id,
            lease.fence,
            lease.expires_at,
            self.next_block,
            self.checkpoint_hash,
            self.recent,
            dict(self.rpc_limits),
            self.replay,
            len(self.children_stored),
            self.children_to,
            self.density,
        )

    def children(self, grant: Grant) -> tuple[list[Child], int | None]:
        self._read_fault("children")
        return list(self.children_stored), self.children_to

    def commit(self, grant: Grant, now: datetime, change: Commit) -> None:
        fault = self._fault("commit")
        if fault == "error":
            raise StateError("Firestore checkpoint commit failed: Unavailable")
        found = self._fence(grant)
        progress, totals = change.progress, self.totals
        moved = None
        if progress is not None:  # decided whole before anything changes, as in a transaction
            totals = totals.plus(progress)
            moved = advance(self.next_block, self.recent, progress)
        if change.summary is not None:
            totals = totals.counting(change.summary.outcome)
        renewed = lease_after(
            self.lease, grant, finished=change.summary is not None, until=change.lease_until
        )
        if self.first_commit_at is None:
            self.first_commit_at = now
        if moved is not None:
            self.next_block, self.checkpoint_hash, self.recent = (
                moved.next_block,
                moved.block_hash,
                moved.recent,
            )
            if progress is not None and progress.replay is not None:
                self.replay = progress.replay
            written = change.children
            if written is not None and written.to_block == moved.next_block:
                self.children_stored = tuple(written.children)
                self.children_to = written.to_block
        scan = change.children  # a look below the checkpoint: never past it
        below = scan is not None and (self.next_block is None or scan.to_block <= self.next_block)
        if scan is not None and scan.scan and below:
            self.children_stored = tuple(scan.children)
            self.children_to = scan.to_block
        if change.looked_at is not None:
            self.last_look_at = change.looked_at
        if change.rpc_limits is not None:
            self.rpc_limits = dict(change.rpc_limits)
        if change.density is not None:
            self.density = change.density
        if change.summary is not None:
            self.last_run = change.summary
        if renewed is not None:
            self.lease = renewed
        self.totals = totals
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
                change.looked_at,
            )
        )
        if fault == "lost_unread":
            raise StateError("Firestore checkpoint commit failed: answer lost, read back failed")

    def count_skipped(self, now: datetime) -> None:
        if self._fault("count_skipped") == "error":
            raise StateError("Firestore run counter update failed: Unavailable")
        self.totals = self.totals.counting(SKIPPED)

    # -- Records: the processed-event set -------------------------------------------
    def read(self, start: int, end: int | None = None) -> list[BlockRecord]:
        self._read_fault("read")
        return [r for r in self._sorted() if r.number >= start and (end is None or r.number <= end)]

    def refs(self, blocks: BlockRange) -> list[BlockRef]:
        self._read_fault("refs")
        return [r.ref for r in self._sorted() if blocks.start <= r.number <= blocks.end]

    def refs_below(self, number: int, limit: int) -> list[BlockRef]:
        self._read_fault("refs_below")
        below = [r.ref for r in self._sorted() if r.number < number]
        return below[-limit:] if limit > 0 else []

    def write(self, grant: Grant, records: Sequence[BlockRecord]) -> None:
        fault = self._fault("write")
        if fault == "error":
            raise StateError("Firestore write of the processed-event set failed: Unavailable")
        found = self._fence(grant)
        for record in records[:1] if fault == "partial" else records:
            self.blocks[record.ref] = record  # frozen: nothing the run keeps can change it
        self._journal(Write("write", grant.run_id, grant.fence, found, True))
        if fault in ("partial", "lost", "lost_unread"):  # the real write has no read-back
            raise StateError("Firestore write of the processed-event set failed: answer lost")

    def _sorted(self) -> list[BlockRecord]:
        # the real store's order: by document id, `{number:012d}-{hash}`
        return sorted(self.blocks.values(), key=lambda r: (r.number, r.hash))

    def _fence(self, grant: Grant) -> Lease:
        """The lease the write finds; LeaseLostError unless it is still the grant's."""
        if self.fencing:
            check_fence(self.lease, grant.run_id, grant.fence)
        return self.lease

    def _journal(self, write: Write) -> None:
        self.writes.append(write)
        for listener in self.on_write:
            listener(write)
