"""Cut a run's outgoing messages into Pub/Sub requests (pure: no I/O).

Messages go in chain order. A request holds consecutive messages for one topic and one
ordering key, up to Pub/Sub's limits. Requests of one lane (a topic and an ordering key) are
sent one after the other, as Pub/Sub's ordering asks; with ordering off every message of a
topic has the empty key, so one lane: requests in flight together could be accepted out of
chain order (docs/CONTRACT.md §3: publishing stays in chain order per run).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from function.core.messages import Message

T = TypeVar("T")


@dataclass(frozen=True)
class Request(Generic[T]):
    """Messages sent in one publish call."""

    lane: Hashable
    items: tuple[T, ...]


def cut_requests(
    items: Sequence[T],
    *,
    group_of: Callable[[T], Hashable],
    size_of: Callable[[T], int],
    max_messages: int,
    max_bytes: int,
) -> list[Request[T]]:
    """Requests for `items` (already in chain order), in that order.

    `group_of` names what may share a request (the topic and the ordering key); a message
    larger than `max_bytes` still goes alone, so that Pub/Sub's own answer names the problem.
    """
    cut: list[tuple[Hashable, list[T]]] = []
    size = 0
    for item in items:
        group, n = group_of(item), size_of(item)
        if cut:
            last_group, last = cut[-1]
            if group == last_group and len(last) < max_messages and size + n <= max_bytes:
                last.append(item)
                size += n
                continue
        cut.append((group, [item]))
        size = n
    return [Request(group, tuple(chunk)) for group, chunk in cut]


# Pub/Sub's own limits per request: 1,000 messages and 10 MB (we keep 1 MB of headroom).
MAX_MESSAGES = 1000
MAX_BYTES = 9_000_000


def message_size(message: Message) -> int:
    """Bytes a message adds to a request, near enough to stay under Pub/Sub's 10 MB."""
    attributes = sum(len(k) + len(v) + 4 for k, v in message.attributes.items())
    return len(message.data) + attributes + len(message.ordering_key) + 16
