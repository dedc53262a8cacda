"""A backfill's messages as docs/CONTRACT.md §3 says: `backfill="true"`, no ordering key."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from function.core.backfills import as_backfill
from function.core.messages import Message
from function.run.ports import Sink


class BackfillSink:
    """The relay's sink, each message marked as a backfill's on its way (retractions too:
    a backfill sends them)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        return self._sink.publish([as_backfill(m) for m in messages], deadline)
