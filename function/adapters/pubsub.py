"""Publish to Pub/Sub one request at a time, each request bounded by the run's deadline.

The client library's batching hands messages to a background thread that sends them when it
gets to them. A process frozen with messages in that queue (a paused VM, a long GC, a
debugger) sends them when it thaws, maybe long after its lease went to another run, and
Pub/Sub has no conditional publish that a fencing token could guard. So the relayer builds
its own requests (up to 1,000 messages, as the library does) and sends each one with a gRPC
deadline that ends before its lease does. After a freeze, one of two things happens. If the
deadline has passed when the run looks again, the request is not sent. If the request was
already on its way, the server drops it: its copy of the deadline (the `grpc-timeout`
header) ran out while the client was frozen. Either way, nothing the run hands over can be
accepted after its lease.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc

from function.adapters.pubsub_wire import encode_message, encode_request, field, message_ids
from function.core.messages import Message
from function.errors import NotSentError, PublishError, TopicNotFoundError

log = logging.getLogger(__name__)

PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
GET_TOPIC_METHOD = "/google.pubsub.v1.Publisher/GetTopic"
PUBSUB_HOST = "pubsub.googleapis.com"
UNIVERSE = "googleapis.com"  # Google Cloud's default universe
# What the generated client asks Application Default Credentials for, and its channel
# options: no gRPC message caps of its own (Pub/Sub's are 10 MB a request), keepalives.
SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/pubsub",
)
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_metadata_size", 4 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30000),
)
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.Aborted,
    gexc.ResourceExhausted,
    gexc.Unknown,
    gexc.Cancelled,
    gexc.DeadlineExceeded,
)
_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0)


def make_channel() -> grpc.Channel:
    """A gRPC channel to Pub/Sub, as the generated client opens it: to PUBSUB_EMULATOR_HOST
    in the clear when that is set, else to Pub/Sub with Application Default Credentials
    over TLS (`grpc_helpers.create_channel`, what the generated client calls). Not the
    client itself: a run sends only bytes on it (`pubsub_wire`), and importing and building
    the generated client cost every execution about 0.1 s."""
    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator:
        return grpc.insecure_channel(emulator, options=CHANNEL_OPTIONS)
    from google.api_core import grpc_helpers

    host = pubsub_host()
    return grpc_helpers.create_channel(  # type: ignore[no-untyped-call]
        f"{host}:443", default_scopes=SCOPES, default_host=host, options=list(CHANNEL_OPTIONS)
    )


def pubsub_host() -> str:
    """Pub/Sub's host in the universe GOOGLE_CLOUD_UNIVERSE_DOMAIN names (googleapis.com
    unless set), as the generated client resolves it."""
    universe = os.environ.get("GOOGLE_CLOUD_UNIVERSE_DOMAIN", "").strip() or UNIVERSE
    return PUBSUB_HOST.replace(UNIVERSE, universe)


def topic_path(project: str, topic: str) -> str:
    return f"projects/{project}/topics/{topic}"


def _attempt(send: Callable[..., bytes], request: bytes, timeout: float, metadata: Any) -> bytes:
    """One call on the channel; gRPC's error as the API core's (what `_TRANSIENT` and
    `Publisher._error` tell apart)."""
    try:
        return send(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as raw:
        raise gexc.from_grpc_error(raw) from raw  # type: ignore[no-untyped-call]


def _pause(attempt: int, limit: float) -> float | None:
    """The wait before the next attempt after `attempt` failed ones (0-based), or None when
    it would end at or past `limit` (a monotonic instant): give up then."""
    pause = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
    return None if limit - time.monotonic() <= pause else pause


class Publisher:
    """One topic's publisher."""

    def __init__(
        self,
        channel: grpc.Channel,
        project: str,
        topic: str,
        setting: str = "PUBSUB_TOPIC",
    ) -> None:
        self._setting = setting
        self.topic_path = topic_path(project, topic)
        # Bytes in and out: the request is written in wire format here (`pubsub_wire`), not
        # built as protobuf objects for a client to wrap and serialise again.
        self._send = channel.unary_unary(PUBLISH_METHOD)
        self._get_topic = channel.unary_unary(GET_TOPIC_METHOD)
        # The routing header the generated client sends (`gapic_v1.routing_header`).
        route = ("x-goog-request-params", urlencode({"topic": self.topic_path}, safe="/"))
        self._metadata = (route,)

    def check_topic(self, timeout_s: float = 10.0) -> None:
        """Fail with a deployment error (exit 2) when the topic does not exist. A transient
        error is asked again within `timeout_s`, as the generated client's retry did: a
        blip of Pub/Sub's front end must not fail a run before it relays anything."""
        request = field(b"\x0a", self.topic_path.encode())  # GetTopicRequest.topic = 1
        limit = time.monotonic() + timeout_s
        attempt = 0
        while True:
            left = max(limit - time.monotonic(), 0.001)
            try:
                _attempt(self._get_topic, request, left, self._metadata)
                return
            except _TRANSIENT as e:
                pause = _pause(attempt, limit)
                attempt += 1
                if pause is None:
                    raise self._error(e) from None
                log.warning("Pub/Sub GetTopic failed (%s); retrying in %.2f s", e, pause)
                time.sleep(pause)
            except gexc.GoogleAPIError as e:
                raise self._error(e) from None

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        """Send one request (at most 1,000 messages, 9 MB) and return the message ids.

        `deadline()` is a monotonic instant, read before every attempt: no attempt starts
        after it, and each carries it as its gRPC deadline. Transient errors are retried
        until then. Raises `NotSentError` when the deadline came before the first attempt
        could start (nothing went out), and `PublishError` (or `TopicNotFoundError`)
        otherwise. After any error,
        Pub/Sub may or may not have taken the messages, so the caller must not count them.
        """
        request = encode_request(
            self.topic_path,
            [encode_message(m.data, m.attributes, m.ordering_key) for m in messages],
        )
        attempt = 0
        limit = deadline()
        while True:
            # Never later than an earlier look: the caller may give up on this request at the
            # deadline it saw, and a retry must not outlive that (a lease renewal can move
            # `deadline()` later while this thread still runs).
            limit = min(limit, deadline())
            left = limit - time.monotonic()
            if left <= 0 and attempt:
                raise PublishError(
                    f"Pub/Sub did not answer for {len(messages)} messages for "
                    f"{self.topic_path} before the deadline ({attempt} attempts); they may "
                    "or may not have been accepted"
                )
            if left <= 0:
                raise NotSentError(
                    f"{len(messages)} messages for {self.topic_path} were not sent: the run's "
                    "publish deadline (its lease, or a stop) had passed"
                )
            try:
                response = _attempt(self._send, request, left, self._metadata)
            except _TRANSIENT as e:
                pause = _pause(attempt, limit)
                attempt += 1
                if pause is None:
                    raise PublishError(
                        f"Pub/Sub did not accept {len(messages)} messages for "
                        f"{self.topic_path} before the deadline ({attempt} attempts): {e}"
                    ) from e
                log.warning("Pub/Sub publish failed (%s); retrying in %.2f s", e, pause)
                time.sleep(pause)
                continue
            except gexc.GoogleAPIError as e:
                raise self._error(e) from e
            ids = message_ids(response)
            if len(ids) != len(messages):
                raise PublishError(
                    f"Pub/Sub answered {len(ids)} message ids for {len(messages)} messages"
                )
            return ids

    def _error(self, e: gexc.GoogleAPIError) -> PublishError | TopicNotFoundError:
        if isinstance(e, gexc.NotFound):
            return TopicNotFoundError(
                f"{self._setting}: topic {self.topic_path} does not exist: create it "
                f"(gcloud pubsub topics create) or fix {self._setting}/PUBSUB_PROJECT_ID"
            )
        if isinstance(e, gexc.PermissionDenied):
            return TopicNotFoundError(
                f"{self._setting}: no permission to use topic {self.topic_path}: grant the "
                f"relayer's service account roles/pubsub.publisher and viewer on it "
                f"({e.message})"
            )
        return PublishError(f"Pub/Sub did not answer for {self.topic_path}: {e}")
