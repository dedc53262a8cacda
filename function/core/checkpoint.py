"""What a run holds and what it commits: its lease grant and a checkpoint to advance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from function.core.model import BlockRef, Event
from function.core.planning import BlockRange, Density
from function.core.summary import RunSummary
from function.core.watch import ChildWrite


@dataclass(frozen=True)
class Grant:
    """A lease this run holds, with the state it read while taking it."""

    run_id: str
    fence: int
    expires_at: datetime
    next_block: int | None  # None: no checkpoint yet
    checkpoint_hash: str | None
    recent_blocks: tuple[BlockRef, ...]
    rpc_limits: dict[str, int] = field(default_factory=dict)  # eth_getLogs span per host
    # Blocks an operator chose to relay again although their records may have expired
    # (`relayer reset --replay-expired`): events without a record there are marked replay.
    replay: BlockRange | None = None
    # RELAYER_FACTORY: the children stored (`children.count`) and the block up to which
    # creations were looked for (`children.to_block`; None: never).
    children_count: int = 0
    children_to: int | None = None
    # What the last run's windows learnt of the contracts' density (`density`): the next
    # run's first window is sized by it.
    density: Density | None = None


@dataclass(frozen=True)
class Progress:
    """A checkpoint to commit: blocks before `next_block` are relayed."""

    next_block: int | None  # None: only count published events, the checkpoint stays
    block_hash: str | None  # hash of next_block - 1
    recent: tuple[BlockRef, ...]
    events_published: int
    events_retracted: int = 0
    events_deadlettered: int = 0
    rewind: bool = False  # back to the common ancestor after a reorganisation
    replay: BlockRange | None = None  # an operator's reset over blocks with expired records


@dataclass(frozen=True)
class Commit:
    """What one fenced commit writes; every commit checks the fence first."""

    progress: Progress | None = None  # a checkpoint, or counts alone
    lease_until: datetime | None = None  # the lease renewed (or, with a summary, held) to then
    summary: RunSummary | None = None  # the run's end: stored as `last_run`, lease released
    rpc_limits: dict[str, int] | None = None  # eth_getLogs spans learned, by host
    looked_at: datetime | None = None  # a successful look at the chain ended then
    # RELAYER_FACTORY: the children below the checkpoint, stored only if it moves
    children: ChildWrite | None = None
    density: Density | None = None  # what the windows learnt, for the next run's first


def combined(first: Progress | None, then: Progress | None) -> Progress | None:
    """Two parts' progress as one commit: the later checkpoint (the earlier one's when the
    later moves none), the recent blocks of both, the counts of both. Only for parts relayed
    one after the other (no rewind, no replay: those are committed on their own)."""
    if first is None:
        return then
    if then is None:
        return first
    if first.rewind or then.rewind or first.replay is not None or then.replay is not None:
        raise ValueError("a rewind or a replay is committed on its own")
    moved = then if then.next_block is not None else first
    recent = {r.number: r for r in (*first.recent, *then.recent)}
    return Progress(
        moved.next_block,
        moved.block_hash,
        tuple(recent[n] for n in sorted(recent)),
        first.events_published + then.events_published,
        first.events_retracted + then.events_retracted,
        first.events_deadlettered + then.events_deadlettered,
    )


def progress_of(
    done_to: int,
    committed_to: int,
    hashes: Mapping[int, str],
    events: Sequence[Event],
    published: int,
    dead: int = 0,
) -> Progress | None:
    """What a run may commit once blocks up to `done_to` are relayed. The checkpoint goes to
    the newest such block past the last commit (`committed_to`) whose hash came from the
    consistent view of the range (`hashes`): a hash read later could belong to a chain that
    replaced the blocks just published, and then the next run would never see the
    reorganisation. Blocks after it hold no event of that view: scanning them again costs
    nothing. Without such a block only the counts are committed (None: nothing at all)."""
    known = [n for n in hashes if committed_to < n <= done_to]
    if not known:
        if published or dead:
            return Progress(None, None, (), published, events_deadlettered=dead)
        return None
    at = max(known)
    recent = {
        e.block_number: BlockRef(e.block_number, e.block_hash)
        for e in events
        if e.block_number <= at
    }
    # Every hash of the view up to the checkpoint, events or not: a reorganisation of
    # blocks without events finds its common ancestor among them.
    recent.update((n, BlockRef(n, hashes[n])) for n in known if n <= at)
    return Progress(at + 1, hashes[at], tuple(recent.values()), published, events_deadlettered=dead)


def _ref(event: Event) -> BlockRef:
    return BlockRef(event.block_number, event.block_hash)
