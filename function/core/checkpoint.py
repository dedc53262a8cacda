"""What a run holds and what it commits: its lease grant and a checkpoint to advance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from function.core.model import BlockRef
from function.core.planning import BlockRange


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
