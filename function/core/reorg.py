"""Reorganisation decisions, pure: the common ancestor, the orphaned records, retractions.

The relayer keeps the hashes of the blocks it relayed (`recent_blocks`, and each block
record's id) because a node forgets orphaned blocks: these are all that is left to find
where the chains part and which published events to retract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from function.core.model import PUBLISHED, REMOVED, BlockRef

BlockDoc = tuple[str, dict[str, Any]]


def find_ancestor(recent: Sequence[BlockRef], canonical: Mapping[int, str]) -> BlockRef | None:
    """The newest recorded block that is still on the node's chain (None: deeper than known)."""
    for ref in sorted(recent, key=lambda r: r.number, reverse=True):
        if canonical.get(ref.number) == ref.hash:
            return ref
    return None


def orphaned(docs: Sequence[BlockDoc], canonical: Mapping[int, str]) -> list[BlockDoc]:
    """Block records whose block is not the node's block at that height (or is past its head)."""
    return [(i, d) for i, d in docs if canonical.get(int(d["block_number"])) != d["block_hash"]]


def retractions(docs: Sequence[BlockDoc]) -> list[dict[str, Any]]:
    """The §3 payloads to publish again with `removed: true`, in chain order."""
    payloads = []
    for _, fields in sorted(docs, key=lambda d: int(d[1]["block_number"])):
        for entry in fields.get("events", []):
            if entry.get("state") == PUBLISHED:
                payload = json.loads(entry["data"])
                payload["removed"] = True
                payloads.append(payload)
    return payloads


def marked_removed(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A block record with every published event marked as retracted."""
    events = [
        {**e, "state": REMOVED} if e.get("state") == PUBLISHED else dict(e)
        for e in fields.get("events", [])
    ]
    return {**fields, "events": events}
