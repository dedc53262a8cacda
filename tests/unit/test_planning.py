"""Block-range planning, as tables of inputs and expected ranges."""

from __future__ import annotations

import pytest

from function.core.model import BlockRef
from function.core.planning import BlockRange, merge_recent, plan_range, safe_tip, split


@pytest.mark.parametrize(
    ("next_block", "head", "confirmations", "batch", "expected"),
    [
        (0, 100, 12, 1000, (0, 88)),  # catching up stops confirmations behind the head
        (50, 100, 0, 10, (50, 59)),  # at most one batch
        (89, 100, 12, 1000, None),  # caught up: idle
        (200, 100, 0, 10, None),  # START_BLOCK beyond the head: idle, not an error
        (88, 100, 12, 1, (88, 88)),
        (0, 5, 12, 1000, None),  # a chain shorter than the confirmations
    ],
)
def test_plan_range(
    next_block: int, head: int, confirmations: int, batch: int, expected: tuple[int, int] | None
) -> None:
    planned = plan_range(next_block, safe_tip(head, confirmations), batch)
    assert (None if planned is None else (planned.start, planned.end)) == expected


def test_split_covers_the_range_in_order() -> None:
    parts = list(split(BlockRange(10, 34), 10))
    assert [(p.start, p.end) for p in parts] == [(10, 19), (20, 29), (30, 34)]
    assert sum(len(p) for p in parts) == 25
    assert [(p.start, p.end) for p in split(BlockRange(7, 7), 100)] == [(7, 7)]


def test_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="empty range"):
        BlockRange(5, 4)


def test_merge_recent_keeps_newest_and_replaces_hashes() -> None:
    old = [BlockRef(n, f"0x{n:02x}") for n in range(1, 6)]
    merged = merge_recent(old, [BlockRef(5, "0xnew"), BlockRef(6, "0x06")], keep=4)
    assert merged == [
        BlockRef(3, "0x03"),
        BlockRef(4, "0x04"),
        BlockRef(5, "0xnew"),
        BlockRef(6, "0x06"),
    ]


def test_cut_by_events_bounds_each_commit() -> None:
    from function.core.planning import cut_by_events

    chunk = BlockRange(100, 199)
    events = [101] * 3 + [105] * 4 + [110] * 2 + [150] * 9 + [151]
    parts = cut_by_events(chunk, events, 5)
    assert [(p.start, p.end) for p in parts] == [
        (100, 101),
        (102, 105),
        (106, 110),
        (111, 150),
        (151, 199),
    ]
    assert cut_by_events(chunk, events, 1000) == [chunk]
    assert cut_by_events(chunk, [], 5) == [chunk]


def test_windows_follow_the_density_of_the_window_before() -> None:
    from function.core.planning import FIRST_WINDOW_BLOCKS, WINDOW_EVENTS, next_window

    assert next_window(1000, None) == FIRST_WINDOW_BLOCKS  # density unknown
    assert next_window(5, None) == 5
    assert next_window(1000, (10, 0)) == 160  # nothing in it: 16 times wider
    assert next_window(100, (10, 0)) == 100  # capped by what is left
    assert next_window(1000, (10, 10)) == 40  # sparse: at most 4 times wider
    assert next_window(1000, (10, 4 * WINDOW_EVENTS)) == 2  # dense: narrower
    assert next_window(1000, (1, 10 * WINDOW_EVENTS)) == 1  # never less than a block
    assert next_window(1000, (10, WINDOW_EVENTS)) == 10  # steady: the same width


def test_a_window_cuts_the_checkpoint_intervals_it_crosses() -> None:
    from function.core.planning import Intervals

    intervals = Intervals(0, 10)  # the range 0..29: intervals 0..9, 10..19, 20..29
    assert intervals.pieces(BlockRange(5, 24)) == [
        BlockRange(5, 9), BlockRange(10, 19), BlockRange(20, 24)
    ]  # fmt: skip
    assert intervals.pieces(BlockRange(0, 9)) == [BlockRange(0, 9)]
    assert intervals.pieces(BlockRange(12, 13)) == [BlockRange(12, 13)]
    assert [intervals.piece_end(n, BlockRange(5, 24)) for n in (5, 9, 10, 19, 20, 24)] == [
        9, 9, 19, 19, 24, 24
    ]  # fmt: skip
    assert [intervals.index(n) for n in (0, 9, 10, 29)] == [0, 0, 1, 2]


def test_the_pieces_are_the_ranges_intervals_cut_by_the_window() -> None:
    # Against the intervals as objects (`split` of the range), over many ranges and windows:
    # the arithmetic is the same cut, and a piece holding a block ends where `piece_end` says.
    import random

    from function.core.planning import Intervals

    rng = random.Random(13)
    for _ in range(2000):
        start = rng.randint(0, 50)
        blocks = BlockRange(start, start + rng.randint(0, 60))
        size = rng.randint(1, 25)
        a = rng.randint(blocks.start, blocks.end)
        window = BlockRange(a, rng.randint(a, blocks.end))
        chunks = list(split(blocks, size))
        want = [
            BlockRange(max(c.start, window.start), min(c.end, window.end))
            for c in chunks
            if c.start <= window.end and c.end >= window.start
        ]
        intervals = Intervals(blocks.start, size)
        assert intervals.pieces(window) == want, (blocks, size, window)
        for piece in want:
            for n in range(piece.start, piece.end + 1):
                assert intervals.piece_end(n, window) == piece.end
                assert intervals.index(n) == next(i for i, c in enumerate(chunks) if n in c)
