"""One run of the relay job (docs/CONTRACT.md §2): lease, plan, fetch, decode, publish, commit.

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

In follow mode (RELAYER_RUN_SECONDS > 0) one run looks at the chain again every
RELAYER_POLL_INTERVAL until its window ends, each look relaying what became eligible; between
two looks it commits the checkpoint, the look (`last_look_at`) and a renewed lease. A run that
finds the lease held by a follower whose window is about to end waits for it instead of
skipping (docs/CONTRACT.md §7.7). Waits go through `Relay.wait`: the stop signal's by default.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from function.config import Settings
from function.core.blockrecords import block_records, states_of
from function.core.catalogue import EventCatalogue
from function.core.checkpoint import Commit, Grant, Progress, progress_of
from function.core.creations import Factory
from function.core.dedup import select_unpublished
from function.core.lease import handover_until, still_waiting_until
from function.core.logspan import RangeLimits
from function.core.model import BlockRecord, BlockRef, DeadLetter, Event
from function.core.planning import (
    BlockRange,
    Density,
    Intervals,
    cut_by_events,
    density_after,
    known_density,
    next_window,
    plan_range,
    safe_tip,
    watch_key,
)
from function.core.summary import FAILED, IDLE, OK, SKIPPED, RunSummary
from function.core.watch import Child, Watch
from function.errors import (
    ChainMovedError,
    LeaseLostError,
    MessageBuildError,
    PublishError,
    RelayerError,
    StoppedError,
)
from function.redact import scrub
from function.run.ahead import read_ahead
from function.run.dispatch import Dispatcher
from function.run.fetching import Fetched, any_in, by_address, creations, fetch
from function.run.leasing import LeaseKeeper
from function.run.ports import Chain, Heads, Records, Sink, State, Transactions
from function.run.recording import Recorder
from function.run.rewind import retract, rewind
from function.stopping import StopSignal

log = logging.getLogger(__name__)

MAX_EVENTS_PER_COMMIT = 2_000  # a chunk with more events commits in parts (memory, crashes)
# Parts whose records and commit may be queued or under way while the next is published: a
# short part (an interval's or a window's last) is published sooner than the part before it
# is recorded, and need not wait for it (each holds its messages until it lands). What queued
# is written at once (`Recorder`): a stop waits for two writes and commits at most.
RECORDINGS_UNDER_WAY = 3
CHECK_ATTEMPTS = 3  # checkpoint checks when the chain keeps moving under the read
# Hand-over (docs/CONTRACT.md §7.7): a run waits for a follower whose window ends within its
# own poll interval plus this margin, polling the lease every step (or every half poll
# interval, when that is shorter: the gap between two looks must stay within two of them),
# until that end plus the grace a follower needs for its last look and commit; a crashed
# follower's lease expires.
HANDOVER_MARGIN_S = 10.0
HANDOVER_GRACE_S = 10.0
HANDOVER_STEP_S = 1.0
# A new head (RPC_WS_URL) brings a follower's next look forward, but no sooner than this
# after the last one began: a chain with sub-second blocks must not make it a busy loop.
MIN_LOOK_GAP_S = 1.0
# How long a run that stops or fails waits for the window it was reading ahead: the read is
# cut short by a stop (the RPC client's waits end at SIGTERM) and otherwise ends within its
# timeouts; a run does not leave while it still writes the learned eth_getLogs spans.
AHEAD_WAIT_S = 5.0
# How often a long look for a factory's creations stores what it found (and says how far it
# got): a run stopped meanwhile loses at most this much of it.
CATCH_UP_SAVE_S = 30.0
LOOKED_BELOW_KEPT = 64  # window ends of that look kept, to find where a reorganisation began


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
    specs: EventCatalogue
    chain: Chain
    state: State
    records: Records
    sink: Sink
    stop: StopSignal = field(default_factory=StopSignal)
    dead_letters: Sink | None = None  # RELAYER_DEADLETTER_TOPIC
    last_block: int | None = None  # a backfill's end: never relay past it
    replay: tuple[BlockRange, ...] = ()  # blocks whose unrecorded events may be re-publications
    current: RunSummary | None = field(default=None, init=False)  # the run in progress
    clock: Callable[[], datetime] = utcnow
    # How the run waits (between looks, for a hand-over): True when asked to stop. None: the
    # stop signal's own wait; tests over the fakes pass one that moves a fake clock.
    wait: Callable[[float], bool] | None = None
    heads: Heads | None = None  # RPC_WS_URL: new heads wake a follower between looks
    execution: str | None = None  # the Cloud Run execution, kept in the summary for status
    transactions: Transactions | None = None  # RELAYER_INCLUDE=transaction
    factory: Factory | None = None  # RELAYER_FACTORY: its children are relayed too
    # Where creations are looked for when the state holds none: genesis, so that a child
    # created before START_BLOCK (or a backfill's range) is relayed from there on too.
    children_from: int = 0
    # The children the last run of this process knew, and up to which block it looked for
    # them: a state that stores none (a backfill's task) does not look again every batch.
    remembered: tuple[list[Child], int | None] | None = field(default=None, init=False)

    def pause(self, seconds: float) -> bool:
        """Wait up to `seconds`, ending at a stop; True when a stop was asked."""
        if self.wait is None:
            return self.stop.wait(seconds)
        return self.wait(seconds) or self.stop.is_set()

    def run(self) -> Outcome:
        """One scheduled run; never raises for a failure the summary can describe."""
        started = time.monotonic()
        summary = RunSummary(uuid.uuid4().hex[:16], self.settings.relayer_id, self.clock())
        if self.execution:
            summary.extra["execution"] = self.execution
        self.current = summary
        error: BaseException | None = None
        grant: Grant | None = None
        run: _Run | None = None
        try:
            grant, asked = self._acquire(summary)
            if grant is None:
                summary.outcome = SKIPPED
                self._count_skipped()
            else:
                run = _Run(self, grant, summary, started, asked)
                try:
                    run.execute()
                finally:
                    if self.factory is not None:
                        self.remembered = (list(run.watch.children), run.watch.covered_to)
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
        if self.heads is not None:
            self.heads.close()
        if grant is not None and summary.outcome == FAILED:
            hold = run.lease.held_until(run.dispatcher.in_doubt_until) if run is not None else None
            self._record_failure(grant, summary, hold)
        return Outcome(summary, error)

    def _acquire(self, summary: RunSummary) -> tuple[Grant | None, float]:
        """The lease, and when its acquisition began (monotonic). A lease held by a follower
        about to end is waited for (docs/CONTRACT.md §7.7), polling it, until a stop."""
        s = self.settings
        follow_until = None
        if s.run_s > 0:
            follow_until = summary.started_at + timedelta(seconds=s.run_s)
        asked = time.monotonic()

        def take() -> Grant | None:
            nonlocal asked
            asked = time.monotonic()
            return self.state.acquire(summary.run_id, self.clock(), s.lease_s, follow_until)

        grant = self.state.acquire(summary.run_id, summary.started_at, s.lease_s, follow_until)
        if grant is not None:
            return grant, asked
        try:
            held = self.state.read_lease()
        except RelayerError as e:  # a skipped run must not turn into a failed one
            log.warning("could not read the lease to wait for a hand-over: %s", scrub(str(e)))
            return None, asked
        if not held.held_by_other(summary.run_id, self.clock()):
            # Released (a follower's last commit) or expired between the two reads: it is
            # free now, and skipping would leave no run following until the next schedule.
            grant = take()
            return grant, asked
        patience = s.poll_interval_s + HANDOVER_MARGIN_S
        give_up = handover_until(held, summary.run_id, self.clock(), patience, HANDOVER_GRACE_S)
        if give_up is None:
            return None, asked
        log.info(
            "run %s follows the chain until %s: waiting for it to hand over",
            held.owner,
            held.follow_until.isoformat(timespec="seconds") if held.follow_until else "?",
        )
        waited = time.monotonic()
        while (left := (give_up - self.clock()).total_seconds()) > 0:
            if self.pause(min(HANDOVER_STEP_S, s.poll_interval_s / 2, left)):
                return None, asked
            try:
                current = self.state.read_lease()
            except RelayerError as e:  # Firestore hiccups: look again at the next step
                log.warning("could not read the lease while waiting: %s", scrub(str(e)))
                continue
            now = self.clock()
            if current.held_by_other(summary.run_id, now):
                if current.owner != held.owner:  # another run took it first: wait for it too?
                    held = current
                    give_up = handover_until(held, summary.run_id, now, patience, HANDOVER_GRACE_S)
                    if give_up is None:
                        log.info("run %s took the lease first: skipped", held.owner)
                        return None, asked
                else:  # alive while its lease holds: wait on, within this run's window
                    give_up = still_waiting_until(current, give_up, follow_until)
                continue
            grant = take()
            if grant is None:
                continue  # taken between the read and the take: the next step says by whom
            # Released: handed over by the run that held it last. Expired: it crashed.
            key = "handed_over_by" if current.owner is None else "took_expired_lease_of"
            summary.extra[key] = held.owner if current.owner is None else current.owner
            summary.extra["waited_s"] = round(time.monotonic() - waited, 3)
            return grant, asked
        log.warning(
            "run %s did not hand over by the end of its window: skipped; its lease expires at %s",
            held.owner,
            held.expires_at.isoformat(timespec="seconds") if held.expires_at else "?",
        )
        return None, asked

    def _count_skipped(self) -> None:
        # Only a counter: the run holding the lease may keep the document locked, and a
        # skipped run must not turn into a failed one for it.
        try:
            self.state.count_skipped(self.clock())
        except RelayerError as e:
            log.warning("skipped run not counted: %s", scrub(str(e)))

    def _record_failure(
        self, grant: Grant, summary: RunSummary, hold: datetime | None = None
    ) -> None:
        try:
            self.state.commit(grant, self.clock(), Commit(summary=summary, lease_until=hold))
        except Exception as e:
            log.error("could not record the failed run in Firestore: %s", scrub(str(e)))


class _Run:
    """The mutable progress of one run that holds the lease."""

    def __init__(
        self, relay: Relay, grant: Grant, summary: RunSummary, started: float, asked: float
    ) -> None:
        self.relay = relay
        self.settings = relay.settings
        self.grant = grant
        self.summary = summary
        self.started = started
        self.lease = LeaseKeeper(
            relay.state, grant, self.settings.lease_s, asked, relay.stop, relay.clock
        )
        self.committed_to = -1  # last block whose checkpoint is committed in this run
        # Parts recorded and committed in another thread, one after another, while the
        # next parts are published (`_publish_chunk`, `_within_interval`); each with its
        # first block with a message accepted. Settled before anything else reads or
        # commits the run's progress.
        self.recordings: deque[tuple[Future[None], int | None]] = deque()
        self.recorder = Recorder(
            lambda records: self.relay.records.write(self.grant, records),
            self._commit_part,
            lambda drain: read_ahead(drain),  # looked up when called: the simulation's
        )
        self.queued_to = -1  # where the checkpoint is once the commits under way land
        self.done_to: int | None = None  # last block relayed, committed or not
        self.planned = False  # some look found blocks to relay: the run is ok, not idle
        self.behind = False  # the last look stopped at RELAYER_BATCH_SIZE: look again now
        self.look_began = started  # monotonic start of the last look
        self.looked_at: datetime | None = None  # when the last successful look ended
        self.looks = 0
        start = grant.next_block if grant.next_block is not None else self.settings.start_block
        self.checkpoint = (start, grant.checkpoint_hash)  # next block, hash of the one before
        self.hashes: dict[int, str] = {}
        self.recorded: list[int] = []  # blocks of the range being relayed that have records
        self.times: dict[int, int] = {}  # block times the fetches read (lag_seconds)
        self.dispatcher = Dispatcher(
            relay.sink,
            relay.stop,
            self.settings.ordering,
            relay.dead_letters,
            replay=(*relay.replay, *((grant.replay,) if grant.replay else ())),
        )
        self.limits = RangeLimits(self.settings.batch_size, grant.rpc_limits)
        # The window ends (with hashes) the look for creations below the range read.
        self.looked_below: list[BlockRef] = []
        self.watch = Watch(
            self.settings.contracts,
            relay.factory,
            by_topic=relay.specs.topic_filter is not None,
        )
        if relay.factory is not None:
            self.lease.watch = self.watch  # the children go with each checkpoint
        # What the windows learnt of the logs read (from the last run's on): they are sized
        # by it. A density learnt reading other contracts or events is not this one's; read
        # by address alone it counts every log of the contracts (`Fetched.passed_over`),
        # as when no topic0 can be asked.
        self.watched = watch_key(
            self.settings.contracts,
            self.settings.factory.text if self.settings.factory else None,
            None if by_address(relay.specs, self.watch) else relay.specs.topic_filter,
            relay.specs.log_queries if relay.specs.filtered else None,
        )
        self.density = grant.density

    def execute(self) -> None:
        try:
            self._execute()
        except StoppedError as e:
            # A SIGTERM cut a network wait short: what was committed stays, the rest is the
            # next run's; the run is interrupted, not failed, and still releases its lease.
            log.warning("%s", e)
            summary = self.summary
            summary.interrupted = True
            summary.outcome = OK if self.planned else IDLE
            self._commit_end(self.committed_to if self.planned else None)

    def _execute(self) -> None:
        """One look; in follow mode, more every RELAYER_POLL_INTERVAL until the window
        ends (or a stop); then the last commit."""
        s = self.settings
        if self.relay.factory is not None:
            stored, covered = self.relay.state.children(self.grant)
            if covered is None and self.relay.remembered is not None:
                stored, covered = self.relay.remembered
            self.watch.restore(stored, covered)
        self._look()
        end = self.started + s.run_s
        while s.run_s > 0 and not self.relay.stop.is_set():
            due = time.monotonic() if self.behind else self.look_began + s.poll_interval_s
            if due > end and self.relay.heads is None:
                break
            self._commit_look()
            woken = self._between_looks(min(due, end))
            if self.relay.stop.is_set():
                self.summary.interrupted = True
                break
            if due > end and not woken:
                break  # the window ended before the next poll, and no head came meanwhile
            self._look()
        self.summary.outcome = OK if self.planned else IDLE
        self._commit_end(self.done_to)

    def _between_looks(self, due: float) -> bool:
        """Wait for the next look: until `due` (monotonic), or a new head announced (then
        no sooner than MIN_LOOK_GAP_S after the last look began); True when a head came.
        A stop ends the wait either way (the caller checks it)."""
        heads = self.relay.heads
        if heads is None or self.behind:
            self.relay.pause(due - time.monotonic())
            return False
        if not heads.wait(due - time.monotonic()):
            return False
        extra = self.summary.extra
        extra["woken_by_heads"] = extra.get("woken_by_heads", 0) + 1
        soonest = self.look_began + MIN_LOOK_GAP_S - time.monotonic()
        if soonest > 0:
            self.relay.pause(soonest)
        return True

    def _look(self) -> None:
        """Look at the chain once: check the checkpoint, relay what is eligible."""
        s, summary = self.settings, self.summary
        self.look_began = time.monotonic()
        for attempt in range(1, CHECK_ATTEMPTS + 1):
            next_block, anchor = self._check_checkpoint()
            self.committed_to = next_block - 1
            if self.relay.factory is not None:
                self.watch.forget_from(next_block)  # above the checkpoint: found again
            # A node behind the checkpoint (load-balanced RPC) is no reorganisation: idle.
            head = summary.head_block
            assert head is not None
            tip = safe_tip(head, s.confirmations) if s.head == "latest" else head
            if self.relay.last_block is not None:
                tip = min(tip, self.relay.last_block)
            blocks = plan_range(next_block, tip, s.batch_size)
            if blocks is None:
                if summary.from_block is None:
                    summary.from_block = next_block
                self.behind = False
                self._looked()
                return
            if summary.from_block is None or blocks.start < summary.from_block:
                summary.from_block = blocks.start
            self.planned = True
            if self.relay.factory is not None:
                self._catch_up_children(next_block)
                if (
                    anchor is None
                    and self.looked_below
                    and self.looked_below[-1].number == (next_block - 1)
                ):
                    # No checkpoint to descend from: the range must descend from what the
                    # look for creations read, or a child it found may be an orphan's.
                    anchor = self.looked_below[-1]
            try:
                done_to = self._relay(blocks, anchor)
            except ChainMovedError as e:
                if attempt == CHECK_ATTEMPTS:
                    raise
                log.warning("%s: checking the checkpoint again", e)
                self._look_again_below()
                continue
            self.done_to = done_to
            self.behind = blocks.end < tip
            self._looked()
            return

    def _look_again_below(self) -> None:
        """The chain moved under the first window: what the look for creations read since
        the newest of its window ends still on the chain is read again (the children it
        found above that block forgotten), as a rewind would for a checkpoint."""
        if not self.looked_below:
            return
        canonical = self.relay.chain.headers(r.number for r in self.looked_below)
        kept = [r for r in self.looked_below if canonical[r.number].hash == r.hash]
        back = kept[-1].number + 1 if kept else self.relay.children_from
        self.looked_below = kept
        self.watch.forget_from(back)
        self.watch.covered_to = back

    def _catch_up_children(self, start: int) -> None:
        """The factory's creations below `start` that were never looked at: for a state
        without them from genesis (a first run, a backfill's task, which stores none), from
        where they stop after `relayer reset` moved the checkpoint forward. What was read is
        stored every CATCH_UP_SAVE_S and at a stop, with the block it reached: a history
        longer than one run is read across runs, each going on where the last stopped."""
        covered = self.watch.covered_to
        begin = self.relay.children_from if covered is None else covered
        if begin >= start:
            self.watch.covered_to = start
            return
        gap = BlockRange(begin, start - 1)
        log.info(
            "looking for the factory's creations in blocks %d..%d (%d known)",
            gap.start,
            gap.end,
            len(self.watch.children),
        )
        # Windows from the batch's span, growing past it after small answers (one address,
        # one topic, in history), shrinking on a refusal, as ever.
        spans = RangeLimits(len(gap), self.limits.learned, start=self.settings.batch_size)
        lenient = self.relay.dead_letters is not None
        saved = time.monotonic()
        try:
            for end, found in creations(
                self.relay.chain, self.watch, gap, self.settings.chain_id, spans, lenient
            ):
                self._found(self.watch.add(found))
                self.watch.covered_to = end.number + 1
                self.looked_below = [*self.looked_below[-LOOKED_BELOW_KEPT + 1 :], end]
                now = time.monotonic()
                if self.relay.stop.is_set():
                    raise StoppedError("stopped while looking for the factory's creations")
                if now - saved < CATCH_UP_SAVE_S:
                    self.lease.ensure()
                else:  # stored, and said, for a long history
                    saved = now
                    self.lease.commit_children()  # renews the lease too
                    log.info(
                        "factory creations: %d%% of blocks %d..%d read, %d children",
                        100 * (end.number + 1 - gap.start) // len(gap),
                        gap.start,
                        gap.end,
                        len(self.watch.children),
                    )
        except StoppedError:
            self.lease.commit_children()  # the next run goes on from here
            raise
        self.watch.covered_to = start

    def _found(self, children: Sequence[Child]) -> None:
        if not children:
            return
        extra = self.summary.extra
        extra["children_found"] = extra.get("children_found", 0) + len(children)
        log.info(
            "factory %s created %d contracts in blocks %d..%d: %d relayed in all",
            self.watch.factory.address if self.watch.factory else "?",
            len(children),
            children[0].block_number,
            children[-1].block_number,
            len(self.watch.children),
        )

    def _looked(self) -> None:
        self.looks += 1
        self.looked_at = self.relay.clock()
        # One DEBUG record per look: coverage (the longest time between two looks) is
        # measured from these, across executions (bench, e2e).
        log.debug(
            "look %d: head %s, relayed up to %s",
            self.looks,
            self.summary.head_block,
            self.done_to if self.done_to is not None else self.committed_to,
            extra={
                "look": self.looks,
                "looked_at": self.looked_at.isoformat(),
                "run_id": self.summary.run_id,
            },
        )

    def _commit_look(self) -> None:
        """Between two looks: the checkpoint over the blocks just scanned (what
        `_commit_end` would commit), the look, and the lease renewed for the next one."""
        progress = self._lazy_progress(self.done_to)
        self.lease.commit(progress, looked_at=self.looked_at)
        self._advanced(progress)
        self.hashes = {n: h for n, h in self.hashes.items() if n > self.committed_to}
        self.times = {n: t for n, t in self.times.items() if n >= self.committed_to}

    def _commit_part(self, progress: Progress | None) -> None:
        """The checkpoint after parts whose records were written (`Recorder`)."""
        self.lease.commit(progress)
        self._advanced(progress)

    def _advanced(self, progress: Progress | None) -> None:
        """What a commit of `progress` moved: the checkpoint the next look starts from."""
        if progress is not None and progress.next_block is not None:
            self.committed_to = progress.next_block - 1
            self.checkpoint = (progress.next_block, progress.block_hash)

    def _check_checkpoint(self) -> tuple[int, BlockRef | None]:
        """The next block to relay and the block the range must descend from, after
        rewinding over a reorganisation of the relayed blocks, if there was one."""
        s, summary = self.settings, self.summary
        next_block, checkpoint_hash = self.checkpoint
        check = next_block - 1 if checkpoint_hash and next_block > 0 else None
        head, header = self.relay.chain.head_and_header(s.head, check)
        summary.head_block = head
        if header is None or check is None:
            return next_block, None  # no checkpoint yet, or a node that lags behind it
        if header.hash == checkpoint_hash:
            return next_block, header.ref
        done = rewind(
            self.relay.chain,
            self.relay.records,
            self.dispatcher,
            self.lease,
            head,
            next_block,
            header,
        )
        reorg = summary.extra.setdefault("reorg", {"depth": 0, "retracted": 0})
        reorg["depth"] += done.depth
        reorg["ancestor"] = done.ancestor
        reorg["retracted"] += done.retracted
        self.checkpoint = (done.next_block, done.ancestor_hash)
        return done.next_block, BlockRef(done.ancestor, done.ancestor_hash)

    def _relay(self, blocks: BlockRange, anchor: BlockRef | None) -> int:
        """Relay the range window by window, each chunk by chunk; the last block done (all
        of it unless stopped), its commit landed. A window is read as one consistent view
        descending from the one before (`anchor`), so the run holds one window's events,
        never the batch's."""
        try:
            done = self._relay_windows(blocks, anchor)
        except BaseException as error:
            # The failure is recorded after the commit under way has ended. That commit's
            # own failure comes first: it is of the part before (a lease taken over there is
            # a skipped run, not this part's error); a stop is no failure.
            earlier = self._settle(quietly=True)
            if (
                earlier is not None
                and earlier is not error
                and not isinstance(earlier, StoppedError)
            ):
                log.warning("after that, relaying the next part failed too: %s", scrub(str(error)))
                raise earlier from None
            raise
        self._settle()
        return done

    def _relay_windows(self, blocks: BlockRange, anchor: BlockRef | None) -> int:
        """`_relay`'s windows; the last part's record and commit may still be under way
        (`self.recordings`): a window's end does not wait for it, a part too far above it
        does (`_within_interval`)."""
        intervals = Intervals(blocks.start, self.settings.checkpoint_interval)

        def window_after(start: int, density: Density | None) -> BlockRange | None:
            if start > blocks.end:
                return None
            last = known_density(density, start, self.watched)
            return BlockRange(start, start + next_window(blocks.end - start + 1, last) - 1)

        first = window_after(blocks.start, self.density)
        assert first is not None
        span: BlockRange | None = first
        ahead: Future[Fetched] | None = None
        try:
            # Records above the checkpoint (a run killed before its commit, a first run, a
            # lane that failed while another's requests were accepted) may belong to blocks
            # the chain has since replaced: their hashes are read in the same view as the
            # logs. Asked for while the first window is read (both only read): a round trip
            # off every run. The read goes first, so that its thread waits on the node while
            # this one asks Firestore (the query's Python would hold the GIL before the read
            # is even sent).
            ahead = read_ahead(functools.partial(self._fetch, first, intervals, anchor, ()))
            recorded = self.relay.records.refs(blocks)
            # Chunks without any of them have nothing to read back: a round trip fewer each.
            self.recorded = sorted(r.number for r in recorded)
            fetched, ahead = ahead.result(), None
            mine = [r for r in recorded if r.number in first]
            if any(r.number not in fetched.hashes for r in mine):  # read with their hashes
                fetched = self._fetch(first, intervals, anchor, mine)
            while span is not None:
                mine = [r for r in recorded if r.number in span]
                if ahead is not None:
                    fetched = ahead.result()
                ahead = None
                self._took(span, fetched, mine)
                anchor = BlockRef(span.end, fetched.hashes[span.end])
                events = len(fetched.events) + len(fetched.dead) + fetched.passed_over
                density = density_after(self.density, span, events, self.watched)
                following = window_after(span.end + 1, density)
                if following is not None:  # read while this window is published
                    ahead = self._fetch_ahead(following, intervals, anchor, recorded)
                done = self._relay_window(span, fetched, intervals)
                if done < span.end:
                    return done
                self.density = density  # learnt up to the end of a window relayed whole
                span = following
            return blocks.end
        finally:
            if ahead is not None:  # stopped or failed with a read under way: let it end,
                concurrent.futures.wait([ahead], timeout=AHEAD_WAIT_S)  # it shares `limits`

    def _fetch_ahead(
        self,
        span: BlockRange,
        intervals: Intervals,
        anchor: BlockRef,
        recorded: Sequence[BlockRef],
    ) -> Future[Fetched]:
        mine = [r for r in recorded if r.number in span]
        return read_ahead(lambda: self._fetch(span, intervals, anchor, mine))

    def _fetch(
        self,
        span: BlockRange,
        intervals: Intervals,
        anchor: BlockRef | None,
        recorded: Sequence[BlockRef],
    ) -> Fetched:
        """One window's events and the hashes its commits need, in one view descending from
        `anchor` (chain reads only: it may run ahead, in another thread)."""
        return fetch(
            self.relay.chain,
            self.relay.specs,
            self.watch,
            self.settings.chain_id,
            span,
            piece_end=lambda n: intervals.piece_end(n, span),
            dead_letters=self.relay.dead_letters is not None,
            limits=self.limits,
            anchor=anchor,
            also=[r.number for r in recorded],
            transactions=self.relay.transactions,
        )

    def _took(self, span: BlockRange, fetched: Fetched, recorded: Sequence[BlockRef]) -> None:
        """A window read: its hashes and block times kept, its orphaned records retracted
        (their hashes read in the same view)."""
        orphans = [r for r in recorded if fetched.hashes.get(r.number) != r.hash]
        if orphans or self.relay.factory is not None:
            # The last window's last commit first: a retraction commits too (one commit at
            # a time), and that commit reads the children found (`Leasing.children_for`).
            self._settle()
        self.hashes.update(fetched.hashes)
        self.times.update(fetched.times)
        if self.relay.factory is not None:
            self._found(self.watch.add(fetched.children))
            self.watch.covered_to = span.end + 1
        if orphans:
            self._retract_orphans(orphans)

    def _relay_window(self, span: BlockRange, fetched: Fetched, intervals: Intervals) -> int:
        """Publish, record and commit a window chunk by chunk; the last block done (its
        commit may be under way)."""
        if not fetched.events and not fetched.dead and not self.relay.stop.is_set():
            return span.end  # no chunk to publish nor commit (see _commit_end)
        return self._relay_chunks(span, fetched, intervals)

    def _relay_chunks(self, span: BlockRange, fetched: Fetched, intervals: Intervals) -> int:
        parts = []
        for chunk in intervals.pieces(span):
            busy = sorted(
                [e.block_number for e in fetched.between(chunk)]
                + [d.block_number for d in fetched.dead_between(chunk)]
            )
            for part in cut_by_events(chunk, busy, MAX_EVENTS_PER_COMMIT):
                parts.append((part, fetched.between(part), fetched.dead_between(part)))
        upcoming: list[Sequence[Event]] = []  # each part's: the events of the next with any
        for _, events, _ in reversed(parts):
            upcoming.append(upcoming[-1] if upcoming and not events else events)
        upcoming.reverse()
        for n, (part, events, dead) in enumerate(parts):
            if self.relay.stop.is_set():
                self.summary.interrupted = True
                return part.start - 1
            if not events and not dead:
                continue  # nothing to publish: no need to commit (see _commit_end)
            last = max(
                max((e.block_number for e in events), default=-1),
                max((d.block_number for d in dead), default=-1),
            )
            self._within_interval(last)
            following = upcoming[n + 1] if n + 1 < len(parts) else ()
            done = self._publish_chunk(part, events, dead, following)
            if done < part.end:
                self.summary.interrupted = True
                return done
        return span.end

    def _within_interval(self, last: int) -> None:
        """Before a part whose last message is of block `last` is published: what a kill
        would leave published but not committed must lie within one checkpoint interval
        (docs/CONTRACT.md §7.4), so the commit under way lands first when its messages and
        the part's would span more. The part itself lies in one interval (`Intervals`), and
        the commits under way are of the parts before it: a part does not wait for them, even
        across an interval's end, unless they would span more than the interval together
        (it waits for the oldest until they do not), RECORDINGS_UNDER_WAY are under way (the
        memory they hold), or one of them failed (its error is the run's, raised now)."""
        pending = self.recordings
        while pending:
            oldest, _ = pending[0]
            if oldest.done():
                if oldest.exception() is not None:
                    self._settle()  # raises it
                pending.popleft()  # landed
                continue
            if any(f.done() and f.exception() is not None for f, _ in pending):
                self._settle()
            first = min((b for _, b in pending if b is not None), default=None)
            far = first is not None and last - first >= self.settings.checkpoint_interval
            if not far and len(pending) < RECORDINGS_UNDER_WAY:
                return
            concurrent.futures.wait([oldest])

    def _settle(self, *, quietly: bool = False) -> BaseException | None:
        """Wait for the parts being recorded and committed; the first failure is the run's,
        raised (`quietly`: returned, for a run that fails already; a commit that did not
        land moved nothing)."""
        recordings = [f for f, _ in self.recordings]
        self.recordings.clear()
        self.queued_to = -1  # landed, or the run fails: `committed_to` says (a rewind lowers it)
        if not quietly:
            for recording in recordings:
                recording.result()
            return None
        concurrent.futures.wait(recordings)
        return next((e for f in recordings if (e := f.exception()) is not None), None)

    def _retract_orphans(self, orphans: Sequence[BlockRef]) -> None:
        """Retract what was published on replaced blocks above the checkpoint (their records
        stay, marked removed); the checkpoint does not move, the counts do."""
        replaced = set(orphans)
        above = self.relay.records.read(min(r.number for r in orphans))
        records = [r for r in above if r.ref in replaced]
        retracted = retract(self.relay.records, self.dispatcher, self.lease, records)
        if not retracted:
            return  # records a rewind of this run already marked removed
        self.lease.commit(Progress(None, None, (), 0, events_retracted=retracted))
        reorg = self.summary.extra.setdefault("reorg", {"depth": 0, "retracted": 0})
        reorg["retracted"] += retracted
        reorg["orphaned_above_checkpoint"] = sorted(r.number for r in orphans)
        log.warning(
            "%d blocks above the checkpoint were replaced after their events were published "
            "(%s): %d events retracted",
            len(orphans),
            ", ".join(str(r.number) for r in orphans[:5]),
            retracted,
        )

    def _publish_chunk(
        self,
        chunk: BlockRange,
        events: Sequence[Event],
        dead: Sequence[DeadLetter],
        upcoming: Sequence[Event] = (),
    ) -> int:
        """Publish a part of a chunk; its records and commit go on in another thread while
        the next parts are published (`Recorder`), and are waited for when delivery
        stopped short. The last block done."""
        if self.lease.renewal_due():
            self._settle()  # one commit at a time: the renewal is one
            self.lease.ensure()
        existing: dict[BlockRef, BlockRecord] = {}
        if any_in(self.recorded, chunk):
            existing = {r.ref: r for r in self.relay.records.read(chunk.start, chunk.end)}
        states = states_of(existing.values())
        selection = select_unpublished(events, states)
        dead_selection = select_unpublished(dead, states)
        self.summary.duplicates_skipped += len(selection.duplicates)
        delivered = self.dispatcher.send(
            selection.to_publish,
            dead_selection.to_publish,
            self.lease.publish_deadline(),
            chain_id=self.settings.chain_id,
            relayer_id=self.settings.relayer_id,
            leased=self.lease.valid,
            upcoming=upcoming,
        )
        # Nobody asked this run to stop, yet it stopped short: a request Pub/Sub refused (the
        # requests after it are not sent), or the lease ran out under it. Only the lease's
        # end names RELAYER_LEASE_SECONDS: a refusal must say what Pub/Sub said. Read before
        # the commits renew the lease.
        stopped_short = not self.relay.stop.is_set() and delivered.stopped_before is not None
        lease_ran_out = (
            not self.relay.stop.is_set()
            and (stopped_short or delivered.failure is not None)
            and not self.lease.valid()
        ) or (stopped_short and delivered.failure is None)
        published = delivered.events_published
        self.summary.events_published += published  # accepted, whatever the commits do
        self.summary.dead_lettered += delivered.dead_lettered
        done_to = chunk.end
        if delivered.stopped_before is not None:
            done_to = min(done_to, delivered.stopped_before - 1)
        if delivered.failure is not None:
            done_to = min(done_to, delivered.failure[0] - 1)
        progress = progress_of(
            done_to,
            max(self.committed_to, self.queued_to),  # as it is once the parts before land
            self.hashes,
            events,
            published,
            delivered.dead_lettered,
        )
        now = self.relay.clock()

        def records() -> list[BlockRecord]:
            return block_records(
                delivered.published,
                existing,
                run_id=self.summary.run_id,
                now=now,
                ttl_days=self.settings.event_ttl_days,
            )

        first = min((p.block_number for p in delivered.published), default=None)
        self.recordings.append((self.recorder.put(records, progress), first))
        if delivered.stopped_before is None and delivered.failure is None:
            if progress is not None and progress.next_block is not None:
                self.queued_to = progress.next_block - 1
            return done_to
        # Cut short: recorded with the parts queued before it (a SIGTERM waits for the
        # group being written and one more, not a third write and commit), then waited for.
        self._settle()
        if delivered.failure is not None and not lease_ran_out:
            _, what, error = delivered.failure
            if isinstance(error, MessageBuildError):
                raise PublishError(
                    f"{what} could not be built ({error}); {self._relayed()}, the next run "
                    "resumes there"
                )
            raise PublishError(
                f"Pub/Sub did not accept {what}: {error}; {self._relayed()}, the next run "
                "resumes after it"
            )
        if lease_ran_out:
            # Going on would only repeat this: a lease shorter than a publish round trip
            # never relays anything.
            cause = "" if delivered.failure is None else f" ({delivered.failure[2]})"
            raise PublishError(
                f"the lease ran out while publishing (RELAYER_LEASE_SECONDS="
                f"{self.settings.lease_s:g}){cause}: {self._relayed()}; raise "
                "RELAYER_LEASE_SECONDS above the time a run needs between two commits"
            )
        return done_to

    def _relayed(self) -> str:
        start = self.summary.from_block
        if start is None or self.committed_to < start:
            return "no block relayed"
        return f"relayed up to block {self.committed_to}"

    def _lazy_progress(self, done_to: int | None) -> Progress | None:
        """The checkpoint over blocks relayed since the last commit that had no events of
        their own to commit (None: nothing new)."""
        if done_to is None or done_to <= self.committed_to:
            return None
        return progress_of(done_to, self.committed_to, self.hashes, (), 0)

    def _commit_end(self, done_to: int | None) -> None:
        """The last commit: lazy progress over empty chunks, the summary, the release."""
        progress = self._lazy_progress(done_to)
        if done_to is not None:  # what the checkpoint says is relayed, no more
            done_to = (
                progress.next_block - 1 if progress and progress.next_block else self.committed_to
            )
        summary = self.summary
        if self.settings.run_s > 0:
            summary.extra["looks"] = self.looks
        if self.dispatcher.replayed:
            summary.extra["replayed_unrecorded"] = self.dispatcher.replayed
            log.warning(
                "%d events of blocks relayed before had no record, which may have expired: "
                'they were published marked replay="true"',
                self.dispatcher.replayed,
            )
        if done_to is not None and summary.from_block is not None and done_to >= summary.from_block:
            summary.to_block = done_to
            summary.to_block_time = self.times.get(done_to)
        host = self.relay.chain.host
        if self.settings.rpc_hosts and host != self.settings.rpc_hosts[0]:
            summary.extra["rpc_host"] = host  # it failed over: say where it ended
        summary.finished_at = self.relay.clock()
        summary.duration_s = round(time.monotonic() - self.started, 3)
        limits = self.limits.to_store()
        hold = self.lease.held_until(self.dispatcher.in_doubt_until)
        if hold is not None:
            log.warning(
                "publish requests given up on may still be accepted until %s: the lease is "
                "kept until then, so no other run publishes these blocks meanwhile",
                hold.isoformat(timespec="seconds"),
            )
        if self.relay.factory is not None:
            summary.extra["children"] = len(self.watch.children)
        children = self.lease.children_for(progress)
        self.relay.state.commit(
            self.grant,
            summary.finished_at,
            Commit(
                progress=progress,
                summary=summary,
                rpc_limits=limits if limits != self.grant.rpc_limits else None,
                lease_until=hold,
                looked_at=self.looked_at,
                children=children,
                density=self.density if self.density != self.grant.density else None,
            ),
        )
        self.lease.committed(children)
