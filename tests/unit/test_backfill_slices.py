"""A backfill split over the tasks of a Cloud Run Job execution, and what marks its messages."""

from __future__ import annotations

import pytest

from function.core.backfills import (
    Claim,
    as_backfill,
    claim_of,
    overlapping,
    slice_of,
    task_of,
)
from function.core.messages import Message
from function.core.planning import BlockRange


@pytest.mark.parametrize(
    ("blocks", "count", "expected"),
    [
        (BlockRange(0, 99), 4, [(0, 24), (25, 49), (50, 74), (75, 99)]),
        (BlockRange(10, 19), 3, [(10, 13), (14, 16), (17, 19)]),  # the first ones longer
        (BlockRange(5, 5), 1, [(5, 5)]),
        (BlockRange(0, 1), 4, [(0, 0), (1, 1), None, None]),  # more tasks than blocks
    ],
)
def test_slices_are_contiguous_and_cover_the_range_once(
    blocks: BlockRange, count: int, expected: list[tuple[int, int] | None]
) -> None:
    got = [slice_of(blocks, i, count) for i in range(count)]
    assert [(s.start, s.end) if s else None for s in got] == expected


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16, 1000, 1001])
def test_every_block_is_in_exactly_one_slice(count: int) -> None:
    blocks = BlockRange(1234, 2233)
    covered = [b for i in range(count) if (s := slice_of(blocks, i, count)) for b in
               range(s.start, s.end + 1)]  # fmt: skip
    assert covered == list(range(blocks.start, blocks.end + 1))


@pytest.mark.parametrize(("index", "count"), [(4, 4), (-1, 4), (0, 0)])
def test_a_slice_outside_the_tasks_is_an_error(index: int, count: int) -> None:
    with pytest.raises(ValueError):
        slice_of(BlockRange(0, 9), index, count)


def test_task_names_round_trip() -> None:
    assert task_of(BlockRange(25, 49)) == "backfill-25-49"
    assert claim_of("backfill-25-49") == Claim("backfill-25-49", BlockRange(25, 49))
    assert claim_of("backfill-lease") is None and claim_of("backfill-9-3") is None


def test_only_other_tasks_over_the_same_blocks_overlap() -> None:
    own = Claim("backfill-25-49", BlockRange(25, 49))
    claims = [
        own,  # itself, resumed
        Claim("backfill-0-24", BlockRange(0, 24)),  # a neighbouring slice
        Claim("backfill-50-99", BlockRange(50, 99)),
        Claim("backfill-40-60", BlockRange(40, 60)),  # another backfill over its blocks
        Claim("backfill-49-49", BlockRange(49, 49)),
    ]
    assert [c.task for c in overlapping(claims, own)] == ["backfill-40-60", "backfill-49-49"]


def test_a_backfill_message_is_marked_and_has_no_ordering_key() -> None:
    message = Message(b"{}", {"event_id": "1:0xab:0"}, "1:0xC0ffee")
    marked = as_backfill(message)
    assert marked.attributes == {"event_id": "1:0xab:0", "backfill": "true"}
    assert marked.ordering_key == "" and marked.data == message.data
    assert message.attributes == {"event_id": "1:0xab:0"}  # the original untouched
