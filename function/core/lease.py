"""The lease's rules, pure: who holds it, who may take it, and the fencing counter.

The lease belongs to the relayer's state: the run that owns it, when it expires and a
fencing counter that grows with every acquisition. A run may publish only while its lease
is valid and may commit only while the counter is still the one it got: a run that stalled
past its lease finds the counter moved and stops without writing.
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

    def held_by_other(self, run_id: str, now: datetime) -> bool:
        return (
            self.owner is not None
            and self.owner != run_id
            and self.expires_at is not None
            and self.expires_at > now
        )


FREE = Lease(None, None, 0)  # never taken


def acquire(current: Lease, run_id: str, now: datetime, lease_s: float) -> Lease | None:
    """The new lease for `run_id`, or None while another run's lease is still valid."""
    if current.held_by_other(run_id, now):
        return None
    return Lease(run_id, now + timedelta(seconds=lease_s), current.fence + 1)


def still_ours(current: Lease, run_id: str, fence: int) -> bool:
    """True when nobody took the lease since we got it (expired but untaken is still ours)."""
    return current.owner == run_id and current.fence == fence


def released(current: Lease) -> Lease:
    """The lease after its owner is done: free, keeping the counter."""
    return Lease(None, None, current.fence)


def check_fence(current: Lease, run_id: str, fence: int) -> None:
    """Raise unless the lease is still the one this run was granted: a write of a run that
    lost its lease must not land."""
    if not still_ours(current, run_id, fence):
        raise LeaseLostError(
            f"lease lost to run {current.owner} (fence {current.fence}, ours {fence}): "
            f"this run stalled past RELAYER_LEASE_SECONDS; nothing more is written"
        )
