"""The guard's decisions, pure: who holds the lease, and which events still need publishing.

The lease is a record in the relayer's document: the run that owns it, when it expires and
a fencing counter that grows with every acquisition. A run may publish only while its lease
is valid and may commit only while the counter is still the one it got: a run that stalled
past its lease finds the counter moved and stops without writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

PUBLISHED = "published"
REMOVED = "removed"
DEADLETTERED = "deadletter"
DONE = frozenset((PUBLISHED, DEADLETTERED))  # states that must never be sent again


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease record of a relayer document."""

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

    def as_doc(self) -> dict[str, Any]:
        return {"owner": self.owner, "expires_at": self.expires_at, "fence": self.fence}


def lease_of(doc: Mapping[str, Any] | None) -> Lease:
    """Read the lease out of a relayer document (absent: free, fence 0)."""
    raw = (doc or {}).get("lease") or {}
    return Lease(raw.get("owner"), raw.get("expires_at"), int(raw.get("fence") or 0))


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


class _Identified(Protocol):
    @property
    def event_id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


@dataclass(frozen=True, slots=True)
class Selection(Generic[T]):
    """Items of a chunk split by what the processed-event set already says of them."""

    to_publish: list[T]
    duplicates: list[T]


def select_unpublished(items: Iterable[T], processed: Mapping[str, str]) -> Selection[T]:
    """Replay protection: an event recorded as published (or dead-lettered) is never sent
    again; one recorded as removed by a reorganisation may come back."""
    fresh: list[T] = []
    seen: list[T] = []
    for item in items:
        (seen if processed.get(item.event_id) in DONE else fresh).append(item)
    return Selection(fresh, seen)
