"""Send messages to Pub/Sub in chain order and learn, per message, whether it was accepted.

A block is the unit of progress: the run stops starting new blocks once a stop is asked,
stops sending anything once its lease runs out or a request fails, and the checkpoint can
only move past a block whose every message was accepted.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from function.core.batches import (
    MAX_BYTES,
    MAX_MESSAGES,
    Request,
    message_size,
    requests_of,
)
from function.core.blockrecords import Published
from function.core.messages import (
    Message,
    attributes_of,
    build_message,
    dead_letter_message,
    encode,
    ordering_key,
)
from function.core.model import DEADLETTERED, PUBLISHED, DeadLetter, Event
from function.core.planning import BlockRange
from function.errors import InDoubtError, MessageBuildError, NotSentError
from function.run.ports import Sink
from function.stopping import StopSignal

MAX_IN_FLIGHT = 4  # requests at once (one per ordering key): enough to keep Pub/Sub busy
_POLL_S = 0.2  # how often a wait looks at the deadline again (a SIGTERM shortens it)


@dataclass
class Delivered:
    """What Pub/Sub accepted of a chunk, and where delivery stopped short, if it did."""

    published: list[Published] = field(default_factory=list)
    failure: tuple[int, str, BaseException] | None = None  # block, what, error
    stopped_before: int | None = None  # first block not wholly sent: a stop, the lease, a failure

    @property
    def events_published(self) -> int:
        return sum(1 for p in self.published if p.state == PUBLISHED)

    @property
    def dead_lettered(self) -> int:
        return sum(1 for p in self.published if p.state == DEADLETTERED)


class _Outgoing(NamedTuple):
    """One message on its way, with what its record and an error about it need (built
    when needed: one is made per message, and a closure and a label each cost as much as
    the rest)."""

    block_number: int
    message: Message
    lane: tuple[bool, str]  # (to the events' topic, ordering key): what may share a request
    source: Event | DeadLetter


class Dispatcher:
    """Publishes events, dead letters and retractions, honouring stops and deadlines."""

    def __init__(
        self,
        sink: Sink,
        stop: StopSignal,
        ordering: bool,
        dead_letters: Sink | None = None,
        in_flight: int = MAX_IN_FLIGHT,
        replay: Sequence[BlockRange] = (),
    ) -> None:
        self._sink = sink
        self._dead_sink = dead_letters
        self._stop = stop
        self._ordering = ordering
        self._in_flight = in_flight
        self._replay = replay  # events sent here were maybe published before: say so
        self.replayed = 0
        # The first messages of the part to be sent next, built while the last request of
        # the part before was on the wire (`_build_ahead`): by the event's id, with the event.
        self._ahead: dict[int, tuple[Event, Message]] = {}
        # Requests given up on while still in flight may be accepted until this monotonic
        # instant: the run must keep its lease until then (docs/CONTRACT.md §7.5).
        self.in_doubt_until: float | None = None

    def send(
        self,
        events: Sequence[Event],
        dead: Sequence[DeadLetter],
        deadline: Callable[[], float],
        *,
        chain_id: int,
        relayer_id: str,
        leased: Callable[[], bool] = lambda: True,
        upcoming: Sequence[Event] = (),
    ) -> Delivered:
        """Publish in chain order; learn the fate of every message sent. `upcoming`: the
        events of the part to be sent next, whose first request is built while this part's
        last one is on the wire (as within a part).

        Before each request the run must still be asked to go on and still hold its lease:
        a run that was frozen past its lease sends nothing more, since another run may have
        taken over those blocks. A block cut short is recorded as far as it went, and the
        checkpoint stays before it.
        """
        order: list[Event | DeadLetter] = sorted([*events, *dead], key=_chain_position)

        building: list[Event | DeadLetter] = []  # the last one whose message was begun

        def outgoing() -> Iterator[_Outgoing]:
            # Built as the requests are cut: the next request's messages while the last
            # request is on the wire (`_dispatch`), not all of them before the first goes.
            for item in order:
                building[:] = [item]
                if isinstance(item, Event):
                    yield self._event(item)
                else:
                    yield self._dead(item, chain_id, relayer_id)

        requests: list[Request[_Outgoing]] = []
        unbuilt: list[Exception] = []
        delivered = Delivered()
        outcomes = self._dispatch(
            requests_of(
                outgoing(),
                group_of=_lane_of,
                size_of=_size_of,
                max_messages=MAX_MESSAGES,
                max_bytes=MAX_BYTES,
            ),
            deadline,
            leased,
            cut=requests,
            unbuilt=unbuilt,
            meanwhile=(lambda: self._build_ahead(upcoming)) if upcoming else None,
        )
        for request, outcome in zip(requests, outcomes, strict=True):
            for item, result in zip(request.items, _each(outcome, request), strict=True):
                # A request in doubt because a stop cut the wait short is a stop, not a
                # failure: the checkpoint stays before its block, and the run ends well.
                stopped = isinstance(result, NotSentError) or (
                    isinstance(result, InDoubtError) and self._stop.is_set()
                )
                if stopped:
                    if delivered.stopped_before is None:
                        delivered.stopped_before = item.block_number
                elif isinstance(result, BaseException):
                    delivered.failure = delivered.failure or (
                        item.block_number, _label(item.source), result
                    )  # fmt: skip
                else:
                    delivered.published.append(_published(item.source, item.message, result))
        built = sum(len(r.items) for r in requests)
        if built < len(order):  # a message could not be built: nothing from it on went out
            failing = building[0] if building else order[built]  # maybe after the first unsent
            kind = "dead letter" if isinstance(failing, DeadLetter) else "event"
            cause = unbuilt[0] if unbuilt else RuntimeError("left out of every request")
            error = MessageBuildError(f"{type(cause).__name__}: {cause}")
            delivered.failure = delivered.failure or (
                order[built].block_number, f"the message of {kind} {failing.event_id}", error
            )  # fmt: skip
        return delivered

    def send_payloads(
        self,
        payloads: Sequence[dict[str, Any]],
        deadline: Callable[[], float],
        *,
        replay: bool = False,
    ) -> list[str | BaseException]:
        """Publish ready-made §3 payloads (retractions, replays): the id or error of each."""
        messages = [
            Message(
                encode(p),
                attributes_of(p, replay=replay),
                ordering_key(p["chain_id"], p["contract"]) if self._ordering else "",
            )
            for p in payloads
        ]
        requests = list(
            requests_of(
                messages,
                group_of=lambda m: m.ordering_key,
                size_of=message_size,
                max_messages=MAX_MESSAGES,
                max_bytes=MAX_BYTES,
            )
        )
        outcomes = self._dispatch(requests, deadline, lambda: True, sink_of=lambda _: self._sink)
        return [r for q, o in zip(requests, outcomes, strict=True) for r in _each(o, q)]

    @property
    def stopping(self) -> bool:
        """True once the run was asked to stop."""
        return self._stop.is_set()

    def _sink_of(self, item: _Outgoing) -> Sink:
        return self._sink if item.lane[0] else self._dead_sink or self._sink

    def _dispatch(
        self,
        requests: Iterable[Request[Any]],
        deadline: Callable[[], float],
        leased: Callable[[], bool],
        sink_of: Callable[[Any], Sink] | None = None,
        cut: list[Request[Any]] | None = None,
        unbuilt: list[Exception] | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> list[list[str] | BaseException]:
        """Send requests in order, one at a time per lane and a few at once in all; stop
        sending after a failure, a stop or the lease's end. Requests never sent get a
        `NotSentError`; requests still in flight at the deadline get a `PublishError`.
        `requests` is taken one at a time, the next one while the last is in flight; each
        is appended to `cut` as it is taken (the outcomes are in that order). A request
        that cannot be built (its iterator raises) halts sending like a failure; its error
        goes to `unbuilt`, and the requests after it are never taken. `meanwhile` is called
        once, when every request is taken and some are still in flight."""
        pick = sink_of or self._sink_of
        taken = cut if cut is not None else []
        pending = iter(requests)
        outcomes: list[list[str] | BaseException | None] = []
        flying: dict[concurrent.futures.Future[list[str]], tuple[int, Hashable, float]] = {}
        halted: BaseException | None = None
        failed_build = unbuilt if unbuilt is not None else []
        nxt = 0
        exhausted = False

        def take() -> bool:
            """Take (build) the next request of `requests`; False when there is none, or
            when one could not be built: sending halts, the requests in flight awaited."""
            nonlocal halted, exhausted
            if failed_build:
                return False
            try:
                request = next(pending, None)
            except Exception as e:
                failed_build.append(e)
                halted = halted or e
                return False
            if request is None:
                exhausted = True
                return False
            taken.append(request)
            outcomes.append(None)
            return True

        while True:
            busy = {lane for _, lane, _ in flying.values()}
            while halted is None and len(flying) < self._in_flight and (nxt < len(taken) or take()):
                request = taken[nxt]
                if request.lane in busy:
                    break  # Pub/Sub ordering: one request of a key at a time
                if self._stop.is_set():
                    halted = NotSentError("not sent: the run was asked to stop")
                elif not leased():
                    halted = NotSentError("not sent: the run's lease ran out")
                else:
                    sink = pick(request.items[0])
                    messages = [_message_of(i) for i in request.items]
                    # The latest instant any attempt of this request can carry as its gRPC
                    # deadline (the sink never goes past a deadline it has seen).
                    until = deadline()
                    flying[_in_thread(sink.publish, messages, deadline)] = (
                        nxt,
                        request.lane,
                        until,
                    )
                    busy.add(request.lane)
                    nxt += 1
            if not flying:
                break
            if meanwhile is not None and exhausted and halted is None and nxt == len(taken):
                meanwhile()
                meanwhile = None
            left = deadline() - time.monotonic()
            done, _ = concurrent.futures.wait(
                flying, timeout=max(0.0, min(left, _POLL_S)), return_when=FIRST_COMPLETED
            )
            if not done and left <= 0:
                for index, _, until in flying.values():  # each RPC ends by its own deadline
                    self.in_doubt_until = max(self.in_doubt_until or until, until)
                    outcomes[index] = InDoubtError(
                        "Pub/Sub did not answer before the deadline; these messages may or "
                        "may not have been accepted",
                        until,
                    )
                flying.clear()
                halted = halted or NotSentError("not sent: the publish deadline passed")
                break
            for future in done:
                index, _, _ = flying.pop(future)
                error = future.exception()
                outcomes[index] = error if error is not None else future.result()
                if error is not None and halted is None:
                    halted = error  # after a failure nothing more goes out
        while take():  # never sent: each still gets its outcome
            pass
        unsent = NotSentError(f"not sent: {halted}") if halted is not None else None
        return [o if o is not None else (unsent or NotSentError("not sent")) for o in outcomes]

    def _event(self, e: Event) -> _Outgoing:
        ahead = self._ahead.pop(id(e), None)
        if ahead is not None and ahead[0] is e:
            message = ahead[1]
        else:
            replay = bool(self._replay) and any(e.block_number in r for r in self._replay)
            self.replayed += replay
            message = build_message(e, ordering=self._ordering, replay=replay)
        return _Outgoing(e.block_number, message, (True, message.ordering_key), e)

    def _build_ahead(self, events: Sequence[Event]) -> None:
        """The messages of the first request of `events` (the next part), built now. Not
        under a replay range (its count is of messages sent), nor a message that fails to
        build: that one is built again when sent, where its error belongs."""
        self._ahead = {}
        if self._replay:
            return
        for e in events[:MAX_MESSAGES]:
            try:
                self._ahead[id(e)] = (e, build_message(e, ordering=self._ordering))
            except Exception:  # raised again, in its place, when sent
                continue

    def _dead(self, d: DeadLetter, chain_id: int, relayer_id: str) -> _Outgoing:
        message = dead_letter_message(d, chain_id, relayer_id)
        # The events' lane when it goes to their sink (no dead-letter topic, or the same
        # publisher): one lane per sink keeps a topic's requests in chain order.
        to_events = (self._dead_sink or self._sink) is self._sink
        return _Outgoing(d.block_number, message, (to_events, ""), d)


def _chain_position(item: Event | DeadLetter) -> tuple[int, int]:
    return item.block_number, item.log_index


def _message_of(item: Any) -> Message:
    return item.message if isinstance(item, _Outgoing) else item


def _each(outcome: list[str] | BaseException, request: Request[Any]) -> list[str | BaseException]:
    """The result of each message of a request."""
    if isinstance(outcome, BaseException):
        return [outcome] * len(request.items)
    return [*outcome]


def _in_thread(call: Callable[..., list[str]], *args: Any) -> concurrent.futures.Future[list[str]]:
    """Run `call` in a daemon thread: a publish stuck until its deadline must never hold
    up the exit of a run that has given up on it (a pool's threads are joined at exit)."""
    future: concurrent.futures.Future[list[str]] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(call(*args))
        except BaseException as e:  # handed to the waiting thread
            future.set_exception(e)

    # With a copy of the caller's context: what the thread logs keeps its relayer's label.
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(run,), daemon=True, name="publish").start()
    return future


def _lane_of(item: _Outgoing) -> tuple[bool, str]:
    return item.lane


def _size_of(item: _Outgoing) -> int:
    return message_size(item.message)


def _label(source: Event | DeadLetter) -> str:
    """What an error names the message by."""
    if isinstance(source, Event):
        return f"event {source.event_id} ({source.name})"
    return f"dead letter {source.event_id}"


def _published(s: Event | DeadLetter, message: Message, message_id: str) -> Published:
    """What the record of a message Pub/Sub accepted holds."""
    if isinstance(s, Event):
        name, state = s.name, PUBLISHED
    else:
        name, state = "", DEADLETTERED
    return Published(
        s.event_id,
        s.block_number,
        s.block_hash,
        s.log_index,
        s.transaction_hash,
        name,
        message_id,
        message.data.decode(),
        state,
    )
