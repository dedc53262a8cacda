"""Review 17b (29dba94, `planning.Intervals`), hostile: the arithmetic against the code it
replaced, over the shapes the brief names. Before 29dba94 a run materialised its range's
checkpoint intervals (`split(range, RELAYER_CHECKPOINT_INTERVAL)`), cut each window into
pieces of them (`pieces(window, chunks)`, kept here verbatim as `old_pieces`), and `fetch`'s
commit points were `{c.end for c in pieces if any_in(numbers, c)} | {window.end}`; the
settle rule of `_relay_chunks` compared `(block - range.start) // interval`.

These PIN behaviour found sound (they pass on HEAD): for every range (from 0 or not, of
huge block numbers), interval (1, smaller or larger than the window, larger than the range),
window (from the range's start, mid-interval, one block, the last partial interval) and set
of blocks with events or dead letters, the new pieces, commit points and interval index are
the old ones exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from function.core.planning import BlockRange, Intervals, split
from function.run.fetching import any_in


def old_pieces(window: BlockRange, chunks: Sequence[BlockRange]) -> list[BlockRange]:
    """`planning.pieces` before 29dba94."""
    return [
        c
        if window.start <= c.start and c.end <= window.end
        else BlockRange(max(c.start, window.start), min(c.end, window.end))
        for c in chunks
        if c.start <= window.end and c.end >= window.start
    ]


def old_commit_points(
    blocks: BlockRange, interval: int, window: BlockRange, numbers: Sequence[int]
) -> set[int]:
    """`fetch`'s commit points before 29dba94 (the relay passed the window's pieces)."""
    chunks = old_pieces(window, list(split(blocks, interval)))
    return {c.end for c in chunks if any_in(sorted(numbers), c)} | {window.end}


def new_commit_points(intervals: Intervals, window: BlockRange, numbers: Sequence[int]) -> set[int]:
    """`fetch`'s commit points on HEAD, with the `piece_end` `_Run._fetch` passes."""
    return {intervals.piece_end(n, window) for n in numbers} | {window.end}


def check(blocks: BlockRange, interval: int, window: BlockRange, numbers: Sequence[int]) -> None:
    intervals = Intervals(blocks.start, interval)
    chunks = list(split(blocks, interval))
    assert intervals.pieces(window) == old_pieces(window, chunks), (blocks, interval, window)
    assert new_commit_points(intervals, window, numbers) == old_commit_points(
        blocks, interval, window, numbers
    ), (blocks, interval, window, numbers)
    for n in {window.start, window.end, *numbers}:
        assert intervals.index(n) == (n - blocks.start) // interval


HUGE = 2**63 + 12_345  # past any int64 a store or a JSON number might hold


@pytest.mark.parametrize("origin", [0, 1, 7, 1_000_003, HUGE])
@pytest.mark.parametrize("interval", [1, 2, 3, 10, 100, 10_000])
def test_pieces_and_commit_points_are_the_old_ones(origin: int, interval: int) -> None:
    rng = random.Random(f"{origin}:{interval}")
    for _ in range(300):
        blocks = BlockRange(origin, origin + rng.randint(0, 300))
        a = rng.randint(blocks.start, blocks.end)
        # Windows from the range's start, mid-interval, one block, up to the range's end.
        shape = rng.randrange(4)
        if shape == 0:
            a = blocks.start
        b = blocks.end if shape == 1 else rng.randint(a, min(blocks.end, a + rng.randint(0, 120)))
        if shape == 2:
            b = a
        window = BlockRange(a, b)
        numbers = sorted(
            {rng.randint(a, b) for _ in range(rng.randint(0, 6))}
            | ({b} if rng.random() < 0.2 else set())
            | ({a} if rng.random() < 0.2 else set())
        )
        check(blocks, interval, window, numbers)


def test_the_last_partial_interval_and_an_interval_longer_than_the_range() -> None:
    # The range 5..27 with interval 10: 5..14, 15..24, 25..27 (the last, partial).
    for window in (BlockRange(25, 27), BlockRange(20, 27), BlockRange(5, 27), BlockRange(27, 27)):
        for numbers in ([], [27], [25], [24, 25], [14, 15, 27]):
            check(BlockRange(5, 27), 10, window, [n for n in numbers if n in window])
    # An interval longer than the range (and than every window): one piece per window.
    check(BlockRange(3, 40), 1_000, BlockRange(10, 20), [11, 19])
    assert Intervals(3, 1_000).pieces(BlockRange(10, 40)) == [BlockRange(10, 40)]


def test_interval_one_commits_at_every_block_with_events() -> None:
    intervals = Intervals(HUGE, 1)
    window = BlockRange(HUGE + 5, HUGE + 9)
    assert intervals.pieces(window) == [BlockRange(n, n) for n in range(HUGE + 5, HUGE + 10)]
    assert new_commit_points(intervals, window, [HUGE + 6, HUGE + 8]) == {
        HUGE + 6,
        HUGE + 8,
        HUGE + 9,
    }
