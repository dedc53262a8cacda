"""Keeping a run's lease: when it must be renewed, and how long publishing may take.

A run may only publish while its lease holds, or another run could take over and publish
the same events; so every publish request starts before, and carries a gRPC deadline that
ends, a margin before the lease does (or soon after a SIGTERM), and the lease is renewed
before publishing once half of it is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from function.core.checkpoint import Commit, Grant, Progress
from function.core.commit import advance
from function.core.watch import ChildWrite, Watch
from function.run.ports import State
from function.stopping import StopSignal

PUBLISH_TIMEOUT_S = 60.0


class LeaseKeeper:
    """The lease of one run: its deadline on the monotonic clock, renewals, commits."""

    def __init__(
        self,
        state: State,
        grant: Grant,
        lease_s: float,
        started: float,
        stop: StopSignal,
        clock: Callable[[], datetime],
    ) -> None:
        self._state = state
        self.grant = grant
        self._lease_s = lease_s
        self._deadline = started + lease_s  # acquisition began at `started`: conservative
        self._margin = min(2.0, lease_s * 0.1)
        self._stop = stop
        self._clock = clock
        self.watch: Watch | None = None  # RELAYER_FACTORY: children go with the checkpoint

    def publish_deadline(self) -> Callable[[], float]:
        """When publishing must be over: no request starts after it, none is accepted after
        it (each carries it as its gRPC deadline); re-read, so a SIGTERM can bring it
        closer."""
        start = time.monotonic()

        def deadline() -> float:
            return self._stop.cap(min(start + PUBLISH_TIMEOUT_S, self._deadline - self._margin))

        return deadline

    def valid(self) -> bool:
        """True while the lease holds with a margin: publishing may go on."""
        return time.monotonic() < self._deadline - self._margin

    def renewal_due(self) -> bool:
        """Less than half of the lease is left: renew before publishing."""
        return self._deadline - time.monotonic() < self._lease_s / 2

    def ensure(self) -> None:
        """Renew before publishing if less than half of the lease is left."""
        if self.renewal_due():
            self.commit(None)

    def held_until(self, in_doubt_until: float | None) -> datetime | None:
        """When a run that gave up on requests still in flight may let go of its lease: not
        before Pub/Sub would drop them (their gRPC deadline, monotonic), with the margin for
        the network and clocks on both sides; None when nothing is in doubt any more."""
        if in_doubt_until is None:
            return None
        left = in_doubt_until + 2 * self._margin - time.monotonic()
        return self._clock() + timedelta(seconds=left) if left > 0 else None

    def children_for(self, progress: Progress | None) -> ChildWrite | None:
        """The children a commit of `progress` stores with its checkpoint: every one below
        it (a rewind first forgets those at or above its new checkpoint)."""
        if self.watch is None or progress is None or progress.next_block is None:
            return None
        if progress.rewind:
            self.watch.forget_from(progress.next_block)
        return self.watch.write_for(progress.next_block)

    def commit_children(self) -> None:
        """Store the children found so far by a look below the checkpoint (`Watch.scanned`),
        without moving the checkpoint; the lease is renewed with it."""
        if self.watch is None:
            return
        children = self.watch.scanned()
        if children is not None:
            self._send(None, None, children)

    def _send(
        self, progress: Progress | None, looked_at: datetime | None, children: ChildWrite | None
    ) -> None:
        """One fenced commit that renews the lease (from when it was asked for)."""
        renewed_at = time.monotonic()
        until = self._clock() + timedelta(seconds=self._lease_s)
        change = Commit(
            progress=progress, lease_until=until, looked_at=looked_at, children=children
        )
        self._state.commit(self.grant, self._clock(), change)
        self.committed(children)
        self._deadline = renewed_at + self._lease_s

    def committed(self, children: ChildWrite | None) -> None:
        if children is not None and self.watch is not None:
            self.watch.stored(children)

    def commit(self, progress: Progress | None, looked_at: datetime | None = None) -> None:
        """A fenced commit (checkpoint and/or counts, a follower's look) that also renews
        the lease. The grant follows the checkpoint committed: a rewind later in the run (a
        follower's next look) starts from the blocks this run relayed, not those it found."""
        self._send(progress, looked_at, self.children_for(progress))
        if progress is not None:
            moved = advance(self.grant.next_block, self.grant.recent_blocks, progress)
            if moved is not None:
                self.grant = replace(
                    self.grant,
                    next_block=moved.next_block,
                    checkpoint_hash=moved.block_hash,
                    recent_blocks=moved.recent,
                )
