"""The lease as the relayer document stores it: `lease: {owner, expires_at, fence, since,
follow_until}` (the last two absent in documents of older versions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from function.core.lease import Lease


def lease_of(doc: Mapping[str, Any] | None) -> Lease:
    """Read the lease out of a relayer document (absent: free, fence 0)."""
    raw = (doc or {}).get("lease") or {}
    return Lease(
        raw.get("owner"),
        raw.get("expires_at"),
        int(raw.get("fence") or 0),
        raw.get("since"),
        raw.get("follow_until"),
    )


def lease_fields(lease: Lease) -> dict[str, Any]:
    return {
        "owner": lease.owner,
        "expires_at": lease.expires_at,
        "fence": lease.fence,
        "since": lease.since,
        "follow_until": lease.follow_until,
    }
