"""A backfill split over the tasks of a Cloud Run Job execution, pure.

Slice i of N is contiguous, and the N slices cover the range exactly once, so each task relays
its own blocks under its own lease and checkpoint (a task document named by its range). Two
backfills of different ranges may overlap: each task's claim on its range is kept in one
registry, and a task whose range overlaps another task's that is still running waits for it
(`overlapping`), since two runs reading the same unrecorded blocks at once would both publish
them. The slices of one backfill never overlap, so they run at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from function.core.messages import Message
from function.core.planning import BlockRange

PREFIX = "backfill-"


@dataclass(frozen=True, slots=True)
class Claim:
    """A backfill task and the blocks it relays."""

    task: str
    blocks: BlockRange


def slice_of(blocks: BlockRange, index: int, count: int) -> BlockRange | None:
    """Task `index` of `count`'s blocks: the first `len % count` slices one block longer;
    None when there are more tasks than blocks and this one has none."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"task {index} of {count} is not a task of the execution")
    size, extra = divmod(len(blocks), count)
    start = blocks.start + index * size + min(index, extra)
    length = size + (1 if index < extra else 0)
    return BlockRange(start, start + length - 1) if length else None


def task_of(blocks: BlockRange) -> str:
    """The task document of a backfill's range: the same range resumes the same task."""
    return f"{PREFIX}{blocks.start}-{blocks.end}"


def claim_of(task: str) -> Claim | None:
    """The range a task document's name says, or None for a name that is no range."""
    parts = task.removeprefix(PREFIX).split("-") if task.startswith(PREFIX) else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    start, end = int(parts[0]), int(parts[1])
    return Claim(task, BlockRange(start, end)) if start <= end else None


def overlapping(claims: Iterable[Claim], own: Claim) -> list[Claim]:
    """The other tasks whose blocks meet this one's: while one runs, this one waits."""
    return [
        c
        for c in claims
        if c.task != own.task
        and max(c.blocks.start, own.blocks.start) <= min(c.blocks.end, own.blocks.end)
    ]


def as_backfill(message: Message) -> Message:
    """A backfill's message (docs/CONTRACT.md §3): `backfill="true"`, no ordering key; its
    slices run at once, so no order holds across them anyway."""
    attributes = {**message.attributes, "backfill": "true"}
    return dataclasses.replace(message, attributes=attributes, ordering_key="")
