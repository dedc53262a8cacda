"""The commit decision (core.commit): the checkpoint, the counters, the lease a commit writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from function.core.checkpoint import Grant, Progress
from function.core.commit import Checkpoint, Totals, advance, lease_after
from function.core.lease import Lease
from function.core.model import BlockRef
from function.errors import StateError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRANT = Grant("run-a", 4, NOW + timedelta(seconds=30), 10, "0x09", ())


def _progress(next_block: int | None, *, rewind: bool = False, published: int = 0) -> Progress:
    recent = () if next_block is None else (BlockRef(next_block - 1, f"0x{next_block - 1:02x}"),)
    return Progress(next_block, None, recent, published, rewind=rewind)


def test_the_checkpoint_moves_forward_and_keeps_the_newest_blocks() -> None:
    stored = [BlockRef(8, "0x08"), BlockRef(9, "0x09")]
    moved = advance(10, stored, Progress(12, "0x0b", (BlockRef(11, "0x0b"),), 3))
    assert moved == Checkpoint(
        12, "0x0b", (BlockRef(8, "0x08"), BlockRef(9, "0x09"), BlockRef(11, "0x0b"))
    )


def test_the_checkpoint_never_moves_back_but_by_a_rewind() -> None:
    with pytest.raises(StateError, match="back from 10 to 7"):
        advance(10, [], _progress(7))
    rewound = advance(10, [BlockRef(6, "0x06"), BlockRef(9, "0x09")], _progress(7, rewind=True))
    # blocks at or above the new checkpoint are forgotten: they are relayed again
    assert rewound is not None and [r.number for r in rewound.recent] == [6]


def test_progress_without_a_checkpoint_only_counts() -> None:
    assert advance(10, [], _progress(None, published=5)) is None
    totals = Totals(events_published=2).plus(_progress(None, published=5))
    assert totals.events_published == 7 and totals.runs == 0


def test_a_finished_run_is_counted_by_outcome() -> None:
    totals = Totals(runs=2, outcomes={"ok": 2}).counting("failed").counting("ok")
    assert totals.runs == 4 and dict(totals.outcomes) == {"ok": 3, "failed": 1}


def test_the_lease_a_commit_writes() -> None:
    current = Lease("run-a", NOW, 4)
    later = NOW + timedelta(seconds=60)
    assert lease_after(current, GRANT, finished=False, until=None) is None  # counts only
    assert lease_after(current, GRANT, finished=False, until=later) == Lease("run-a", later, 4)
    assert lease_after(current, GRANT, finished=True, until=None) == Lease(None, None, 4)
    # finished with requests in doubt: held on, not released
    assert lease_after(current, GRANT, finished=True, until=later) == Lease("run-a", later, 4)


def test_a_followers_renewal_keeps_its_window_and_its_end_drops_it() -> None:
    end = NOW + timedelta(seconds=90)
    current = Lease("run-a", NOW, 4, NOW, end)
    later = NOW + timedelta(seconds=60)
    renewed = lease_after(current, GRANT, finished=False, until=later)
    assert renewed == Lease("run-a", later, 4, NOW, end)
    assert lease_after(current, GRANT, finished=True, until=None) == Lease(None, None, 4)
    # ended with requests in doubt: held on, but no longer following
    assert lease_after(current, GRANT, finished=True, until=later) == Lease("run-a", later, 4)


def test_a_run_checkpoints_only_at_a_hash_of_its_consistent_view() -> None:
    from function.core.checkpoint import progress_of
    from function.core.model import Event

    def event(number: int) -> Event:
        return Event(
            event_id=f"e{number}", chain_id=1, contract="0x", name="E", args={},
            block_number=number, block_hash=f"0x{number:02x}", block_timestamp=0,
            transaction_hash="0x", transaction_index=0, log_index=0,
        )  # fmt: skip

    hashes = {5: "0x05", 7: "0x07", 9: "0x09"}
    got = progress_of(8, 4, hashes, [event(5), event(7), event(9)], published=3)
    assert got is not None and got.next_block == 8 and got.block_hash == "0x07"
    assert [r.number for r in got.recent] == [5, 7]  # block 9 is past the checkpoint
    # nothing past the last commit has a known hash: the counts alone
    counts = progress_of(8, 7, hashes, [], published=2)
    assert counts is not None and counts.next_block is None and counts.events_published == 2
    assert progress_of(8, 7, hashes, [], published=0) is None
