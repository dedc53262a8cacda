"""The lease's rules, pure: who holds it, who may take it, and the fencing counter.

The lease belongs to the relayer's state: the run that owns it, when it expires and a
fencing counter that grows with every acquisition; a run in follow mode (RELAYER_RUN_SECONDS)
also says when it took the lease and when its window ends, so that a run starting near that
end can wait for it instead of skipping (docs/CONTRACT.md §7.7). A run may publish only while
its lease is valid and may commit only while the counter is still the one it got: a run that
stalled past its lease finds the counter moved and stops without writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from function.errors import LeaseLostError


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a relayer's lease, until when, under which fence."""

    owner: str | None
    expires_at: datetime | None
    fence: int
    since: datetime | None = None  # when the owner took it
    follow_until: datetime | None = None  # a follower's planned end (None: one batch)

    def held_by_other(self, run_id: str, now: datetime) -> bool:
        return (
            self.owner is not None
            and self.owner != run_id
            and self.expires_at is not None
            and self.expires_at > now
        )


FREE = Lease(None, None, 0)  # never taken


def acquire(
    current: Lease,
    run_id: str,
    now: datetime,
    lease_s: float,
    follow_until: datetime | None = None,
) -> Lease | None:
    """The new lease for `run_id` (a follower's until `follow_until`), or None while another
    run's lease is still valid."""
    if current.held_by_other(run_id, now):
        return None
    return Lease(run_id, now + timedelta(seconds=lease_s), current.fence + 1, now, follow_until)


def handover_until(
    current: Lease, run_id: str, now: datetime, patience_s: float, grace_s: float
) -> datetime | None:
    """How long a run that found the lease held may wait for it (docs/CONTRACT.md §7.7):
    only for a follower whose window ends within `patience_s`, and then until that end plus
    `grace_s` (its last look and commit). None: skip, as a run always did. A follower that
    crashed does not release: the waiter gives up at that instant, and its lease expires as
    any other."""
    if not current.held_by_other(run_id, now) or current.follow_until is None:
        return None
    if current.follow_until > now + timedelta(seconds=patience_s):
        return None
    return current.follow_until + timedelta(seconds=grace_s)


def following(current: Lease, now: datetime) -> bool:
    """True while a run in follow mode holds the lease."""
    return (
        current.owner is not None
        and current.follow_until is not None
        and current.expires_at is not None
        and current.expires_at > now
    )


def still_ours(current: Lease, run_id: str, fence: int) -> bool:
    """True when nobody took the lease since we got it (expired but untaken is still ours)."""
    return current.owner == run_id and current.fence == fence


def released(current: Lease) -> Lease:
    """The lease after its owner is done: free, keeping the counter."""
    return Lease(None, None, current.fence)


def renewed(current: Lease, run_id: str, fence: int, until: datetime) -> Lease:
    """The owner's lease extended to `until`, keeping when it was taken and its window
    (callers have checked the fence: `current` is the owner's)."""
    return Lease(run_id, until, fence, current.since, current.follow_until)


def check_fence(current: Lease, run_id: str, fence: int) -> None:
    """Raise unless the lease is still the one this run was granted: a write of a run that
    lost its lease must not land."""
    if not still_ours(current, run_id, fence):
        raise LeaseLostError(
            f"lease lost to run {current.owner} (fence {current.fence}, ours {fence}): "
            f"this run stalled past RELAYER_LEASE_SECONDS; nothing more is written"
        )


def still_waiting_until(current: Lease, give_up: datetime, own_end: datetime | None) -> datetime:
    """How long a waiting follower (its window ending at `own_end`) keeps waiting for the
    holder it waits for: past `give_up` while that holder's lease is still valid, since a
    follower still renewing its lease is alive, only slow to end (a last look the node
    answers late), within the waiter's own window. A one-batch waiter (`own_end` None)
    keeps its `give_up`."""
    if own_end is None or current.expires_at is None:
        return give_up
    return max(give_up, min(current.expires_at, own_end))
