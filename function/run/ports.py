"""The boundaries the relay logic talks through; the real adapters are built in `wiring`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from function.core.catalogue import TopicQuery
from function.core.checkpoint import Commit, Grant
from function.core.lease import Lease
from function.core.messages import Message
from function.core.model import BlockRecord, BlockRef, Header, RawLog
from function.core.planning import BlockRange
from function.core.txfacts import TxFacts
from function.core.watch import Child


class Chain(Protocol):
    """Reads the chain (`chain.ChainReader`)."""

    @property
    def host(self) -> str: ...

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]: ...

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]: ...

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]: ...


class Transactions(Protocol):
    """Reads the transactions of a range's events (`transactions.TransactionReader`), for
    RELAYER_INCLUDE=transaction."""

    def read(self, by_block: Mapping[int, Collection[str]]) -> dict[str, TxFacts]:
        """The facts of the transactions of each block (number -> transaction hashes), by
        hash; one the node does not know is left out."""
        ...


class State(Protocol):
    """A relayer's lease, checkpoint and counters (`FirestoreState`)."""

    def acquire(
        self, run_id: str, now: datetime, lease_s: float, follow_until: datetime | None = None
    ) -> Grant | None: ...

    def read_lease(self) -> Lease: ...

    def commit(self, grant: Grant, now: datetime, change: Commit) -> None: ...

    def count_skipped(self, now: datetime) -> None: ...

    def children(self, grant: Grant) -> tuple[list[Child], int | None]:
        """RELAYER_FACTORY: the children stored with the grant's checkpoint, and the block
        up to which creations were looked for (None: never, or not by this state)."""
        ...


class Records(Protocol):
    """The processed-event set: one record per relayed block (`BlockStore`)."""

    def read(self, start: int, end: int | None = None) -> list[BlockRecord]: ...

    def refs(self, blocks: BlockRange) -> list[BlockRef]: ...

    def refs_below(self, number: int, limit: int) -> list[BlockRef]: ...

    def write(self, grant: Grant, records: Sequence[BlockRecord]) -> None: ...


class Sink(Protocol):
    """Where messages go (`publisher.Publisher`)."""

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]: ...


class Heads(Protocol):
    """New blocks announced by the endpoint (`heads.HeadWaker`): an optional wake-up
    between a follower's looks; polling stays the rule."""

    def wait(self, seconds: float) -> bool:
        """Up to `seconds` for a new head; True when one came."""
        ...

    def close(self) -> None: ...
