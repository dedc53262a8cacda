"""Re-review 16, hostile: the publisher that writes requests in protobuf's wire format and
sends bytes on the client's own gRPC channel (`adapters.pubsub`, `adapters.pubsub_wire`).

Against the Pub/Sub emulator: odd and large messages come back exactly as sent. Against a
gRPC server of our own standing in for Pub/Sub (what the emulator cannot do: fail on
purpose, answer the wrong number of ids, say which headers and deadline it got): the
routing header, retries inside the deadline, no attempt carrying a deadline past the run's,
and an answer that does not match the request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.pubsub_v1 import PublisherClient, types

from devstack.stack.clients import PubSubTopic
from function.adapters.pubsub import Publisher, make_channel
from function.core.messages import Message
from function.errors import PublishError, TopicNotFoundError

PublishRequest = types.PublishRequest.pb()
PublishResponse = types.PublishResponse.pb()


# -- against the emulator ---------------------------------------------------------------


def _publisher(topic: PubSubTopic) -> Publisher:
    return Publisher(make_channel(), topic.project, topic.topic_id)


def test_odd_messages_arrive_exactly_as_sent(pubsub_topic: PubSubTopic) -> None:
    odd = [
        Message(b"", {"event": "Swap", "note": "only attributes"}, "k"),  # empty data
        Message("é☃𝄞".encode(), {"event": "Ünïcødé ☃", "𝄞 key": "värde 𝄞" * 100}, "k"),
        Message(b"\x00\xff" * 10_000, {"event": "Swap", "long": "x" * 1024}, "k"),
        Message(b"{}", {"event": "Swap"}, "31337:0xC0ffee254729296a45a3885639AC7E10F9d54979"),
    ]
    ids = _publisher(pubsub_topic).publish(odd, lambda: time.monotonic() + 30)
    pulled = {m.message_id: m for m in pubsub_topic.pull_all(at_least=len(odd))}
    assert sorted(pulled) == sorted(ids)  # two ordering keys: pulled in either order
    got = [(pulled[i].data, pulled[i].attributes, pulled[i].ordering_key) for i in ids]
    assert got == [(m.data, m.attributes, m.ordering_key) for m in odd]


def test_a_thousand_messages_in_one_request(pubsub_topic: PubSubTopic) -> None:
    sent = [
        Message(f'{{"i":{i}}}'.encode(), {"event": "Swap", "event_id": f"31337:0xab:{i}"}, "k")
        for i in range(1000)
    ]
    ids = _publisher(pubsub_topic).publish(sent, lambda: time.monotonic() + 60)
    assert len(set(ids)) == 1000
    pulled = pubsub_topic.pull_all(at_least=1000)
    assert [m.data for m in pulled] == [m.data for m in sent]


def test_a_message_of_nearly_ten_megabytes(pubsub_topic: PubSubTopic) -> None:
    big = Message(b"a" * 9_900_000, {"event": "Swap"}, "")
    ids = _publisher(pubsub_topic).publish([big], lambda: time.monotonic() + 60)
    pulled = pubsub_topic.pull_all(at_least=1)
    assert [len(m.data) for m in pulled] == [9_900_000] and [m.message_id for m in pulled] == ids


def test_the_dead_letter_topic_missing_names_its_setting(pubsub_topic: PubSubTopic) -> None:
    publisher = Publisher(
        make_channel(), pubsub_topic.project, "no-such-dl", "RELAYER_DEADLETTER_TOPIC"
    )
    with pytest.raises(TopicNotFoundError, match="RELAYER_DEADLETTER_TOPIC"):
        publisher.publish([Message(b"x", {"a": "b"}, "")], lambda: time.monotonic() + 10)


# -- against a scripted gRPC server ------------------------------------------------------


@dataclass
class Seen:
    metadata: dict[str, str]
    time_remaining: float | None
    request: Any
    at: float


@dataclass
class Scripted:
    """Answers Publish with what `script` says for each call (by its index)."""

    script: Callable[[int, Any, grpc.ServicerContext], bytes]
    calls: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        request = PublishRequest.FromString(raw)
        with self.lock:
            n = len(self.calls)
            self.calls.append(
                Seen(dict(context.invocation_metadata()), context.time_remaining(), request,
                     time.monotonic())
            )  # fmt: skip
        return self.script(n, request, context)


def _ids(request: Any, n: int | None = None) -> bytes:
    count = len(request.messages) if n is None else n
    return bytes(PublishResponse(message_ids=[f"id{i}" for i in range(count)]).SerializeToString())


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Scripted]]:
    servers: list[grpc.Server] = []

    def start(script: Callable[[int, Any, grpc.ServicerContext], bytes]) -> Scripted:
        fake = Scripted(script)
        server = grpc.server(
            futures.ThreadPoolExecutor(4), options=[("grpc.max_receive_message_length", -1)]
        )
        handler = grpc.unary_unary_rpc_method_handler(fake.handle)
        service = grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher", {"Publish": handler}
        )
        server.add_generic_rpc_handlers([service])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
        return fake

    yield start
    for server in servers:
        server.stop(0)


def _message(i: int = 0) -> Message:
    return Message(f"m{i}".encode(), {"event": "Swap", "event_id": f"31337:0xab:{i}"}, "k")


def test_the_routing_header_is_the_librarys(scripted: Callable[..., Scripted]) -> None:
    fake = scripted(lambda n, request, context: _ids(request))
    library_client = PublisherClient()  # to PUBSUB_EMULATOR_HOST, as the channel goes
    library_client.publish(
        topic="projects/p/topics/t", messages=[types.PubsubMessage(data=b"x")], timeout=10
    )
    Publisher(make_channel(), "p", "t").publish([_message()], lambda: time.monotonic() + 10)
    library, ours = fake.calls
    assert ours.metadata["x-goog-request-params"] == library.metadata["x-goog-request-params"]
    assert ours.request.topic == "projects/p/topics/t"


def test_transient_errors_are_retried_inside_the_deadline(
    scripted: Callable[..., Scripted],
) -> None:
    def script(n: int, request: Any, context: grpc.ServicerContext) -> bytes:
        if n < 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return _ids(request)

    fake = scripted(script)
    ids = Publisher(make_channel(), "p", "t").publish(
        [_message(i) for i in range(3)], lambda: time.monotonic() + 20
    )
    assert ids == ["id0", "id1", "id2"] and len(fake.calls) == 3


def test_a_refusal_is_not_retried(scripted: Callable[..., Scripted]) -> None:
    def script(n: int, request: Any, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message too large")
        raise AssertionError("abort raises")

    fake = scripted(script)
    with pytest.raises(PublishError, match="too large"):
        Publisher(make_channel(), "p", "t").publish([_message()], lambda: time.monotonic() + 20)
    assert len(fake.calls) == 1


def test_permission_denied_names_the_setting(scripted: Callable[..., Scripted]) -> None:
    def script(n: int, request: Any, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
        raise AssertionError("abort raises")

    scripted(script)
    with pytest.raises(TopicNotFoundError, match="PUBSUB_TOPIC: no permission"):
        Publisher(make_channel(), "p", "t").publish([_message()], lambda: time.monotonic() + 20)


def test_an_answer_with_other_ids_than_messages_is_an_error(
    scripted: Callable[..., Scripted],
) -> None:
    scripted(lambda n, request, context: _ids(request, len(request.messages) - 1))
    with pytest.raises(PublishError, match="answered 2 message ids for 3 messages"):
        Publisher(make_channel(), "p", "t").publish(
            [_message(i) for i in range(3)], lambda: time.monotonic() + 20
        )


def test_no_attempt_outlives_the_deadline(scripted: Callable[..., Scripted]) -> None:
    """§7.5: every attempt carries the run's deadline as its own (`grpc-timeout`): the
    server's copy of it never ends later than the deadline the run gave, retries
    included, and an attempt still unanswered at the deadline is given up on as unknown."""
    release = threading.Event()

    def script(n: int, request: Any, context: grpc.ServicerContext) -> bytes:
        if n == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "first attempt lost")
        release.wait(5)  # still working when the deadline passes
        return _ids(request)

    fake = scripted(script)
    end = time.monotonic() + 1.5
    with pytest.raises(PublishError, match="before the deadline"):
        Publisher(make_channel(), "p", "t").publish([_message()], lambda: end)
    release.set()
    deadline_ok = [
        c.time_remaining is not None and c.at + c.time_remaining <= end + 0.05 for c in fake.calls
    ]
    assert len(fake.calls) == 2 and all(deadline_ok), [
        (c.at, c.time_remaining, end) for c in fake.calls
    ]
