"""Hand messages to Pub/Sub block by block and learn, per message, whether it was accepted.

A block is the unit of progress: the run stops handing over new blocks once a stop is
asked, and the checkpoint can only move past a block whose every message was accepted.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, NamedTuple

from .blockdocs import Published
from .guard import DEADLETTERED, PUBLISHED
from .messages import (
    Message,
    attributes_of,
    build_message,
    dead_letter_message,
    encode,
    ordering_key,
)
from .ports import Sink
from .records import DeadLetter, Event
from .stopping import StopSignal


@dataclass
class Delivered:
    """What Pub/Sub accepted of a chunk, and where delivery stopped short, if it did."""

    published: list[Published] = field(default_factory=list)
    failure: tuple[int, str, BaseException] | None = None  # block, what, error
    stopped_before: int | None = None  # first block not handed over because of a stop

    @property
    def events_published(self) -> int:
        return sum(1 for p in self.published if p.state == PUBLISHED)

    @property
    def dead_lettered(self) -> int:
        return sum(1 for p in self.published if p.state == DEADLETTERED)


class _Outgoing(NamedTuple):
    block_number: int
    log_index: int
    message: Message
    dead_letter: bool
    record: Callable[[str], Published]
    label: str


class Courier:
    """Publishes events, dead letters and retractions, honouring stops and deadlines."""

    def __init__(
        self, sink: Sink, stop: StopSignal, ordering: bool, dead_letters: Sink | None = None
    ) -> None:
        self._sink = sink
        self._dead_sink = dead_letters
        self._stop = stop
        self._ordering = ordering

    def send(
        self,
        events: Sequence[Event],
        dead: Sequence[DeadLetter],
        deadline: Callable[[], float],
        *,
        chain_id: int,
        relayer_id: str,
        leased: Callable[[], bool] = lambda: True,
    ) -> Delivered:
        """Publish in chain order, block by block; everything handed over is awaited.

        Before each block the run must still be asked to go on and still hold its lease: a
        run that was frozen (a stalled VM, a debugger) past its lease hands nothing more
        over, since another run may have taken over those blocks.
        """
        outgoing = [self._event(e) for e in events]
        outgoing += [self._dead(d, chain_id, relayer_id) for d in dead]
        outgoing.sort(key=lambda o: (o.block_number, o.log_index))
        delivered = Delivered()
        sent: list[_Outgoing] = []
        futures: list[concurrent.futures.Future[str]] = []
        for block, group in groupby(outgoing, key=lambda o: o.block_number):
            if self._stop.is_set():
                delivered.stopped_before = block
                break
            for item in group:
                if not leased():  # checked per message: a stall can come mid-block
                    delivered.stopped_before = block
                    break
                sink = self._dead_sink if item.dead_letter and self._dead_sink else self._sink
                futures.extend(sink.submit([item.message]))
                sent.append(item)
            if delivered.stopped_before is not None:
                break
        results = self._wait(futures, deadline)
        for item, result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                delivered.failure = delivered.failure or (item.block_number, item.label, result)
                self._sink.resume(item.message.ordering_key)
            else:
                delivered.published.append(item.record(result))
        return delivered

    def _wait(
        self, futures: Sequence[concurrent.futures.Future[str]], deadline: Callable[[], float]
    ) -> list[str | BaseException]:
        # Any sink's wait handles any future: they are all concurrent.futures.Future.
        return self._sink.wait(futures, deadline)

    def _event(self, e: Event) -> _Outgoing:
        message = build_message(e, ordering=self._ordering)
        return _Outgoing(
            e.block_number,
            e.log_index,
            message,
            False,
            lambda message_id: _published(e, message, message_id),
            f"event {e.event_id} ({e.name})",
        )

    def _dead(self, d: DeadLetter, chain_id: int, relayer_id: str) -> _Outgoing:
        message = dead_letter_message(d, chain_id, relayer_id)
        return _Outgoing(
            d.block_number,
            d.log_index,
            message,
            True,
            lambda message_id: Published(
                d.event_id,
                d.block_number,
                d.block_hash,
                d.log_index,
                d.transaction_hash,
                "",
                message_id,
                message.data.decode(),
                DEADLETTERED,
            ),
            f"dead letter {d.event_id}",
        )

    def send_payloads(
        self,
        payloads: Sequence[dict[str, Any]],
        deadline: Callable[[], float],
        *,
        replay: bool = False,
    ) -> list[str | BaseException]:
        """Publish ready-made §3 payloads (retractions, replays), all awaited."""
        messages = [
            Message(
                encode(p),
                attributes_of(p, replay=replay),
                ordering_key(p["chain_id"], p["contract"]) if self._ordering else "",
            )
            for p in payloads
        ]
        results = self._sink.wait(self._sink.submit(messages), deadline)
        for message, result in zip(messages, results, strict=True):
            if isinstance(result, BaseException):
                self._sink.resume(message.ordering_key)
        return results


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
