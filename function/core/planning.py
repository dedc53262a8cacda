"""Block arithmetic of a run, kept pure: which blocks to scan and where to commit."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby

from function.core.model import BlockRef

RECENT_BLOCKS_KEPT = 128


@dataclass(frozen=True, slots=True)
class BlockRange:
    """Inclusive range of block numbers."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"empty range {self.start}..{self.end}")

    def __len__(self) -> int:
        return self.end - self.start + 1

    def __contains__(self, block: object) -> bool:
        return isinstance(block, int) and self.start <= block <= self.end


def safe_tip(head: int, confirmations: int) -> int:
    """The newest block a run may relay: `confirmations` behind the head."""
    return head - confirmations


def plan_range(next_block: int, tip: int, batch_size: int) -> BlockRange | None:
    """This run's blocks: from the checkpoint, at most `batch_size`, never past `tip`."""
    end = min(next_block + batch_size - 1, tip)
    return BlockRange(next_block, end) if end >= next_block else None


def split(blocks: BlockRange, size: int) -> Iterator[BlockRange]:
    """Consecutive sub-ranges of at most `size` blocks."""
    start = blocks.start
    while start <= blocks.end:
        end = min(start + size - 1, blocks.end)
        yield BlockRange(start, end)
        start = end + 1


def merge_recent(
    recent: Iterable[BlockRef], added: Iterable[BlockRef], keep: int = RECENT_BLOCKS_KEPT
) -> list[BlockRef]:
    """The newest `keep` relayed blocks by number, newer hashes replacing older ones."""
    by_number = {b.number: b for b in recent}
    by_number.update((b.number, b) for b in added)
    return [by_number[n] for n in sorted(by_number)[-keep:]]


def cut_by_events(blocks: BlockRange, event_blocks: Sequence[int], limit: int) -> list[BlockRange]:
    """Split a chunk after blocks with events so that each part carries at most `limit`
    events (a block with more stays whole). Committing more often than every
    RELAYER_CHECKPOINT_INTERVAL blocks bounds a run's memory and what a crash may repeat;
    each part but the last ends at a block with events, whose hash the run already has."""
    parts: list[BlockRange] = []
    start, count, last = blocks.start, 0, blocks.start
    for number, group in groupby(event_blocks):
        size = len(list(group))
        if count and count + size > limit:
            parts.append(BlockRange(start, last))
            start, count = last + 1, 0
        count += size
        last = number
    parts.append(BlockRange(start, blocks.end))
    return parts


WINDOW_EVENTS = 5_000  # about the most events one window of a range holds (memory)
FIRST_WINDOW_BLOCKS = 5  # a range's first window, before its density is known
GROWTH = 4  # the most a window grows over one with events (a burst after a quiet spell)
EMPTY_GROWTH = 16  # how much wider the window after one without events is


@dataclass(frozen=True, slots=True)
class Density:
    """What the windows read up to block `end` showed of the relayed contracts: the blocks
    and events of the last window, or of the whole stretch without events that ends there
    (windows without events in a row count as one, across runs too). Kept with the
    checkpoint, so that the next run's first window is the one that would have come next
    had this run gone on; `watched` (`watch_key`) says which logs were read."""

    end: int
    blocks: int
    events: int
    watched: str

    @property
    def last(self) -> tuple[int, int]:
        return self.blocks, self.events


def watch_key(*parts: object) -> str:
    """A short stable name for what a run reads (contracts, factory, topics): a density
    learnt reading other logs says nothing of these (a contract added to a quiet relayer
    may be busy)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def known_density(density: Density | None, start: int, watched: str) -> tuple[int, int] | None:
    """The (blocks, events) a range starting at `start` may size its first window by: the
    density remembered, if it was learnt right below `start` reading the same logs. After
    anything else (a reset or a rewind moved the checkpoint, the configuration changed, a
    run stopped inside a window) the density is unknown again."""
    if density is None or density.end != start - 1 or density.watched != watched:
        return None
    return density.last


def density_after(
    density: Density | None, window: BlockRange, events: int, watched: str
) -> Density:
    """The density once `window` was read and held `events`: a window without events right
    after a stretch without events lengthens it."""
    known = known_density(density, window.start, watched)
    if events == 0 and known is not None and known[1] == 0:
        return Density(window.end, known[0] + len(window), 0, watched)
    return Density(window.end, len(window), events, watched)


def next_window(left: int, last: tuple[int, int] | None) -> int:
    """How many of the `left` blocks of a range the next window reads at once: a run holds
    one window's events, not the batch's (RELAYER_BATCH_SIZE of a busy contract would be
    millions). `last`: the previous window's (blocks, events), or the stretch without events
    before it (`Density`), from this run or the one before. Sized so that a window of the
    same density holds about WINDOW_EVENTS, growing at most GROWTH times (a contract turning
    busy holds at most that many times more); after a stretch without events it is
    EMPTY_GROWTH times that stretch, so an empty scan stays a few wide reads, and one read
    once a quiet contract's history is known (a contract turning busy after a quiet spell
    holds at most the events of EMPTY_GROWTH times that spell's blocks, as within a run)."""
    if last is None:
        return min(left, FIRST_WINDOW_BLOCKS)
    blocks, events = last
    growth = EMPTY_GROWTH if events == 0 else min(GROWTH, WINDOW_EVENTS / events)
    return max(1, min(left, int(blocks * growth)))


@dataclass(frozen=True, slots=True)
class Intervals:
    """A range's checkpoint intervals (RELAYER_CHECKPOINT_INTERVAL blocks each, from the
    range's start), by arithmetic: a batch of a million blocks has ten thousand of them, and
    a window without events needs none of them as objects (the empty-block scan)."""

    origin: int  # the range's first block
    size: int

    def index(self, block: int) -> int:
        """Which interval of the range holds `block`."""
        return (block - self.origin) // self.size

    def piece_end(self, block: int, window: BlockRange) -> int:
        """The last block of the piece of `window` that holds `block`: its interval's end,
        or the window's when that comes first."""
        return min(self.origin + (self.index(block) + 1) * self.size - 1, window.end)

    def pieces(self, window: BlockRange) -> list[BlockRange]:
        """The intervals inside `window`, cut by its ends: an interval cut by a window's end
        commits at that end too (more often than the interval: allowed)."""
        out = []
        start = window.start
        while start <= window.end:
            end = self.piece_end(start, window)
            out.append(BlockRange(start, end))
            start = end + 1
        return out
