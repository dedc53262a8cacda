"""The commit decision, pure: what one fenced commit does to the checkpoint, the counters and
the lease. The state adapter reads the stored values, asks here, and writes the answer in the
same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from function.core.checkpoint import Grant, Progress
from function.core.lease import Lease, released, renewed
from function.core.model import BlockRef
from function.core.planning import merge_recent
from function.errors import StateError


@dataclass(frozen=True)
class Totals:
    """A relayer's counters since it first ran."""

    events_published: int = 0
    events_retracted: int = 0
    events_deadlettered: int = 0
    runs: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)

    def plus(self, progress: Progress) -> Totals:
        return replace(
            self,
            events_published=self.events_published + progress.events_published,
            events_retracted=self.events_retracted + progress.events_retracted,
            events_deadlettered=self.events_deadlettered + progress.events_deadlettered,
        )

    def counting(self, outcome: str) -> Totals:
        """One more run, ended with `outcome`."""
        outcomes = {**self.outcomes, outcome: self.outcomes.get(outcome, 0) + 1}
        return replace(self, runs=self.runs + 1, outcomes=outcomes)


@dataclass(frozen=True)
class Checkpoint:
    """Blocks before `next_block` are relayed; `block_hash` is that of `next_block - 1`."""

    next_block: int
    block_hash: str | None
    recent: tuple[BlockRef, ...]  # the newest relayed blocks, for reorganisation checks


def advance(
    stored_next: int | None, stored_recent: Sequence[BlockRef], progress: Progress
) -> Checkpoint | None:
    """The checkpoint after `progress` (None: it only counts events). It never goes back but
    by a rewind: a run that would move it back has lost track of what was relayed."""
    if progress.next_block is None:
        return None
    if stored_next is not None and progress.next_block < stored_next and not progress.rewind:
        raise StateError(
            f"refusing to move the checkpoint back from {stored_next} to {progress.next_block}"
        )
    kept = [r for r in stored_recent if r.number < progress.next_block]
    recent = tuple(merge_recent(kept, progress.recent))
    return Checkpoint(progress.next_block, progress.block_hash, recent)


def lease_after(
    current: Lease, grant: Grant, *, finished: bool, until: datetime | None
) -> Lease | None:
    """The lease a commit writes: renewed to `until`, released when the run `finished`
    (held on to `until` when both: requests it gave up on may still be accepted, but the
    run follows no more), or left as it is (None)."""
    if until is not None and finished:
        return Lease(grant.run_id, until, grant.fence)
    if until is not None:
        return renewed(current, grant.run_id, grant.fence, until)
    return released(current) if finished else None
