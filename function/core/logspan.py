"""How many blocks one eth_getLogs may span on an endpoint: learned, remembered, regrown.

Pure: `fetching` reports refusals and answers, this decides the next window. The learned
span is kept per endpoint host in Firestore, so the next run starts at what worked instead
of failing again; after a streak of small answers the span doubles (up to the batch), so a
temporary or too cautious limit does not stay forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from function.core.provider_errors import Failure, next_range

SMALL_ANSWER = 2_000  # logs: far below every provider's result cap
GROW_AFTER = 4  # small answers in a row before trying a wider span


@dataclass
class RangeLimit:
    """The span for one endpoint, within 1..ceiling (the batch size)."""

    ceiling: int
    span: int = 0
    refused: bool = False  # a refusal in this run: grow no more, the limit is real
    # A read by address alone refused in this run: the endpoint caps what the topic0s
    # would have cut, so the run's later reads ask for them (`fetching._read_logs`).
    by_topic0: bool = False
    _small_streak: int = 0

    def __post_init__(self) -> None:
        self.span = min(self.span or self.ceiling, self.ceiling)

    def window_end(self, start: int, end: int) -> int:
        return min(end, start + self.span - 1)

    def refused_range(self, start: int, end: int, failure: Failure) -> bool:
        """Shrink after a refusal of start..end; False when it cannot shrink any more."""
        new_end = next_range(start, end, failure)
        if new_end >= end:
            return False
        self.span = new_end - start + 1
        self.refused = True
        self._small_streak = 0
        return True

    def answered(self, blocks: int, logs: int) -> None:
        """A window of `blocks` came back with `logs` logs."""
        if blocks < self.span or logs >= SMALL_ANSWER:
            self._small_streak = 0
            return
        self._small_streak += 1
        if self._small_streak >= GROW_AFTER and not self.refused and self.span < self.ceiling:
            self.span = min(self.ceiling, self.span * 2)
            self._small_streak = 0


@dataclass
class RangeLimits:
    """One `RangeLimit` per endpoint host; what to store of them."""

    ceiling: int
    learned: Mapping[str, int] = field(default_factory=dict)
    # The first span of a host with none learned (0: the ceiling). Below the ceiling for a
    # read much wider than a batch (a factory's history): a node that times out on a span
    # refuses nothing, so the span starts small and grows after small answers.
    start: int = 0
    _by_host: dict[str, RangeLimit] = field(default_factory=dict)

    def for_host(self, host: str) -> RangeLimit:
        if host not in self._by_host:
            span = int(self.learned.get(host, 0)) or self.start
            self._by_host[host] = RangeLimit(self.ceiling, span)
        return self._by_host[host]

    def to_store(self) -> dict[str, int]:
        """Spans below the batch size are limits worth remembering; the rest are not."""
        stored = {h: s for h, s in self.learned.items() if h not in self._by_host}
        stored.update((h, r.span) for h, r in self._by_host.items() if r.span < self.ceiling)
        return stored
