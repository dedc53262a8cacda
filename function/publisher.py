"""Publish messages to Pub/Sub in batches and wait until Pub/Sub has accepted each one.

Messages are handed to the client library all at once (it batches up to 1,000 per request
and keeps per-key order); the run then waits on every future against a deadline that can
shrink while it waits (SIGTERM, the end of the lease), so the checkpoint never moves past a
message whose fate is unknown.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from .errors import PublishError, TopicNotFoundError
from .messages import Message

log = logging.getLogger(__name__)

BATCH = pubsub_v1.types.BatchSettings(max_messages=1000, max_bytes=9_000_000, max_latency=0.01)
_POLL_S = 0.2


def make_client(ordering: bool) -> pubsub_v1.PublisherClient:
    """A publisher client with large batches; ordering as RELAYER_ORDERING says."""
    return pubsub_v1.PublisherClient(
        batch_settings=BATCH,
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=ordering),
    )


class Publisher:
    """One topic's publisher."""

    def __init__(
        self,
        client: pubsub_v1.PublisherClient,
        project: str,
        topic: str,
        setting: str = "PUBSUB_TOPIC",
    ) -> None:
        self._client = client
        self._setting = setting
        self.topic_path = client.topic_path(project, topic)

    def check_topic(self, timeout_s: float = 10.0) -> None:
        """Fail with a deployment error (exit 2) when the topic does not exist."""
        try:
            self._client.get_topic(topic=self.topic_path, timeout=timeout_s)
        except gexc.NotFound:
            raise TopicNotFoundError(
                f"{self._setting}: topic {self.topic_path} does not exist: create it "
                f"(gcloud pubsub topics create) or fix {self._setting}/PUBSUB_PROJECT_ID"
            ) from None
        except gexc.PermissionDenied as e:
            raise TopicNotFoundError(
                f"{self._setting}: no permission to use topic {self.topic_path}: grant the "
                f"relayer's service account roles/pubsub.publisher and viewer on it ({e.message})"
            ) from None
        except gexc.GoogleAPIError as e:
            raise PublishError(f"Pub/Sub did not answer for {self.topic_path}: {e}") from e

    def submit(self, messages: Sequence[Message]) -> list[concurrent.futures.Future[str]]:
        """Hand messages to the client library; it batches and sends them in the background."""
        publish = self._client.publish
        return [
            publish(self.topic_path, m.data, ordering_key=m.ordering_key, **m.attributes)
            for m in messages
        ]

    def wait(
        self,
        futures: Sequence[concurrent.futures.Future[str]],
        deadline: Callable[[], float],
    ) -> list[str | BaseException]:
        """Message ids (or the error) of every future, or `PublishError` at the deadline.

        `deadline()` is re-read while waiting (a monotonic instant), so a SIGTERM or the
        lease's end can cut the wait short.
        """
        pending = set(futures)
        while pending:
            left = deadline() - time.monotonic()
            if left <= 0:
                raise PublishError(
                    f"Pub/Sub accepted {len(futures) - len(pending)} of {len(futures)} messages "
                    f"for {self.topic_path} before the deadline; the checkpoint stays before them"
                )
            _, pending = concurrent.futures.wait(pending, timeout=min(left, _POLL_S))
        results: list[str | BaseException] = []
        for f in futures:
            error = f.exception()
            results.append(error if error is not None else f.result())
        return results

    def resume(self, ordering_key: str) -> None:
        """Let a key publish again after a failure paused it (the client's ordering rule)."""
        if ordering_key:
            self._client.resume_publish(self.topic_path, ordering_key)
