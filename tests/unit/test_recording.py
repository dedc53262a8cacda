"""The recorder of a run's parts (`function.run.recording`) and the progress of parts
committed together (`function.core.checkpoint.combined`): what queued while a write was slow
is written in one write and one commit, in chain order; after a failure nothing more is."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

from function.core.checkpoint import Progress, combined
from function.core.model import BlockRecord, BlockRef
from function.run.recording import Recorder

WAIT_S = 10.0


def progress(next_block: int | None, published: int, dead: int = 0) -> Progress:
    recent = () if next_block is None else (BlockRef(next_block - 1, f"0x{next_block - 1:x}"),)
    block_hash = None if next_block is None else f"0x{next_block - 1:x}"
    return Progress(next_block, block_hash, recent, published, events_deadlettered=dead)


def test_combined_takes_the_later_checkpoint_both_recent_blocks_and_both_counts() -> None:
    a, b = progress(5, 3, dead=1), progress(9, 4)
    both = combined(a, b)
    assert both is not None
    assert (both.next_block, both.block_hash) == (9, "0x8")
    assert [r.number for r in both.recent] == [4, 8]
    assert (both.events_published, both.events_deadlettered) == (7, 1)


def test_combined_keeps_the_earlier_checkpoint_when_the_later_moves_none() -> None:
    both = combined(progress(5, 3), progress(None, 2))
    assert both is not None and (both.next_block, both.events_published) == (5, 5)
    assert combined(None, progress(None, 2)) == progress(None, 2)
    assert combined(progress(5, 1), None) == progress(5, 1)
    assert combined(None, None) is None


def test_combined_refuses_a_rewind() -> None:
    rewind = Progress(3, "0x2", (), 0, rewind=True)
    with pytest.raises(ValueError, match="rewind"):
        combined(progress(5, 1), rewind)


class Store:
    """Records writes and commits; the first write waits for `go`."""

    def __init__(self) -> None:
        self.writes: list[list[int]] = []
        self.commits: list[Progress | None] = []
        self.go = threading.Event()
        self.fail_write: BaseException | None = None

    def write(self, records: Sequence[BlockRecord]) -> None:
        if not self.writes:
            assert self.go.wait(WAIT_S)
        self.writes.append([r.number for r in records])
        if self.fail_write is not None:
            raise self.fail_write

    def commit(self, change: Progress | None) -> None:
        self.commits.append(change)


def in_thread(drain: Callable[[], None]) -> None:
    threading.Thread(target=drain, daemon=True).start()


def record(number: int) -> Callable[[], list[BlockRecord]]:
    return lambda: [BlockRecord(number, f"0x{number:x}", (), "run", None, None)]  # type: ignore[arg-type]


def test_parts_queued_behind_a_slow_write_land_in_one_write_and_one_commit() -> None:
    store = Store()
    recorder = Recorder(store.write, store.commit, in_thread)
    first = recorder.put(record(1), progress(2, 1))
    later = [recorder.put(record(n), progress(n + 1, 1)) for n in (2, 3, 4)]
    store.go.set()
    for landed in (first, *later):
        landed.result(WAIT_S)
    assert store.writes == [[1], [2, 3, 4]]
    assert [c.next_block if c else None for c in store.commits] == [2, 5]
    assert store.commits[1] is not None and store.commits[1].events_published == 3


def test_after_a_failed_write_nothing_more_is_written_or_committed() -> None:
    store = Store()
    store.fail_write = RuntimeError("Firestore write failed")
    recorder = Recorder(store.write, store.commit, in_thread)
    first = recorder.put(record(1), progress(2, 1))
    queued = recorder.put(record(2), progress(3, 1))
    store.go.set()
    with pytest.raises(RuntimeError, match="write failed"):
        first.result(WAIT_S)
    with pytest.raises(RuntimeError, match="write failed"):
        queued.result(WAIT_S)
    after = recorder.put(record(3), progress(4, 1))
    with pytest.raises(RuntimeError, match="write failed"):
        after.result(WAIT_S)
    assert store.writes == [[1, 2]] or store.writes == [[1]]
    assert store.commits == []
