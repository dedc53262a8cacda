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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from function.core.catalogue import EventCatalogue
from function.core.decoding import decode_log, event_id
from function.core.logspan import RangeLimits
from function.core.model import BlockRef, DeadLetter, Event, Header, RawLog
from function.core.planning import BlockRange
from function.core.values import checksum
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
    contracts: Sequence[str],
    chain_id: int,
    blocks: BlockRange,
    chunks: Sequence[BlockRange],
    *,
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
    than its log's (the chain moved between the reads) reads the view again.
    """
    extra = {n for n in also if n in blocks}
    if anchor is not None:
        extra.add(anchor.number)
    limits = limits or RangeLimits(len(blocks))
    for attempt in range(1, ATTEMPTS + 1):
        before, logs = _read_logs(chain, contracts, specs, blocks, limits)
        if before is None:  # windows answered from different chains
            _again(blocks, attempt)
            continue
        events, dead = _decode_all(logs, specs, chain_id, dead_letters)
        numbers = sorted({e.block_number for e in events} | {d.block_number for d in dead})
        with_events = set(numbers)
        commit_points = {c.end for c in chunks if any_in(numbers, c)} | {blocks.end}
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
            return Fetched(events, hashes, dead, {n: h.timestamp for n, h in headers.items()})
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
    contracts: Sequence[str],
    specs: EventCatalogue,
    blocks: BlockRange,
    limits: RangeLimits,
) -> tuple[Header | None, list[RawLog]]:
    """Every log of the range, window by window, and the range end's header read with the
    first of them (one side of the consistency check); None for the header when windows
    came from different chains. Every window's request carries the range end's header: a
    node that knows that block as the first window's node did has the same blocks below
    it, so a window served by a node on another fork (a load-balanced pool) is caught.
    With RELAYER_ARG_FILTERS each window is several queries in one batch (`log_queries`)."""
    topics = specs.topic_filter
    queries = specs.log_queries if specs.filtered else None
    logs: list[RawLog] = []
    before: Header | None = None
    start = blocks.start
    while start <= blocks.end:
        limit = limits.for_host(chain.host)
        window = BlockRange(start, limit.window_end(start, blocks.end))
        try:
            headers, part = chain.logs_with_headers(
                window, contracts, topics, [blocks.end], queries
            )
        except RangeTooLargeError as e:
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
            continue
        before = before or headers[blocks.end]
        if headers[blocks.end].hash != before.hash:
            return None, []
        logs.extend(part)
        limit.answered(len(window), len(part))
        start = window.end + 1
    assert before is not None
    return before, logs


def _decode_all(
    logs: Sequence[RawLog], specs: EventCatalogue, chain_id: int, dead_letters: bool
) -> tuple[list[Event], list[DeadLetter]]:
    events: list[Event] = []
    dead: list[DeadLetter] = []
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
            block_hash = entry["blockHash"].lower()
            log_index = int(entry["logIndex"], 16)
            dead.append(
                DeadLetter(
                    event_id=event_id(chain_id, block_hash, log_index),
                    contract=checksum(entry["address"]),
                    block_number=int(entry["blockNumber"], 16),
                    block_hash=block_hash,
                    transaction_hash=entry["transactionHash"].lower(),
                    log_index=log_index,
                    reason=str(e),
                    log=entry,
                )
            )
    return events, dead


def any_in(numbers: Sequence[int], chunk: BlockRange) -> bool:
    i = bisect.bisect_left(numbers, chunk.start)
    return i < len(numbers) and numbers[i] <= chunk.end
