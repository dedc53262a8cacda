"""Topics for the bench, and the check that what was published is what the chain implies.

Timed repetitions publish to a topic without subscriptions: the emulator accepts and drops
the messages, so the timing is of publishing alone and no repetition pays for draining
another's backlog (pulling 20,000 ordered messages from the emulator takes seconds). One
untimed warm-up run of each relayer publishes to a topic with an unordered subscription
instead, and `check_delivery` compares what arrived with the escrow driver's ground truth.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from bench.measure import BenchError
from devstack.chain.escrow import ExpectedEvent
from devstack.stack.clients import PulledMessage, create_topic_and_subscription, pull_all


class Topics:
    """Fresh topic ids on the emulator named by PUBSUB_EMULATOR_HOST."""

    def __init__(self, host: str, project: str) -> None:
        self.host = host
        self.project = project
        self._count = itertools.count(1)
        self._tag = uuid.uuid4().hex[:6]

    def fresh_id(self, label: str) -> str:
        return f"bench-{label}-{self._tag}-{next(self._count)}"

    def topic(self, label: str) -> str:
        """A new topic without subscriptions; its id."""
        topic_id = self.fresh_id(label)
        client = pubsub_v1.PublisherClient()
        try:
            client.create_topic(name=client.topic_path(self.project, topic_id), timeout=30.0)
        finally:
            client.stop()
        return topic_id

    def with_subscription(self, label: str) -> str:
        """A new topic with one unordered subscription `{topic}-sub`; the topic id."""
        topic_id = self.fresh_id(label)
        create_topic_and_subscription(
            self.host, self.project, topic_id, f"{topic_id}-sub", ordering=False
        )
        return topic_id

    def pull(self, topic_id: str) -> list[PulledMessage]:
        return pull_all(self.host, self.project, f"{topic_id}-sub", idle_s=0.5)


def check_delivery(
    who: str, messages: Sequence[PulledMessage], expected: Sequence[ExpectedEvent]
) -> dict[str, Any]:
    """Every expected event arrived exactly once with the §3 payload; raise otherwise."""
    payloads = [json.loads(m.data) for m in messages]
    counts = Counter(p["event_id"] for p in payloads)
    want = {e["event_id"]: dict(e) for e in expected}
    duplicated = sum(1 for n in counts.values() if n > 1)
    missing = [i for i in want if i not in counts]
    stray = [i for i in counts if i not in want]
    wrong = [p["event_id"] for p in payloads if p["event_id"] in want and p != want[p["event_id"]]]
    if duplicated or missing or stray or wrong:
        first = next((p for p in payloads if p["event_id"] in wrong), None)
        raise BenchError(
            f"{who} delivered {len(messages)} messages for {len(want)} events: "
            f"{len(missing)} missing, {duplicated} duplicated, {len(stray)} stray, "
            f"{len(wrong)} with a payload other than expected"
            + (f"; first: {first} expected {want[first['event_id']]}" if first else "")
        )
    return {"messages": len(messages), "exactly_once": True}
