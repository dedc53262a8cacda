"""A chain in memory behind the `Chain` port: blocks with `Tick` logs, reorganisations of any
depth, nodes that lag or serve an older fork, repeated logs, refused ranges.

It answers like `function.adapters.chain.ChainReader` does after its checks: a block the node
does not know is an `RpcError`, a head past the asked block gives no header, repeated logs
are dropped (`unique_logs`), logs come sorted by block and index, a range over the
provider's limit is a `RangeTooLargeError` carrying the limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from devstack.sim.events import CONTRACT, CREATED, TOPIC0, word
from function.core.catalogue import TopicQuery, query_matches
from function.core.model import Header, RawLog, unique_logs
from function.core.planning import BlockRange
from function.core.provider_errors import Failure, FailureKind
from function.errors import RangeTooLargeError, RpcError

HOST = "fake-rpc"
Emitted = tuple[str, Sequence[str], str]  # a log of any contract: address, topics, data


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    parent: str
    timestamp: int
    logs: tuple[RawLog, ...]

    @property
    def header(self) -> Header:
        return Header(self.number, self.hash, self.timestamp)


@dataclass
class ChainView:
    """What one node answers: a canonical chain (maybe an older one), maybe cut short."""

    blocks: Sequence[Block]
    host: str = HOST
    duplicates: bool = False  # repeat every log in eth_getLogs answers
    max_span: int | None = None  # most blocks one eth_getLogs may span

    @property
    def head(self) -> int:
        return len(self.blocks) - 1

    def _block(self, number: int) -> Block:
        if not 0 <= number <= self.head:
            raise RpcError(f"the node on {self.host} does not know block {number} (it lags)")
        return self.blocks[number]

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        head = self.head
        if number is None or number > head:
            return head, None
        return head, self._block(number).header

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        return {n: self._block(n).header for n in sorted(set(numbers))}

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        if self.max_span is not None and len(blocks) > self.max_span:
            raise RangeTooLargeError(
                self.host,
                f"block range exceeds {self.max_span}",
                Failure(FailureKind.RANGE_TOO_LARGE, max_range=self.max_span),
            )
        headers = self.headers([*header_numbers, blocks.end])
        wanted = None if addresses is None else {a.lower() for a in addresses}
        logs = [
            entry
            for n in range(blocks.start, blocks.end + 1)
            for entry in self._block(n).logs
            if (wanted is None or entry["address"] in wanted)
            and (
                query_matches(None if topic0s is None else (tuple(topic0s),), entry["topics"])
                if queries is None
                else any(query_matches(q, entry["topics"]) for q in queries)
            )
        ]
        if self.duplicates:
            logs = [copy for entry in logs for copy in (entry, dict(entry))]  # type: ignore[misc]
        kept = unique_logs(logs)
        kept.sort(key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16)))
        return headers, kept


@dataclass
class FakeChain:
    """The world's chain: every block ever made, the canonical chain and its history."""

    contract: str = CONTRACT
    salt: str = "sim"
    host: str = HOST
    lag: int = 0  # the node answers this many blocks behind the head
    duplicates: bool = False
    max_span: int | None = None
    # The factory world: `contract` creates children (`Created`) and they emit the ticks, a
    # new child's first tick before its creation log (a constructor's), others after.
    factory: bool = False
    fail_next: list[BaseException] = field(default_factory=list)  # raised by the next calls
    by_hash: dict[str, Block] = field(default_factory=dict)
    canonical: list[Block] = field(default_factory=list)
    history: list[tuple[Block, ...]] = field(default_factory=list)  # earlier canonical chains
    _made: int = 0
    _ticks: int = 0

    def __post_init__(self) -> None:
        if not self.canonical:
            self._append(0)  # genesis, without events, never reorganised

    # -- making blocks -------------------------------------------------------------
    def _append(self, events: int, raw: Sequence[Emitted] = ()) -> Block:
        number = len(self.canonical)
        parent = self.canonical[-1].hash if self.canonical else "0x" + "00" * 32
        self._made += 1
        digest = hashlib.sha256(f"{self.salt}:{number}:{parent}:{self._made}".encode()).hexdigest()
        block_hash = "0x" + digest
        logs: list[RawLog] = []
        emitters = self._emitters(events)
        for index in range(events):
            self._ticks += 1
            tx = hashlib.sha256(f"tx:{self.salt}:{self._ticks}".encode()).hexdigest()
            address, topics, data = emitters[index]
            logs.append(
                {
                    "address": address,
                    "topics": topics or [TOPIC0, word(self._ticks)],
                    "data": data or word(self._ticks * 7),
                    "blockNumber": hex(number),
                    "blockHash": block_hash,
                    "transactionHash": "0x" + tx,
                    "transactionIndex": hex(index),
                    "logIndex": hex(index),
                    "removed": False,
                }
            )
        for address, raw_topics, data in raw:  # after the ticks, in their own transactions
            self._ticks += 1
            tx = hashlib.sha256(f"tx:{self.salt}:{self._ticks}".encode()).hexdigest()
            index = len(logs)
            logs.append(
                {
                    "address": address.lower(),
                    "topics": [t.lower() for t in raw_topics],
                    "data": data,
                    "blockNumber": hex(number),
                    "blockHash": block_hash,
                    "transactionHash": "0x" + tx,
                    "transactionIndex": hex(index),
                    "logIndex": hex(index),
                    "removed": False,
                }
            )
        block = Block(number, block_hash, parent, 1_700_000_000 + 12 * number, tuple(logs))
        self.by_hash[block_hash] = block
        self.canonical.append(block)
        return block

    def mine(self, events: Sequence[int]) -> list[Block]:
        """One block per entry, with that many events."""
        self._remember()
        return [self._append(n) for n in events]

    def _emitters(self, events: int) -> list[tuple[str, list[str], str]]:
        """Who emits each log of the next block: the contract, or in the factory world a
        child of this fork (a creation first, when none exists yet or every fourth log)."""
        if not self.factory:
            return [(self.contract.lower(), [], "")] * events
        children = [
            "0x" + entry["data"][-40:]
            for block in self.canonical
            for entry in block.logs
            if entry["topics"][0] == CREATED
        ]
        out: list[tuple[str, list[str], str]] = []
        while len(out) < events:
            n = self._ticks + len(out)
            if not children or n % 4 == 0:
                child = "0x" + hashlib.sha256(f"child:{self.salt}:{n}".encode()).hexdigest()[:40]
                creation = (self.contract.lower(), [CREATED, word(n)], "0x" + "00" * 12 + child[2:])
                if len(out) + 1 < events:
                    out.append((child, [], ""))  # its constructor's tick, before the creation
                out.append(creation)
                children.append(child)
            else:
                out.append((children[n % len(children)], [], ""))
        return out

    def mine_logs(self, blocks: Sequence[Sequence[Emitted]]) -> list[Block]:
        """One block per entry, with these logs of any contract (address, topics, data)."""
        self._remember()
        return [self._append(0, raw) for raw in blocks]

    def reorg(self, depth: int, events: Sequence[int]) -> list[Block]:
        """Replace the newest `depth` blocks (never genesis) by `len(events)` new ones."""
        depth = max(0, min(depth, len(self.canonical) - 1))
        self._remember()
        del self.canonical[len(self.canonical) - depth :]
        return [self._append(n) for n in events]

    def _remember(self) -> None:
        self.history.append(tuple(self.canonical))
        del self.history[:-8]

    # -- reading -------------------------------------------------------------------
    @property
    def head(self) -> int:
        return len(self.canonical) - 1

    def view(self, older: int = 0, lag: int = 0) -> ChainView:
        """A node's answers: `older` chains back in history, `lag` blocks behind its head."""
        chain: Sequence[Block] = self.canonical
        if older and self.history:
            chain = self.history[-min(older, len(self.history))]
        chain = chain[: max(1, len(chain) - lag)]
        return ChainView(chain, self.host, self.duplicates, self.max_span)

    def ancestry(self, block_hash: str, down_to: int) -> list[Block]:
        """The blocks from `down_to` up to the one with `block_hash`, on its own fork."""
        out: list[Block] = []
        block = self.by_hash.get(block_hash)
        while block is not None and block.number >= down_to:
            out.append(block)
            block = self.by_hash.get(block.parent)
        return out[::-1]

    def _node(self) -> ChainView:
        if self.fail_next:
            raise self.fail_next.pop(0)
        return self.view(lag=self.lag)

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        return self._node().head_and_header(tag, number)

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        return self._node().headers(numbers)

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        return self._node().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)
