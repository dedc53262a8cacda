"""One run of the relay job (CONTRACT §2): lease, plan, fetch, decode, publish, commit.

The order of effects is what makes the guarantees of §7 hold:
1. the lease is taken first (a fencing counter in the relayer document), so overlapping
   runs never both publish;
2. for each chunk of at most RELAYER_CHECKPOINT_INTERVAL blocks with events, the
   processed-event set is read and only unrecorded events are published;
3. every publish future is awaited (against a deadline inside the lease) before the
   records are written and the checkpoint moves, and the checkpoint moves only to the end
   of the last block whose events Pub/Sub all accepted;
4. the last commit also stores the run summary and releases the lease.
A SIGKILL anywhere leaves at most the messages published since the last commit to be
published again, with the same event ids.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .abi import EventSpec
from .blockdocs import block_documents
from .config import Settings
from .delivery import Courier
from .errors import LeaseLostError, PublishError, RelayerError
from .fetching import fetch
from .guard import select_unpublished
from .leasing import LeaseKeeper
from .planning import BlockRange, cut_by_events, plan_range, safe_tip, split
from .ports import Chain, Sink, State
from .ranges import RangeLimits
from .records import BlockRef, DeadLetter, Event
from .redact import scrub
from .rewind import rewind
from .state import Grant, Progress
from .stopping import StopSignal
from .summary import FAILED, IDLE, OK, SKIPPED, RunSummary

log = logging.getLogger(__name__)

MAX_EVENTS_PER_COMMIT = 2_000  # a chunk with more events commits in parts (memory, crashes)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Outcome:
    """A finished run: its summary, and the error that failed it (for the exit code)."""

    summary: RunSummary
    error: BaseException | None = None

    @property
    def exit_code(self) -> int:
        if self.error is None:
            return 0
        return getattr(self.error, "exit_code", 1)


@dataclass
class Relay:
    """Everything one run needs, passed in: the logic itself does no wiring."""

    settings: Settings
    specs: Mapping[str, EventSpec]
    chain: Chain
    state: State
    sink: Sink
    stop: StopSignal = field(default_factory=StopSignal)
    dead_letters: Sink | None = None  # RELAYER_DEADLETTER_TOPIC
    last_block: int | None = None  # a backfill's end: never relay past it
    clock: Callable[[], datetime] = utcnow

    def run(self) -> Outcome:
        """One scheduled run; never raises for a failure the summary can describe."""
        started = time.monotonic()
        summary = RunSummary(uuid.uuid4().hex[:16], self.settings.relayer_id, self.clock())
        error: BaseException | None = None
        grant: Grant | None = None
        try:
            grant = self.state.acquire(summary.run_id, summary.started_at, self.settings.lease_s)
            if grant is None:
                summary.outcome = SKIPPED
                self._count_skipped()
            else:
                _Run(self, grant, summary, started).execute()
        except LeaseLostError as e:
            summary.outcome, summary.error, grant = SKIPPED, str(e), None
        except Exception as e:
            error = e
            summary.outcome = FAILED
            detail = str(e) if isinstance(e, RelayerError) else f"{type(e).__name__}: {e}"
            summary.error = scrub(detail)
        if summary.finished_at is None:  # a run that committed its end has set both
            summary.finished_at = self.clock()
            summary.duration_s = round(time.monotonic() - started, 3)
        if grant is not None and summary.outcome == FAILED:
            self._record_failure(grant, summary)
        return Outcome(summary, error)

    def _count_skipped(self) -> None:
        # Only a counter: the run holding the lease may keep the document locked, and a
        # skipped run must not turn into a failed one for it.
        try:
            self.state.count_skipped(self.clock())
        except RelayerError as e:
            log.warning("skipped run not counted: %s", scrub(str(e)))

    def _record_failure(self, grant: Grant, summary: RunSummary) -> None:
        try:
            self.state.commit(grant, self.clock(), summary=summary)
        except Exception as e:
            log.error("could not record the failed run in Firestore: %s", scrub(str(e)))


class _Run:
    """The mutable progress of one run that holds the lease."""

    def __init__(self, relay: Relay, grant: Grant, summary: RunSummary, started: float) -> None:
        self.r = relay
        self.s = relay.settings
        self.grant = grant
        self.summary = summary
        self.started = started
        self.lease = LeaseKeeper(
            relay.state, grant, self.s.lease_s, started, relay.stop, relay.clock
        )
        self.committed_to = -1  # last block whose checkpoint is committed in this run
        self.hashes: dict[int, str] = {}
        self.courier = Courier(relay.sink, relay.stop, self.s.ordering, relay.dead_letters)
        self.limits = RangeLimits(self.s.batch_size, grant.rpc_limits)

    def execute(self) -> None:
        s, summary = self.s, self.summary
        next_block = self.grant.next_block
        if next_block is None:
            next_block = s.start_block
        check = next_block - 1 if self.grant.checkpoint_hash and next_block > 0 else None
        head, header = self.r.chain.head_and_header(s.head, check)
        summary.head_block = head
        if header is not None and header.hash != self.grant.checkpoint_hash:
            done = rewind(
                self.r.chain, self.r.state, self.courier, self.lease, head, next_block, header
            )
            summary.extra["reorg"] = {
                "depth": done.depth,
                "ancestor": done.ancestor,
                "retracted": done.retracted,
            }
            next_block = done.next_block
        self.committed_to = next_block - 1
        # A node behind the checkpoint (load-balanced RPC) is no reorganisation: just idle.
        tip = safe_tip(head, s.confirmations) if s.head == "latest" else head
        if self.r.last_block is not None:
            tip = min(tip, self.r.last_block)
        blocks = plan_range(next_block, tip, s.batch_size)
        if blocks is None:
            summary.outcome, summary.from_block = IDLE, next_block
            self._commit_end(None)
            return
        summary.from_block = blocks.start
        done_to = self._relay(blocks)
        summary.outcome = OK
        self._commit_end(done_to)

    def _relay(self, blocks: BlockRange) -> int:
        """Relay the range chunk by chunk; the last block done (all of it unless stopped)."""
        chunks = list(split(blocks, self.s.checkpoint_interval))
        fetched = fetch(
            self.r.chain,
            self.r.specs,
            self.s.contracts,
            self.s.chain_id,
            blocks,
            chunks,
            dead_letters=self.r.dead_letters is not None,
            limits=self.limits,
        )
        self.hashes.update(fetched.hashes)
        for chunk in chunks:
            busy = sorted(
                [e.block_number for e in fetched.between(chunk)]
                + [d.block_number for d in fetched.dead_between(chunk)]
            )
            for part in cut_by_events(chunk, busy, MAX_EVENTS_PER_COMMIT):
                if self.r.stop.is_set():
                    self.summary.interrupted = True
                    return part.start - 1
                events, dead = fetched.between(part), fetched.dead_between(part)
                if not events and not dead:
                    continue  # nothing to publish: no need to commit (see _commit_end)
                done = self._publish_chunk(part, events, dead)
                if done < part.end:
                    self.summary.interrupted = True
                    return done
        return blocks.end

    def _hash_of(self, number: int) -> str:
        if number not in self.hashes:
            self.hashes.update((n, h.hash) for n, h in self.r.chain.headers([number]).items())
        return self.hashes[number]

    def _publish_chunk(
        self, chunk: BlockRange, events: Sequence[Event], dead: Sequence[DeadLetter]
    ) -> int:
        self.lease.ensure()
        existing = self.r.state.processed(chunk)
        states = {str(e["event_id"]): str(e.get("state")) for es in existing.values() for e in es}
        selection = select_unpublished(events, states)
        dead_selection = select_unpublished(dead, states)
        self.summary.duplicates_skipped += len(selection.duplicates)
        delivered = self.courier.send(
            selection.to_publish,
            dead_selection.to_publish,
            self.lease.publish_deadline(),
            chain_id=self.s.chain_id,
            relayer_id=self.s.relayer_id,
            leased=self.lease.valid,
        )
        self.r.state.record(
            self.grant,
            block_documents(
                delivered.published,
                existing,
                run_id=self.summary.run_id,
                now=self.r.clock(),
                ttl_days=self.s.event_ttl_days,
            ),
        )
        published = delivered.events_published
        self.summary.events_published += published
        self.summary.dead_lettered += delivered.dead_lettered
        done_to = chunk.end
        if delivered.stopped_before is not None:
            done_to = min(done_to, delivered.stopped_before - 1)
        if delivered.failure is not None:
            done_to = min(done_to, delivered.failure[0] - 1)
        self._commit_progress(done_to, events, published, delivered.dead_lettered)
        if delivered.failure is not None:
            _, what, error = delivered.failure
            raise PublishError(
                f"Pub/Sub did not accept {what}: {error}; relayed up to block {done_to}, "
                "the next run resumes there"
            )
        return done_to

    def _progress(
        self, done_to: int, events: Sequence[Event], published: int, dead: int = 0
    ) -> Progress | None:
        if done_to <= self.committed_to:  # nothing whole to checkpoint; still count events
            if published or dead:
                return Progress(None, None, (), published, events_deadlettered=dead)
            return None
        recent = {
            e.block_number: BlockRef(e.block_number, e.block_hash)
            for e in events
            if e.block_number <= done_to
        }
        recent[done_to] = BlockRef(done_to, self._hash_of(done_to))
        return Progress(
            done_to + 1,
            recent[done_to].hash,
            tuple(recent.values()),
            published,
            events_deadlettered=dead,
        )

    def _commit_progress(
        self, done_to: int, events: Sequence[Event], published: int, dead: int = 0
    ) -> None:
        self.lease.commit(self._progress(done_to, events, published, dead))
        self.committed_to = max(self.committed_to, done_to)

    def _commit_end(self, done_to: int | None) -> None:
        """The last commit: lazy progress over empty chunks, the summary, the release."""
        progress = None
        if done_to is not None and done_to > self.committed_to:
            progress = self._progress(done_to, (), 0)
        summary = self.summary
        if done_to is not None and summary.from_block is not None and done_to >= summary.from_block:
            summary.to_block = done_to
        summary.finished_at = self.r.clock()
        summary.duration_s = round(time.monotonic() - self.started, 3)
        limits = self.limits.to_store()
        self.r.state.commit(
            self.grant,
            summary.finished_at,
            progress=progress,
            summary=summary,
            rpc_limits=limits if limits != self.grant.rpc_limits else None,
        )
