"""Client helpers against a running emulator: topics, subscriptions, pulls, documents, blobs.

The client helpers take the emulator host explicitly and build their client against it: they
neither read nor change os.environ, so they behave the same inside and outside pytest.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import google.cloud.storage as storage
import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

from devstack.stack.processes import DevstackError, http_session

_STORAGE_PROJECT = "devstack"  # the storage emulator ignores projects; the client wants one


class PulledMessage(NamedTuple):
    """One message as a subscriber saw it."""

    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    message_id: str


@dataclass(frozen=True)
class PubSubTopic:
    """A topic with one subscription on an emulator, as the tests use them."""

    host: str
    project: str
    topic_id: str
    subscription_id: str

    @property
    def topic_path(self) -> str:
        return PublisherClient.topic_path(self.project, self.topic_id)

    @property
    def subscription_path(self) -> str:
        return SubscriberClient.subscription_path(self.project, self.subscription_id)

    def pull_all(self, *, idle_s: float = 0.5, at_least: int = 0) -> list[PulledMessage]:
        """Everything published so far (and until idle_s of quiet), acked."""
        return pull_all(
            self.host, self.project, self.subscription_id, idle_s=idle_s, at_least=at_least
        )


def reset_firestore(host: str, project: str) -> None:
    """Delete every document: a clean database in milliseconds instead of a JVM restart."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    with http_session() as session:
        reply = session.delete(url, timeout=30.0)
    if reply.status_code != 200:
        raise DevstackError(f"Firestore reset answered {reply.status_code}: {reply.text[:200]}")


def export_firestore(host: str, project: str, directory: Path) -> Path:
    """Export every document (the emulator's own export); the path to start one from."""
    url = f"http://{host}/emulator/v1/projects/{project}:export"
    database = f"projects/{project}/databases/(default)"
    body = {"database": database, "export_directory": str(directory)}
    with http_session() as session:
        reply = session.post(url, json=body, timeout=60.0)
    if reply.status_code != 200:
        raise DevstackError(f"Firestore export answered {reply.status_code}: {reply.text[:200]}")
    found = sorted(directory.glob("*/*.overall_export_metadata"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DevstackError(f"Firestore export wrote no metadata under {directory}")
    return found[-1]


def _publisher(host: str) -> PublisherClient:
    return PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))


def _subscriber(host: str) -> SubscriberClient:
    # Messages go up to Pub/Sub's 10 MB: gRPC's default 4 MiB receive cap would refuse them.
    channel = grpc.insecure_channel(host, options=[("grpc.max_receive_message_length", -1)])
    return SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


def create_topic_and_subscription(
    host: str, project: str, topic: str, subscription: str, *, ordering: bool = True
) -> PubSubTopic:
    """Create both (the emulator starts empty). Ids: a letter, then 2-254 of [A-Za-z0-9-_.~+%]."""
    made = PubSubTopic(host, project, topic, subscription)
    with _publisher(host) as publisher:
        publisher.create_topic(name=made.topic_path, timeout=30.0)
    with _subscriber(host) as subscriber:
        subscriber.create_subscription(
            request={
                "name": made.subscription_path,
                "topic": made.topic_path,
                "enable_message_ordering": ordering,
                "ack_deadline_seconds": 60,
            },
            timeout=30.0,
        )
    return made


# Outside pytest too (the fault campaign, the demo): the flag is what makes pulls fast here.
warnings.filterwarnings("ignore", "The return_immediately flag is deprecated", DeprecationWarning)
PULL_TIMEOUT_S = 10.0  # one pull's own deadline: the emulator answers an empty pull at once
PULL_PATIENCE_S = 30.0  # how long a pull expecting more messages waits for them
MIN_EMPTY_ANSWERS = 3  # "nothing new" must be said this often, not only inferred from time


class QuietWindow:
    """When a subscriber may conclude that nothing more is coming: idle_s since the last
    message, with at least MIN_EMPTY_ANSWERS empty answers from the emulator meanwhile (on a
    starved machine a single pull may outlast idle_s), and, while fewer messages than
    expected arrived, not before PULL_PATIENCE_S."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.began = time.monotonic()
        self.last = self.began
        self.empties = 0

    def arrived(self) -> None:
        self.last, self.empties = time.monotonic(), 0

    def empty(self) -> None:
        self.empties += 1

    def over(self, enough: bool) -> bool:
        now = time.monotonic()
        if not enough and now - self.began < PULL_PATIENCE_S:
            return False
        return self.empties >= MIN_EMPTY_ANSWERS and now - self.last >= self.idle_s


def pull_all(
    host: str,
    project: str,
    subscription: str,
    *,
    idle_s: float = 0.5,
    max_messages: int = 1000,
    at_least: int = 0,
) -> list[PulledMessage]:
    """Pull and ack until nothing new arrives (`QuietWindow`); messages in pull order.
    `at_least`: keep waiting (up to PULL_PATIENCE_S) until that many arrived."""
    sub_path = SubscriberClient.subscription_path(project, subscription)
    pulled: list[PulledMessage] = []
    quiet = QuietWindow(idle_s)
    with _subscriber(host) as subscriber:
        while not quiet.over(len(pulled) >= at_least):
            try:
                reply = subscriber.pull(
                    # return_immediately: the emulator otherwise holds an empty pull ~4 s
                    request={
                        "subscription": sub_path,
                        "max_messages": max_messages,
                        "return_immediately": True,
                    },
                    timeout=PULL_TIMEOUT_S,
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                continue
            if not reply.received_messages:
                quiet.empty()
                time.sleep(0.01)  # the emulator mostly answers an empty pull at once: don't spin
                continue
            for received in reply.received_messages:
                m = received.message
                pulled.append(
                    PulledMessage(m.data, dict(m.attributes), m.ordering_key, m.message_id)
                )
            subscriber.acknowledge(
                subscription=sub_path,
                timeout=30.0,
                ack_ids=[r.ack_id for r in reply.received_messages],
            )
            quiet.arrived()
    return pulled


def upload_blob(
    host: str,
    bucket: str,
    name: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
) -> None:
    """Upload one object, creating the bucket if missing; host with or without `http://`."""
    endpoint = host if "://" in host else f"http://{host}"
    # use_auth_w_custom_endpoint=False gives anonymous credentials, as STORAGE_EMULATOR_HOST does.
    client = storage.Client(
        project=_STORAGE_PROJECT,
        client_options={"api_endpoint": endpoint},
        use_auth_w_custom_endpoint=False,
    )
    try:
        target = client.lookup_bucket(bucket) or client.create_bucket(bucket)
        target.blob(name).upload_from_string(data, content_type=content_type)
    finally:
        client.close()
