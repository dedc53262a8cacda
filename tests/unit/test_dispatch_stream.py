"""The dispatcher builds a request's messages while the request before it is on the wire
(issue 13: one ordering key allows one request in flight, so the build is what can
overlap), and a build that fails leaves nothing in flight and nothing counted as sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

import function.run.dispatch as dispatch_module
from devstack.sim.fake_sink import FakeSink
from function.core.batches import MAX_MESSAGES
from function.core.messages import Message
from function.core.model import Event
from function.errors import MessageBuildError
from function.run.dispatch import Dispatcher
from function.stopping import StopSignal

EVENTS = 2 * MAX_MESSAGES + 10  # three requests under one ordering key


def event(n: int) -> Event:
    block, index = divmod(n, 100)
    return Event(f"31337:0x{block:064x}:{index}", 31337, "0x" + "ab" * 20, "Tick", {"n": n},
                 block, f"0x{block:064x}", 1_700_000_000, "0x" + "cd" * 32, 0, index)  # fmt: skip


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many messages the dispatcher has built so far (a counter in a list)."""
    count = [0]
    real = dispatch_module.build_message

    def counting(e: Event, **kw: bool) -> Message:
        count[0] += 1
        return real(e, **kw)

    monkeypatch.setattr(dispatch_module, "build_message", counting)
    yield count


class WatchingSink(FakeSink):
    """Notes how many messages were built when each request arrived, and holds the first
    request until the next one is built (or 2 s pass)."""

    built: list[int]
    seen: list[int]

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        self.seen.append(self.built[0])
        if len(self.seen) == 1:
            until = time.monotonic() + 2.0
            while self.built[0] < 2 * MAX_MESSAGES and time.monotonic() < until:
                time.sleep(0.001)
        return super().publish(messages, deadline)


def dispatcher(sink: FakeSink) -> Dispatcher:
    return Dispatcher(sink, StopSignal(), ordering=True)


def far() -> float:
    return time.monotonic() + 60


def test_the_next_request_is_built_while_the_one_before_is_in_flight(built: list[int]) -> None:
    sink = WatchingSink()
    sink.built, sink.seen = built, []
    delivered = dispatcher(sink).send(
        [event(n) for n in range(EVENTS)], [], far, chain_id=31337, relayer_id="r"
    )
    assert delivered.events_published == EVENTS and delivered.stopped_before is None
    assert sink.seen[0] == MAX_MESSAGES  # the first went with its own messages built
    assert sink.seen[1] == 2 * MAX_MESSAGES  # the second was built while the first flew
    assert [a.message.attributes["event_id"] for a in sink.accepted] == [
        event(n).event_id for n in range(EVENTS)
    ]


def test_a_build_that_fails_is_a_failure_at_its_event_once_the_request_in_flight_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = dispatch_module.build_message
    answered = threading.Event()
    bad = event(MAX_MESSAGES + 5)  # in the second request

    def failing(e: Event, **kw: bool) -> Message:
        if e.event_id == bad.event_id:
            raise ValueError("a value no message can carry")
        return real(e, **kw)

    class Slow(FakeSink):
        def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
            time.sleep(0.05)
            ids = super().publish(messages, deadline)
            answered.set()
            return ids

    monkeypatch.setattr(dispatch_module, "build_message", failing)
    sink = Slow()
    delivered = dispatcher(sink).send(
        [event(n) for n in range(EVENTS)], [], far, chain_id=31337, relayer_id="r"
    )
    assert answered.is_set() and len(sink.accepted) == MAX_MESSAGES  # the first request
    assert delivered.events_published == MAX_MESSAGES  # recorded, so never sent again
    assert delivered.failure is not None
    block, what, error = delivered.failure
    assert block == bad.block_number and bad.event_id in what
    assert isinstance(error, MessageBuildError) and "no message can carry" in str(error)
