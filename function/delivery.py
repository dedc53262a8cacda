"""Hand messages to Pub/Sub block by block and learn, per message, whether it was accepted.

A block is the unit of progress: the run stops handing over new blocks once a stop is
asked, and the checkpoint can only move past a block whose every message was accepted.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .blockdocs import Published
from .messages import Message, attributes_of, build_message, encode, ordering_key
from .ports import Sink
from .records import Event
from .stopping import StopSignal


@dataclass
class Delivered:
    """What Pub/Sub accepted of a chunk, and where delivery stopped short, if it did."""

    published: list[Published] = field(default_factory=list)
    failure: tuple[Event, BaseException] | None = None
    stopped_before: int | None = None  # first block not handed over because of a stop


class Courier:
    """Publishes events or retractions through a `Sink`, honouring stops and deadlines."""

    def __init__(self, sink: Sink, stop: StopSignal, ordering: bool) -> None:
        self._sink = sink
        self._stop = stop
        self._ordering = ordering

    def send_events(self, events: Sequence[Event], deadline: Callable[[], float]) -> Delivered:
        """Publish events in chain order; everything handed over is awaited."""
        delivered = Delivered()
        sent: list[tuple[Event, Message]] = []
        futures: list[concurrent.futures.Future[str]] = []
        for block, group in _by_block(events):
            if self._stop.is_set():
                delivered.stopped_before = block
                break
            messages = [build_message(e, ordering=self._ordering) for e in group]
            futures.extend(self._sink.submit(messages))
            sent.extend(zip(group, messages, strict=True))
        results = self._sink.wait(futures, deadline)
        for (event, message), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                delivered.failure = delivered.failure or (event, result)
                self._sink.resume(message.ordering_key)
            else:
                delivered.published.append(_published(event, message, result))
        return delivered

    def send_payloads(
        self, payloads: Sequence[dict[str, Any]], deadline: Callable[[], float]
    ) -> list[str | BaseException]:
        """Publish ready-made §3 payloads (retractions), all awaited."""
        messages = [
            Message(
                encode(p),
                attributes_of(p),
                ordering_key(p["chain_id"], p["contract"]) if self._ordering else "",
            )
            for p in payloads
        ]
        results = self._sink.wait(self._sink.submit(messages), deadline)
        for message, result in zip(messages, results, strict=True):
            if isinstance(result, BaseException):
                self._sink.resume(message.ordering_key)
        return results


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
