"""Read a range's events and the block hashes its checkpoints need, as one consistent view.

The logs and the headers come from separate calls, and the chain may reorganise between
them. The header of the range's last block is read just before the logs (same round trip)
and again with the other headers after them: when both agree, every block up to it is
unchanged in between (each hash commits to its parent), so the events, their timestamps and
the checkpoint hashes all belong to one chain. When they disagree the view is read again.

The run checked its checkpoint block before planning, but the chain may have replaced that
block since. So the checkpoint block (the `anchor`) is read again with the headers after the
logs: a range that no longer descends from it raises `ChainMovedError`, and the run checks
and rewinds before relaying anything (else it would relay the new chain on top of orphaned
records, and an event that moved below the range would be lost).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from function.core.catalogue import EventCatalogue, TopicQuery
from function.core.decoding import decode_log, event_id
from function.core.logspan import RangeLimits
from function.core.model import BlockRef, DeadLetter, Event, Header, RawLog, in_chain_order
from function.core.planning import BlockRange
from function.core.values import checksum
from function.core.watch import Child, Watch
from function.errors import ChainMovedError, DecodeError, RangeTooLargeError, RpcError
from function.run.ports import Chain, Transactions

log = logging.getLogger(__name__)

ATTEMPTS = 3
# Blocks at the range's end whose hashes are read with the range end's own (one batched call):
# they go into `recent_blocks`, so a reorganisation of the checkpoint block over blocks
# without events still finds its common ancestor among them (and not a ReorgError).
TAIL_HASHED = 8


@dataclass
class Fetched:
    """A range's decoded events in chain order, and the hashes of the blocks it will
    checkpoint at (blocks with events, chunk ends with events, the range's end and the
    blocks just below it)."""

    events: list[Event]
    hashes: dict[int, str]
    dead: list[DeadLetter] = field(default_factory=list)
    times: dict[int, int] = field(default_factory=dict)  # block times of the headers read
    children: list[Child] = field(default_factory=list)  # RELAYER_FACTORY: new, chain order
    # Logs of the answers that the topic0s asked by address alone left out: windows are
    # sized by what the node sends (`density_after`), not only by what is relayed.
    passed_over: int = 0

    def __post_init__(self) -> None:
        self._numbers = [e.block_number for e in self.events]
        self._dead_numbers = [d.block_number for d in self.dead]

    def between(self, blocks: BlockRange) -> list[Event]:
        lo = bisect.bisect_left(self._numbers, blocks.start)
        return self.events[lo : bisect.bisect_right(self._numbers, blocks.end)]

    def dead_between(self, blocks: BlockRange) -> list[DeadLetter]:
        lo = bisect.bisect_left(self._dead_numbers, blocks.start)
        return self.dead[lo : bisect.bisect_right(self._dead_numbers, blocks.end)]


def fetch(
    chain: Chain,
    specs: EventCatalogue,
    contracts: Sequence[str] | Watch,
    chain_id: int,
    blocks: BlockRange,
    *,
    piece_end: Callable[[int], int] | None = None,
    dead_letters: bool = False,
    limits: RangeLimits | None = None,
    anchor: BlockRef | None = None,
    also: Iterable[int] = (),
    transactions: Transactions | None = None,
) -> Fetched:
    """The events of `blocks` and the hashes its chunk commits need, from one chain.

    The range is read in windows the endpoint accepts (`limits`, shrunk on refusals). A
    log that cannot be decoded becomes a `DeadLetter` when `dead_letters` is on, and fails
    the run otherwise: it is never dropped silently. `anchor` is the checkpoint block the
    range must descend from; `also` names more blocks of the range whose hashes the caller
    needs from the same view (blocks with records, to find orphaned ones). With
    `transactions` (RELAYER_INCLUDE=transaction) each event gains its transaction, read
    after the headers and checked against them like the logs: one read from another block
    than its log's (the chain moved between the reads) reads the view again. `contracts`
    is a `Watch` with RELAYER_FACTORY: the children its creation events name are relayed
    from their block on in this view already, and returned (`Fetched.children`); the watch
    itself is not changed (it may be read ahead, in another thread). `piece_end(n)`: the
    last block of the piece holding block `n` (a checkpoint interval, cut by the range's
    ends), where a piece with events commits, so its hash is read too; None: the range is
    one piece.
    """
    watch = contracts if isinstance(contracts, Watch) else Watch(contracts)
    extra = {n for n in also if n in blocks}
    if anchor is not None:
        extra.add(anchor.number)
    limits = limits or RangeLimits(len(blocks))
    for attempt in range(1, ATTEMPTS + 1):
        # A creation event the ABI cannot read: with dead letters, one of them (its child
        # cannot be known; the reason says so), and the run goes on.
        unreadable: list[tuple[RawLog, DecodeError]] | None = [] if dead_letters else None
        before, logs, found, passed_over = _read_logs(
            chain, watch, specs, blocks, limits, chain_id, unreadable
        )
        if before is None:  # windows answered from different chains
            _again(blocks, attempt)
            continue
        events, dead = _decode_all(logs, specs, chain_id, dead_letters, unreadable or ())
        numbers = sorted({e.block_number for e in events} | {d.block_number for d in dead})
        with_events = set(numbers)
        ends = {piece_end(n) for n in numbers} if piece_end is not None else set()
        commit_points = ends | {blocks.end}
        untimed = {e.block_number for e in events if e.block_timestamp is None}
        tail = set(range(max(blocks.start, blocks.end - TAIL_HASHED + 1), blocks.end + 1))
        headers = chain.headers(untimed | (commit_points - with_events) | extra | tail)
        consistent = headers[blocks.end].hash == before.hash and all(
            headers[e.block_number].hash == e.block_hash
            for e in events
            if e.block_number in headers
        )
        if consistent and anchor is not None and headers[anchor.number].hash != anchor.hash:
            raise ChainMovedError(
                f"block {anchor.number} changed after the run checked it (now "
                f"{headers[anchor.number].hash}, checkpointed {anchor.hash}): the chain "
                "reorganised between the check and the read"
            )
        if consistent and transactions is not None:
            consistent = _with_transactions(transactions, events)
        if consistent:
            hashes = {d.block_number: d.block_hash for d in dead}
            hashes.update((e.block_number, e.block_hash) for e in events)
            hashes.update((n, h.hash) for n, h in headers.items())
            for e in events:
                if e.block_timestamp is None:
                    e.block_timestamp = headers[e.block_number].timestamp
            times = {n: h.timestamp for n, h in headers.items()}
            children = [Child(a, b) for a, b in found.items()]
            return Fetched(events, hashes, dead, times, children, passed_over)
        _again(blocks, attempt)
    raise RpcError(
        f"blocks {blocks.start}..{blocks.end} kept changing while being read: the chain is "
        "reorganising near its head (raise RELAYER_CONFIRMATIONS) or the RPC endpoints "
        "behind RPC_URL disagree"
    )


def _with_transactions(transactions: Transactions, events: Sequence[Event]) -> bool:
    """Give each event its transaction; False when one was not read from its log's block
    (unknown, or in another block: a reorganisation between the reads)."""
    if not events:
        return True
    by_block: dict[int, set[str]] = {}
    for e in events:
        by_block.setdefault(e.block_number, set()).add(e.transaction_hash)
    facts = transactions.read(by_block)
    for e in events:
        found = facts.get(e.transaction_hash)
        if found is None or found.block_hash != e.block_hash:
            log.info(
                "transaction %s of block %d was read %s",
                e.transaction_hash,
                e.block_number,
                "from no block" if found is None else f"from block {found.block_hash}",
            )
            return False
        e.transaction = found.as_json()
    return True


def _again(blocks: BlockRange, attempt: int) -> None:
    log.warning(
        "blocks %d..%d changed while being read (attempt %d of %d): reading them again",
        blocks.start,
        blocks.end,
        attempt,
        ATTEMPTS,
    )


def _read_logs(
    chain: Chain,
    watch: Watch,
    specs: EventCatalogue,
    blocks: BlockRange,
    limits: RangeLimits,
    chain_id: int,
    unreadable: list[tuple[RawLog, DecodeError]] | None = None,
) -> tuple[Header | None, list[RawLog], dict[str, int], int]:
    """Every relayed log of the range, window by window, the range end's header read with
    the first of them (one side of the consistency check; None when windows came from
    different chains), the children found (address -> creation block, chain order), and how
    many logs the answers held that the topic0s left out (`_topics`: asked by address
    alone, they are applied here; a refused window is asked by topic0 from then on, since
    a node may refuse what its filter would have cut).
    Every window's request carries the range end's header: a node that knows that block as
    the first window's node did has the same blocks below it, so a window served by a node
    on another fork (a load-balanced pool) is caught. With RELAYER_ARG_FILTERS each window
    is several queries in one batch (`log_queries`). With RELAYER_FACTORY a window that
    creates children asked by address list asks again for their logs from their creation
    on, in the same view."""
    # By address alone the topic0s are applied here (`local`), not by the node.
    local = specs.topic_filter if by_address(specs, watch) else None
    topics, queries = (None, None) if local is not None else _topics(specs, watch)
    logs: list[RawLog] = []
    found: dict[str, int] = {}
    before: Header | None = None
    passed_over = 0
    start = blocks.start
    while start <= blocks.end:
        limit = limits.for_host(chain.host)
        if local is not None and limit.by_topic0:
            topics, local = list(local), None
        window = BlockRange(start, limit.window_end(start, blocks.end))
        addresses = watch.addresses(found)
        # This window's unreadable creations and children: a window read again (a refusal)
        # finds them again, in the view it is read from then.
        bad: list[tuple[RawLog, DecodeError]] | None = None if unreadable is None else []
        known = len(found)
        try:
            headers, part = chain.logs_with_headers(
                window, addresses, topics, [blocks.end], queries
            )
            answered = len(part)  # what the node sent: the span's limit learns from it
            if local is not None:
                kept_logs = with_topic0s(part, local)
                passed_over += answered - len(kept_logs)
                part = kept_logs
            if watch.factory is not None:
                kept = watch.sift(part, chain_id, found, bad)
                new = list(found)[known:]
                if new and addresses is not None:  # their logs were not asked for
                    late = BlockRange(found[new[0]], window.end)
                    more_headers, more = chain.logs_with_headers(
                        late, watch.listed(new), topics, [blocks.end], queries
                    )
                    if more_headers[blocks.end].hash != headers[blocks.end].hash:
                        return None, [], {}, 0
                    kept = in_chain_order([*kept, *watch.sift(more, chain_id, found, bad)])
                    answered += len(more)
                part = kept
        except RangeTooLargeError as e:
            for child in list(found)[known:]:
                del found[child]
            if local is not None:  # the logs of events the ABI lacks may be what is too many
                log.info(
                    "%s: eth_getLogs by address alone refused over %d blocks: this run asks "
                    "for the topic0s from here on",
                    e.host,
                    len(window),
                )
                limits.for_host(e.host).by_topic0 = True
                continue
            _refused(limits, window, e)
            continue
        before = before or headers[blocks.end]
        if headers[blocks.end].hash != before.hash:
            return None, [], {}, 0
        logs.extend(part)
        if unreadable is not None and bad:
            unreadable.extend(bad)
        limit.answered(len(window), answered)
        start = window.end + 1
    assert before is not None
    return before, logs, found, passed_over


def with_topic0s(logs: list[RawLog], topic0s: Sequence[str]) -> list[RawLog]:
    """The logs whose first topic is one of `topic0s`, as a node's topic filter keeps them
    (`catalogue.query_matches`); `logs` itself when that is all of them."""
    wanted = frozenset(t.lower() for t in topic0s)
    kept = [e for e in logs if (t := e["topics"]) and (t[0] in wanted or t[0].lower() in wanted)]
    return logs if len(kept) == len(logs) else kept


def _refused(limits: RangeLimits, window: BlockRange, e: RangeTooLargeError) -> None:
    """Learn a refused span (the next window is smaller), or fail when not even one block
    is accepted."""
    if not limits.for_host(e.host).refused_range(window.start, window.end, e.failure):
        raise RpcError(
            f"{e}: the endpoint refuses even one block's logs; use an endpoint or plan "
            "without such a limit"
        ) from e
    log.info(
        "%s: eth_getLogs over %d blocks refused, now %d",
        e.host,
        len(window),
        limits.for_host(e.host).span,
    )


def creations(
    chain: Chain,
    watch: Watch,
    blocks: BlockRange,
    chain_id: int,
    limits: RangeLimits,
    lenient: bool = False,
) -> Iterator[tuple[BlockRef, list[Child]]]:
    """RELAYER_FACTORY: window by window (its end and that block's hash, as read with it),
    the new children the factory created in `blocks`,
    in chain order, from its creation events alone (a first run's look below START_BLOCK, a
    backfill's, a gap `relayer reset` left): the caller keeps what each window found before
    the next is read, so a long history is read once even across runs. Deep history: no
    consistency check, a reorganisation there is no concern of a relayer. A creation event
    the ABI cannot read fails it, or with `lenient` (RELAYER_DEADLETTER_TOPIC) is logged
    and passed over: it lies below what the run relays, nothing is published of it."""
    factory = watch.factory
    assert factory is not None
    start = blocks.start
    while start <= blocks.end:
        limit = limits.for_host(chain.host)
        window = BlockRange(start, limit.window_end(start, blocks.end))
        try:
            ends, part = chain.logs_with_headers(window, [factory.address], [factory.topic0], [])
        except RangeTooLargeError as e:
            _refused(limits, window, e)
            continue
        found: dict[str, int] = {}
        unreadable: list[tuple[RawLog, DecodeError]] | None = [] if lenient else None
        watch.sift(part, chain_id, found, unreadable)
        for _, error in unreadable or ():
            log.warning("passed over below the relayed range: %s", error)
        limit.answered(len(window), len(part))
        start = window.end + 1
        yield ends[window.end].ref, [Child(a, b) for a, b in found.items()]


def by_address(specs: EventCatalogue, watch: Watch) -> bool:
    """Whether a run's reads ask by address alone and apply the topic0s themselves: every
    event relayed (`every_event`), a topic0 to apply (no anonymous event selected), and no
    factory (whose many children are read by topic alone). A node tests each block's bloom
    filter for each topic0 asked: the escrow's six made anvil's scan of empty blocks 15%
    slower."""
    return watch.factory is None and specs.every_event and specs.topic_filter is not None


def _topics(
    specs: EventCatalogue, watch: Watch
) -> tuple[list[str] | None, tuple[TopicQuery, ...] | None]:
    """The topics of each window's eth_getLogs: the selected events', and with a factory
    its creation event's, selected or not (the children are learnt from it). Not asked for
    reads by address alone (`by_address`)."""
    topics = specs.topic_filter
    queries = specs.log_queries if specs.filtered else None
    factory = watch.factory
    if factory is None or topics is None:  # None: every log of the addresses already
        return topics, queries
    if factory.topic0 not in topics:
        topics = [*topics, factory.topic0]
    # Every creation, whatever RELAYER_ARG_FILTERS says of the event: they choose what is
    # relayed, not which children are.
    plain = [q for q in queries or () if len(q) == 1 and q[0] is not None]
    if queries is not None and not any(factory.topic0 in q[0] for q in plain if q[0]):
        queries = (*queries, ((factory.topic0,),))
    return topics, queries


def _decode_all(
    logs: Sequence[RawLog],
    specs: EventCatalogue,
    chain_id: int,
    dead_letters: bool,
    unreadable: Sequence[tuple[RawLog, DecodeError]] = (),
) -> tuple[list[Event], list[DeadLetter]]:
    events: list[Event] = []
    dead = [_dead_letter(entry, str(e), chain_id) for entry, e in unreadable]
    for entry in logs:
        try:
            event = decode_log(entry, specs, chain_id)
            if event is not None:  # None: an unselected event's log (no topic filter ran)
                events.append(event)
        except DecodeError as e:
            if not dead_letters:
                raise DecodeError(
                    f"{e}; set RELAYER_DEADLETTER_TOPIC to send such logs aside and relay the rest"
                ) from e
            dead.append(_dead_letter(entry, str(e), chain_id))
    if unreadable:  # in chain order, as the chunks take them
        dead.sort(key=lambda d: (d.block_number, d.log_index))
    return events, dead


def _dead_letter(entry: RawLog, reason: str, chain_id: int) -> DeadLetter:
    block_hash = entry["blockHash"].lower()
    log_index = int(entry["logIndex"], 16)
    return DeadLetter(
        event_id=event_id(chain_id, block_hash, log_index),
        contract=checksum(entry["address"]),
        block_number=int(entry["blockNumber"], 16),
        block_hash=block_hash,
        transaction_hash=entry["transactionHash"].lower(),
        log_index=log_index,
        reason=reason,
        log=entry,
    )


def any_in(numbers: Sequence[int], chunk: BlockRange) -> bool:
    i = bisect.bisect_left(numbers, chunk.start)
    return i < len(numbers) and numbers[i] <= chunk.end
