"""Reorganisation decisions, pure: the common ancestor, the orphaned records, retractions.

The relayer keeps the hashes of the blocks it relayed (`recent_blocks`, and each block
record's id) because a node forgets orphaned blocks: these are all that is left to find
where the chains part and which published events to retract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from function.core.model import PUBLISHED, REMOVED, BlockRecord, BlockRef


def find_ancestor(recent: Sequence[BlockRef], canonical: Mapping[int, str]) -> BlockRef | None:
    """The newest recorded block that is still on the node's chain (None: deeper than known)."""
    for ref in sorted(recent, key=lambda r: r.number, reverse=True):
        if canonical.get(ref.number) == ref.hash:
            return ref
    return None


def orphaned(records: Sequence[BlockRecord], canonical: Mapping[int, str]) -> list[BlockRecord]:
    """Block records whose block is not the node's block at that height (or is past its head)."""
    return [r for r in records if canonical.get(r.number) != r.hash]


def retractions(records: Sequence[BlockRecord]) -> list[dict[str, Any]]:
    """The §3 payloads to publish again with `removed: true`, in chain order."""
    payloads = []
    for record in sorted(records, key=lambda r: r.number):
        for entry in record.entries:
            if entry.state == PUBLISHED:
                payload = json.loads(entry.data)
                payload["removed"] = True
                payloads.append(payload)
    return payloads


def marked_removed(record: BlockRecord) -> BlockRecord:
    """A block record with every published event marked as retracted."""
    entries = tuple(
        replace(e, state=REMOVED) if e.state == PUBLISHED else e for e in record.entries
    )
    return replace(record, entries=entries)
