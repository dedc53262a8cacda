"""The boundaries the relay logic talks through; the real adapters are built in `wiring`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from function.core.checkpoint import Grant, Progress
from function.core.messages import Message
from function.core.model import BlockRef, Header, RawLog
from function.core.planning import BlockRange
from function.core.summary import RunSummary


class Chain(Protocol):
    """Reads the chain (`chain.ChainReader`)."""

    @property
    def host(self) -> str: ...

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]: ...

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]: ...

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str],
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
    ) -> tuple[dict[int, Header], list[RawLog]]: ...


class State(Protocol):
    """Lease, checkpoint and processed-event set (`state.FirestoreState`)."""

    def acquire(self, run_id: str, now: datetime, lease_s: float) -> Grant | None: ...

    def processed(self, blocks: BlockRange) -> dict[str, list[dict[str, Any]]]: ...

    def recorded_blocks(self, blocks: BlockRange) -> list[BlockRef]: ...

    def recorded_below(self, number: int, limit: int) -> list[BlockRef]: ...

    def blocks_from(self, start: int) -> list[tuple[str, dict[str, Any]]]: ...

    def record(self, grant: Grant, records: Sequence[tuple[str, dict[str, Any]]]) -> None: ...

    def commit(
        self,
        grant: Grant,
        now: datetime,
        *,
        progress: Progress | None = None,
        lease_until: datetime | None = None,
        summary: RunSummary | None = None,
        rpc_limits: dict[str, int] | None = None,
    ) -> None: ...

    def count_skipped(self, now: datetime) -> None: ...


class Sink(Protocol):
    """Where messages go (`publisher.Publisher`)."""

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]: ...
