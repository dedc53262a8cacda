"""Parts' block records and checkpoint commits, written in another thread while the next
parts are published, in chain order.

A part whose publish requests were all answered is handed over here (`put`) and the run goes
on publishing. One thread at a time writes: it takes every part handed over since it last
looked, writes their records in one write and commits their checkpoint in one commit (the
last part's checkpoint, every part's counts). With Firestore as fast as usual that is one
part at a time; when Firestore is slow (or a stop is waiting for it) the parts that queued
meanwhile cost one write and one commit, not one each: what a SIGTERM waits for is bounded
by two of them, however many parts are queued. When a write or commit fails, the parts
handed over after it are never written (each fails with that error): a checkpoint past a
part whose records are missing would hide its events from replay protection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from function.core.checkpoint import Progress, combined
from function.core.model import BlockRecord


@dataclass
class _Part:
    records: Callable[[], list[BlockRecord]]  # built in the writing thread
    progress: Progress | None
    landed: Future[None] = field(default_factory=Future)


class Recorder:
    """Writes what `put` is given, in order; `start` runs the writing thread (the run's
    `read_ahead`, or at once in the deterministic simulation)."""

    def __init__(
        self,
        write: Callable[[Sequence[BlockRecord]], None],
        commit: Callable[[Progress | None], None],
        start: Callable[[Callable[[], None]], object],
    ) -> None:
        self._write, self._commit, self._start = write, commit, start
        self._lock = threading.Lock()
        self._queued: list[_Part] = []
        self._writing = False
        self._failed: BaseException | None = None

    def put(
        self, records: Callable[[], list[BlockRecord]], progress: Progress | None
    ) -> Future[None]:
        """Hand a part over; its future is done once its records and checkpoint landed."""
        part = _Part(records, progress)
        with self._lock:
            if self._failed is not None:
                part.landed.set_exception(self._failed)
                return part.landed
            self._queued.append(part)
            if self._writing:
                return part.landed
            self._writing = True
        self._start(self._drain)
        return part.landed

    def _drain(self) -> None:
        while True:
            with self._lock:
                group, self._queued = self._queued, []
                if not group:
                    self._writing = False
                    return
            try:
                records = [r for part in group for r in part.records()]
                self._write(records)
                progress: Progress | None = None
                for part in group:
                    progress = combined(progress, part.progress)
                self._commit(progress)
            except BaseException as e:  # handed to the run through each part's future
                with self._lock:
                    self._failed = e
                    later, self._queued = self._queued, []
                    self._writing = False
                for part in (*group, *later):
                    part.landed.set_exception(e)
                return
            for part in group:
                part.landed.set_result(None)
