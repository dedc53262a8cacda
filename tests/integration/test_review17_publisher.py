"""Review 17, hostile: the publisher's own gRPC channel (`adapters.pubsub.make_channel`) and
GetTopic sent as bytes, not through the generated `google.pubsub_v1.PublisherClient`.

Against a gRPC server of our own standing in for Pub/Sub (it can fail on purpose and says
what it received). The first test fails on the change: the generated client retried a
transient GetTopic error (its default retry: Aborted, ServiceUnavailable, Unknown), the
bytes sent now are one attempt. The others pass and pin what the change kept: the request
is the GetTopicRequest protobuf writes, it carries the library's routing header (odd
project and topic names included), and GetTopic's refusals name the setting."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.api_core.gapic_v1 import routing_header
from google.pubsub_v1 import types

from function.adapters.pubsub import Publisher, make_channel
from function.errors import DeploymentError, RelayerError, TopicNotFoundError

GetTopicRequest = types.GetTopicRequest.pb()
Topic = types.Topic.pb()


@dataclass
class Seen:
    metadata: dict[str, str]
    raw: bytes


@dataclass
class ScriptedTopics:
    """Answers GetTopic with what `script` says for each call (by its index)."""

    script: Callable[[int, Any, grpc.ServicerContext], bytes]
    calls: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        request = GetTopicRequest.FromString(raw)
        with self.lock:
            n = len(self.calls)
            self.calls.append(Seen(dict(context.invocation_metadata()), raw))
        return self.script(n, request, context)


def _topic(request: Any) -> bytes:
    return bytes(Topic(name=request.topic).SerializeToString())


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ScriptedTopics]]:
    servers: list[grpc.Server] = []

    def start(script: Callable[[int, Any, grpc.ServicerContext], bytes]) -> ScriptedTopics:
        fake = ScriptedTopics(script)
        server = grpc.server(futures.ThreadPoolExecutor(4))
        handler = grpc.unary_unary_rpc_method_handler(fake.handle)
        service = grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher", {"GetTopic": handler}
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


def test_a_transient_get_topic_error_is_retried_as_the_generated_client_did(
    scripted: Callable[..., ScriptedTopics],
) -> None:
    """FAILS on 44b3294. The start-up check (`check_topic`, called by `build_relay` before
    every run) answered UNAVAILABLE once: a blip of Pub/Sub's front end, a fresh
    channel's first connection failing (DNS, TLS, the metadata server's token). The
    generated client's GetTopic retried it (default retry: Aborted, ServiceUnavailable,
    Unknown, backing off from 0.1 s), so the run went on. The bytes sent now are one
    attempt: `_error` turns the UNAVAILABLE into a PublishError and the whole run fails
    (exit 1, a failed `last_run`, status unhealthy, an alert) though nothing is wrong with
    the deployment. Fix: retry GetTopic on the same transient codes, with backoff, within
    `timeout_s` (the generated client's predicate), as `publish` does."""

    def script(n: int, request: Any, context: grpc.ServicerContext) -> bytes:
        if n == 0:
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return _topic(request)

    fake = scripted(script)
    channel = make_channel()
    try:
        Publisher(channel, "p", "t").check_topic(timeout_s=10.0)
    finally:
        channel.close()
    assert len(fake.calls) == 2


def test_the_get_topic_request_is_protobufs_and_carries_the_librarys_routing_header(
    scripted: Callable[..., ScriptedTopics],
) -> None:
    """PASSES (pins the change): the GetTopic bytes are what protobuf writes for
    `GetTopicRequest(topic=...)`, topic paths longer than 127 bytes (a two-byte length)
    included, and the routing header is `gapic_v1.routing_header`'s, for a domain-scoped
    project (`google.com:proj`: the colon is escaped) and every character a topic id may
    hold (`-_.~+%`)."""
    fake = scripted(lambda n, request, context: _topic(request))
    names = [
        ("p", "t"),
        ("google.com:my-proj", "a-b_c.d~e+f%g"),
        ("p", "t" + "x" * 200),  # the path's length takes two varint bytes
    ]
    channel = make_channel()
    try:
        for project, topic in names:
            Publisher(channel, project, topic).check_topic()
    finally:
        channel.close()
    for (project, topic), seen in zip(names, fake.calls, strict=True):
        path = f"projects/{project}/topics/{topic}"
        assert seen.raw == GetTopicRequest(topic=path).SerializeToString()
        [(key, value)] = [routing_header.to_grpc_metadata((("topic", path),))]  # type: ignore[no-untyped-call]
        assert seen.metadata[key] == value


@pytest.mark.parametrize(
    ("code", "match"),
    [
        (grpc.StatusCode.NOT_FOUND, "RELAYER_DEADLETTER_TOPIC: topic projects/p/topics/dl does"),
        (grpc.StatusCode.PERMISSION_DENIED, "RELAYER_DEADLETTER_TOPIC: no permission"),
    ],
)
def test_get_topic_refusals_name_the_setting(
    scripted: Callable[..., ScriptedTopics], code: grpc.StatusCode, match: str
) -> None:
    """PASSES (pins the change): NotFound and PermissionDenied on the raw GetTopic are
    deployment errors (exit 2) naming the setting of the topic checked."""

    def script(n: int, request: Any, context: grpc.ServicerContext) -> bytes:
        context.abort(code, "refused")
        raise AssertionError("abort raises")

    scripted(script)
    channel = make_channel()
    try:
        with pytest.raises(TopicNotFoundError, match=match) as raised:
            Publisher(channel, "p", "dl", "RELAYER_DEADLETTER_TOPIC").check_topic()
    finally:
        channel.close()
    assert isinstance(raised.value, DeploymentError)


def test_a_get_topic_that_stays_unavailable_gives_up_within_its_timeout(
    scripted: Callable[..., ScriptedTopics],
) -> None:
    """Added after the review's fix: the retry is bounded by `timeout_s`, and what it gives
    up with says what Pub/Sub answered (not a topic that does not exist)."""

    def script(n: int, request: Any, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.UNAVAILABLE, "front end down")
        raise AssertionError("abort raises")

    fake = scripted(script)
    publisher = Publisher(make_channel(), "p", "t")
    with pytest.raises(RelayerError, match="front end down") as raised:
        publisher.check_topic(timeout_s=1.0)
    assert not isinstance(raised.value, TopicNotFoundError)
    assert len(fake.calls) >= 2  # asked again before giving up
