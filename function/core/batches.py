"""Cut a run's outgoing messages into Pub/Sub requests (pure: no I/O).

Messages go in chain order. A request holds consecutive messages for one topic and one
ordering key, up to Pub/Sub's limits. Requests of one lane (a topic and an ordering key) are
sent one after the other, as Pub/Sub's ordering asks; with ordering off every message of a
topic has the empty key, so one lane: requests in flight together could be accepted out of
chain order (docs/CONTRACT.md §3: publishing stays in chain order per run).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from function.core.messages import Message

T = TypeVar("T")


@dataclass(frozen=True)
class Request(Generic[T]):
    """Messages sent in one publish call."""

    lane: Hashable
    items: tuple[T, ...]


def requests_of(
    items: Iterable[T],
    *,
    group_of: Callable[[T], Hashable],
    size_of: Callable[[T], int],
    max_messages: int,
    max_bytes: int,
) -> Iterator[Request[T]]:
    """Requests for `items` (already in chain order), in that order, each as soon as it is
    cut: a publisher builds the next request's messages while the last one is on the wire.

    `group_of` names what may share a request (the topic and the ordering key); a message
    larger than `max_bytes` still goes alone, so that Pub/Sub's own answer names the problem.
    """
    group: Hashable = None
    chunk: list[T] = []
    size = 0
    for item in items:
        item_group, n = group_of(item), size_of(item)
        if chunk and (item_group != group or size + n > max_bytes):
            yield Request(group, tuple(chunk))
            chunk = []
        if not chunk:
            group, size = item_group, 0
        chunk.append(item)
        size += n
        if len(chunk) == max_messages:  # full: it goes before the next message is built
            yield Request(group, tuple(chunk))
            chunk = []
    if chunk:
        yield Request(group, tuple(chunk))


# Pub/Sub's own limits per request: 1,000 messages and 10 MB (we keep 1 MB of headroom).
MAX_MESSAGES = 1000
MAX_BYTES = 9_000_000


def message_size(message: Message) -> int:
    """Bytes a message adds to a request, near enough to stay under Pub/Sub's 10 MB."""
    attributes = message.attributes  # each key and value, and 4 bytes of framing
    size = len("".join(attributes)) + len("".join(attributes.values())) + 4 * len(attributes)
    return len(message.data) + size + len(message.ordering_key) + 16
