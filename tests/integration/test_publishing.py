"""Publishing: requests cut to Pub/Sub's limits, sent in order under the run's deadline.

The cut and the dispatch rules are checked directly (the dispatch against a scripted sink,
which stands for our own `Sink` port, not for Pub/Sub); the publisher itself against the
Pub/Sub emulator.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from devstack.stack.clients import PubSubTopic
from function.adapters.pubsub import Publisher, make_channel
from function.core.batches import requests_of
from function.core.messages import Message
from function.core.model import Event
from function.errors import NotSentError, PublishError, TopicNotFoundError
from function.run.dispatch import Dispatcher
from function.stopping import StopSignal


def _cut(blocks: Sequence[int], keys: Sequence[str] | None = None, **kw: Any) -> list[Any]:
    items = list(zip(blocks, keys or ["k"] * len(blocks), strict=True))
    kw.setdefault("max_messages", 1000)
    kw.setdefault("max_bytes", 10_000)
    return list(requests_of(items, group_of=lambda i: i[1], size_of=lambda i: 100, **kw))


def test_cut_keeps_order_and_limits() -> None:
    requests = _cut([1, 1, 2, 2, 2, 3], max_messages=2)
    assert [[b for b, _ in r.items] for r in requests] == [[1, 1], [2, 2], [2, 3]]
    assert {r.lane for r in requests} == {"k"}  # one ordering key: one lane, one at a time


def test_cut_by_bytes_and_by_key() -> None:
    assert [len(r.items) for r in _cut([1] * 5, max_bytes=250)] == [2, 2, 1]
    requests = _cut([1, 1, 2, 2], ["a", "a", "b", "a"])
    assert [(r.lane, len(r.items)) for r in requests] == [("a", 2), ("b", 1), ("a", 1)]


def test_cut_without_ordering_still_sends_one_request_at_a_time_in_chain_order() -> None:
    # CONTRACT §3: RELAYER_ORDERING=false drops the key, publishing stays in chain order:
    # requests in flight together could be accepted out of order.
    requests = _cut([1, 2, 3, 4], [""] * 4, max_messages=1)
    assert [[b for b, _ in r.items] for r in requests] == [[1], [2], [3], [4]]
    assert {r.lane for r in requests} == {""}


def _event(block: int, index: int) -> Event:
    return Event(
        event_id=f"0x{block:062x}{index:02x}",
        chain_id=31337,
        contract="0x" + "ab" * 20,
        name="Deposited",
        args={"amount": str(index)},
        block_number=block,
        block_hash="0x" + f"{block:064x}",
        block_timestamp=1_700_000_000 + block,
        transaction_hash="0x" + "cd" * 32,
        transaction_index=0,
        log_index=index,
        removed=False,
    )


class ScriptedSink:
    """Our Sink port in memory: answers ids, or fails or hangs on chosen requests."""

    def __init__(
        self,
        fail_on: int | None = None,
        hang_on: int | None = None,
        before: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.calls: list[list[Message]] = []
        self.fail_on, self.hang_on, self.before = fail_on, hang_on, before
        self.flying = self.max_flying = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        with self.lock:
            n = len(self.calls)
            self.calls.append(list(messages))
            self.flying += 1
            self.max_flying = max(self.max_flying, self.flying)
        try:
            self.before(n)
            time.sleep(0.01)
            if n == self.hang_on:
                self.release.wait(30)
            if n == self.fail_on:
                raise PublishError("refused")
            return [f"id-{n}-{i}" for i in range(len(messages))]
        finally:
            with self.lock:
                self.flying -= 1


def _send(dispatcher: Dispatcher, events: Sequence[Event], seconds: float = 30.0, **kw: Any) -> Any:
    end = time.monotonic() + seconds
    return dispatcher.send(events, (), lambda: end, chain_id=31337, relayer_id="r", **kw)


def test_one_request_at_a_time_per_ordering_key_and_all_results_kept() -> None:
    sink = ScriptedSink()
    events = [_event(b, i) for b in range(1, 6) for i in range(500)]  # 2,500: 3 requests
    delivered = _send(Dispatcher(sink, StopSignal(), ordering=True), events)
    assert [len(c) for c in sink.calls] == [1000, 1000, 500]
    assert sink.max_flying == 1
    assert [p.event_id for p in delivered.published] == [e.event_id for e in events]
    assert delivered.failure is None and delivered.stopped_before is None


def test_without_ordering_requests_still_go_one_at_a_time() -> None:
    sink = ScriptedSink()
    events = [_event(b, i) for b in range(1, 9) for i in range(500)]
    delivered = _send(Dispatcher(sink, StopSignal(), ordering=False), events)
    assert sink.max_flying == 1  # in flight together, they could be accepted out of order
    assert len(delivered.published) == len(events)


def test_a_failed_request_stops_everything_after_it() -> None:
    sink = ScriptedSink(fail_on=1)
    events = [_event(b, i) for b in range(1, 8) for i in range(500)]  # 4 requests
    delivered = _send(Dispatcher(sink, StopSignal(), ordering=True), events)
    assert len(sink.calls) == 2  # the third and fourth were never sent
    assert len(delivered.published) == 1000  # the first request's ids are kept and recorded
    block, what, error = delivered.failure
    assert block == 3 and "refused" in str(error) and "Deposited" in what


def test_a_stop_ends_sending_after_the_request_in_flight() -> None:
    stop = StopSignal()
    sink = ScriptedSink(before=lambda n: stop.set() if n == 0 else None)
    events = [_event(1, i) for i in range(600)] + [_event(2, i) for i in range(900)]
    delivered = _send(Dispatcher(sink, stop, ordering=True), events)
    assert [len(c) for c in sink.calls] == [1000]
    # block 2 was cut short: what went out is reported (and will be recorded), the
    # checkpoint stays before block 2
    assert delivered.stopped_before == 2 and delivered.failure is None
    assert len(delivered.published) == 1000


def test_nothing_is_sent_once_the_lease_is_gone() -> None:
    sink = ScriptedSink()
    leased = iter([True, False])
    events = [_event(1, i) for i in range(1500)]
    delivered = _send(
        Dispatcher(sink, StopSignal(), ordering=True), events, leased=lambda: next(leased)
    )
    assert len(sink.calls) == 1
    assert delivered.stopped_before == 1 and len(delivered.published) == 1000


def test_a_request_in_flight_at_the_deadline_is_given_up_as_unknown() -> None:
    sink = ScriptedSink(hang_on=0)
    started = time.monotonic()
    delivered = _send(Dispatcher(sink, StopSignal(), ordering=True), [_event(1, 0)], seconds=0.5)
    sink.release.set()
    assert time.monotonic() - started < 5  # the wait ends at the deadline, not with the RPC
    assert delivered.published == []
    assert "may or may not have been accepted" in str(delivered.failure[2])


# The publisher against the Pub/Sub emulator ----------------------------------------------


def _publisher(topic: PubSubTopic, topic_id: str | None = None) -> Publisher:
    return Publisher(make_channel(), topic.project, topic_id or topic.topic_id)


def test_publish_returns_the_ids_pubsub_gave(pubsub_topic: PubSubTopic) -> None:
    messages = [Message(f"m{i}".encode(), {"i": str(i)}, "k") for i in range(5)]
    ids = _publisher(pubsub_topic).publish(messages, lambda: time.monotonic() + 10)
    pulled = pubsub_topic.pull_all()
    assert [m.data for m in pulled] == [m.data for m in messages]
    assert [m.message_id for m in pulled] == ids


def test_nothing_goes_out_after_the_deadline(pubsub_topic: PubSubTopic) -> None:
    past = time.monotonic() - 0.01
    with pytest.raises(NotSentError, match="not sent"):
        _publisher(pubsub_topic).publish([Message(b"late", {}, "")], lambda: past)
    assert pubsub_topic.pull_all() == []


def test_a_missing_topic_names_the_setting(pubsub_topic: PubSubTopic) -> None:
    publisher = _publisher(pubsub_topic, "no-such-topic")
    with pytest.raises(TopicNotFoundError, match="PUBSUB_TOPIC"):
        publisher.check_topic()
    with pytest.raises(TopicNotFoundError, match="does not exist"):
        publisher.publish([Message(b"x", {}, "")], lambda: time.monotonic() + 10)


def test_courier_keeps_chain_order_over_many_requests(pubsub_topic: PubSubTopic) -> None:
    events = [_event(b, i) for b in range(1, 5) for i in range(700)]  # 2,800: 3 requests
    dispatcher = Dispatcher(_publisher(pubsub_topic), StopSignal(), ordering=True)
    delivered = _send(dispatcher, events)
    pulled = pubsub_topic.pull_all(at_least=len(events))  # ordered: a batch per ack
    assert [m.attributes["event_id"] for m in pulled] == [e.event_id for e in events]
    assert [p.message_id for p in delivered.published] == [m.message_id for m in pulled]


def test_a_request_that_went_out_is_never_reported_as_not_sent(
    pubsub_topic: PubSubTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens there: every attempt fails UNAVAILABLE, and is retried until the
    # deadline. A request that was attempted may have reached Pub/Sub, so it must fail as
    # unknown (the run then fails) rather than as "not sent" (which the run takes for a stop).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    publisher = Publisher(make_channel(), pubsub_topic.project, pubsub_topic.topic_id)
    reads = iter(range(1_000))

    def deadline() -> float:  # far off for the first attempt, then gone (a stop came)
        return time.monotonic() + (30 if next(reads) < 2 else -1)

    with pytest.raises(PublishError, match="may or may not") as raised:
        publisher.publish([Message(b"x", {}, "")], deadline)
    assert not isinstance(raised.value, NotSentError)
