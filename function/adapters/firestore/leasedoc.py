"""The lease as the relayer document stores it: `lease: {owner, expires_at, fence}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from function.core.lease import Lease


def lease_of(doc: Mapping[str, Any] | None) -> Lease:
    """Read the lease out of a relayer document (absent: free, fence 0)."""
    raw = (doc or {}).get("lease") or {}
    return Lease(raw.get("owner"), raw.get("expires_at"), int(raw.get("fence") or 0))


def lease_fields(lease: Lease) -> dict[str, Any]:
    return {"owner": lease.owner, "expires_at": lease.expires_at, "fence": lease.fence}
