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

import bisect
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .abi import EventSpec
from .blockdocs import Published, block_documents
from .chain import Header
from .config import Settings
from .decoding import decode_log
from .errors import LeaseLostError, PublishError, RelayerError, ReorgError
from .guard import select_unpublished
from .messages import Message, build_message
from .planning import BlockRange, plan_range, safe_tip, split
from .ports import Chain, Sink, State
from .records import BlockRef, Event
from .redact import scrub
from .state import Grant, Progress
from .stopping import StopSignal
from .summary import FAILED, IDLE, OK, SKIPPED, RunSummary

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 60.0


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
                self.state.count_skipped(self.clock())
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
        self.lease_deadline = started + self.s.lease_s
        self.committed_to = -1  # last block whose checkpoint is committed in this run
        self.hashes: dict[int, str] = {}

    def execute(self) -> None:
        s, summary = self.s, self.summary
        next_block = self.grant.next_block
        if next_block is None:
            next_block = s.start_block
        self.committed_to = next_block - 1
        check = next_block - 1 if self.grant.checkpoint_hash and next_block > 0 else None
        head, header = self.r.chain.head_and_header(s.head, check)
        summary.head_block = head
        if header is not None and header.hash != self.grant.checkpoint_hash:
            raise ReorgError(
                f"block {header.number} is now {header.hash}, but this relayer checkpointed "
                f"{self.grant.checkpoint_hash}: the chain reorganised below the checkpoint"
            )
        tip = safe_tip(head, s.confirmations) if s.head == "latest" else head
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
        logs = self.r.chain.get_logs(blocks, self.s.contracts, list(self.r.specs))
        events = [decode_log(entry, self.r.specs, self.s.chain_id) for entry in logs]
        chunks = list(split(blocks, self.s.checkpoint_interval))
        numbers = [e.block_number for e in events]
        self._fill_headers(events, numbers, chunks)
        for chunk in chunks:
            if self.r.stop.is_set():
                self.summary.interrupted = True
                return chunk.start - 1
            lo = bisect.bisect_left(numbers, chunk.start)
            hi = bisect.bisect_right(numbers, chunk.end)
            if lo == hi:
                continue  # nothing to publish: no need to commit (see _commit_end)
            done = self._publish_chunk(chunk, events[lo:hi])
            if done < chunk.end:
                self.summary.interrupted = True
                return done
        return blocks.end

    def _fill_headers(
        self, events: Sequence[Event], numbers: Sequence[int], chunks: Sequence[BlockRange]
    ) -> None:
        """One batch for every header the run needs: missing timestamps, commit points."""
        for e in events:
            self.hashes[e.block_number] = e.block_hash
        untimed = {e.block_number for e in events if e.block_timestamp is None}
        commit_points = {c.end for c in chunks if _any_in(numbers, c)} | {chunks[-1].end}
        headers = self.r.chain.headers(untimed | (commit_points - set(self.hashes)))
        self._remember(headers)
        for e in events:
            if e.block_timestamp is None:
                e.block_timestamp = headers[e.block_number].timestamp

    def _remember(self, headers: Mapping[int, Header]) -> None:
        for number, header in headers.items():
            self.hashes[number] = header.hash

    def _hash_of(self, number: int) -> str:
        if number not in self.hashes:
            self._remember(self.r.chain.headers([number]))
        return self.hashes[number]

    def _publish_chunk(self, chunk: BlockRange, events: Sequence[Event]) -> int:
        self._ensure_lease()
        existing = self.r.state.processed(chunk)
        states = {str(e["event_id"]): str(e.get("state")) for es in existing.values() for e in es}
        selection = select_unpublished(events, states)
        self.summary.duplicates_skipped += len(selection.duplicates)
        submitted: list[tuple[Event, Message]] = []
        futures = []
        done_to = chunk.end
        for block, group in _by_block(selection.to_publish):
            if self.r.stop.is_set():
                done_to = block - 1
                break
            messages = [build_message(e, ordering=self.s.ordering) for e in group]
            futures.extend(self.r.sink.submit(messages))
            submitted.extend(zip(group, messages, strict=True))
        results = self._wait(futures)
        published: list[Published] = []
        failure: tuple[Event, BaseException] | None = None
        for (event, message), result in zip(submitted, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or (event, result)
                self.r.sink.resume(message.ordering_key)
            else:
                published.append(_published(event, message, result))
        self.r.state.record(
            block_documents(
                published,
                existing,
                run_id=self.summary.run_id,
                now=self.r.clock(),
                ttl_days=self.s.event_ttl_days,
            )
        )
        self.summary.events_published += len(published)
        if failure is not None:
            done_to = failure[0].block_number - 1
        self._commit_progress(done_to, events, len(published))
        if failure is not None:
            event, error = failure
            raise PublishError(
                f"Pub/Sub did not accept event {event.event_id} ({event.name}): {error}; "
                f"relayed up to block {done_to}, the next run resumes there"
            )
        return done_to

    def _wait(self, futures: list) -> list[str | BaseException]:  # type: ignore[type-arg]
        start = time.monotonic()
        margin = min(2.0, self.s.lease_s * 0.1)

        def deadline() -> float:
            own = min(start + PUBLISH_TIMEOUT_S, self.lease_deadline - margin)
            return self.r.stop.cap(own)

        return self.r.sink.wait(futures, deadline)

    def _ensure_lease(self) -> None:
        """Renew the lease before publishing if less than half of it is left."""
        if self.lease_deadline - time.monotonic() >= self.s.lease_s / 2:
            return
        renewed_at = time.monotonic()
        self.r.state.commit(self.grant, self.r.clock(), lease_until=self._lease_until())
        self.lease_deadline = renewed_at + self.s.lease_s

    def _lease_until(self) -> datetime:
        return self.r.clock() + timedelta(seconds=self.s.lease_s)

    def _progress(self, done_to: int, events: Sequence[Event], published: int) -> Progress | None:
        if done_to <= self.committed_to:  # nothing whole to checkpoint; still count events
            return Progress(None, None, (), published) if published else None
        recent = {
            e.block_number: BlockRef(e.block_number, e.block_hash)
            for e in events
            if e.block_number <= done_to
        }
        recent[done_to] = BlockRef(done_to, self._hash_of(done_to))
        return Progress(done_to + 1, recent[done_to].hash, tuple(recent.values()), published)

    def _commit_progress(self, done_to: int, events: Sequence[Event], published: int) -> None:
        progress = self._progress(done_to, events, published)
        renewed_at = time.monotonic()
        self.r.state.commit(
            self.grant, self.r.clock(), progress=progress, lease_until=self._lease_until()
        )
        self.lease_deadline = renewed_at + self.s.lease_s
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
        self.r.state.commit(self.grant, summary.finished_at, progress=progress, summary=summary)


def _any_in(numbers: Sequence[int], chunk: BlockRange) -> bool:
    i = bisect.bisect_left(numbers, chunk.start)
    return i < len(numbers) and numbers[i] <= chunk.end


def _by_block(events: Sequence[Event]) -> list[tuple[int, list[Event]]]:
    groups: list[tuple[int, list[Event]]] = []
    for e in events:
        if groups and groups[-1][0] == e.block_number:
            groups[-1][1].append(e)
        else:
            groups.append((e.block_number, [e]))
    return groups


def _published(event: Event, message: Message, message_id: str) -> Published:
    return Published(
        event_id=event.event_id,
        block_number=event.block_number,
        block_hash=event.block_hash,
        log_index=event.log_index,
        transaction_hash=event.transaction_hash,
        event=event.name,
        message_id=message_id,
        data=message.data.decode(),
    )
