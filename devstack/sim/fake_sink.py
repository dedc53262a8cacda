"""A Pub/Sub topic in memory behind the `Sink` port, keeping every message it accepted.

Like `function.adapters.pubsub.Publisher`: a request whose deadline has passed before it is
sent is a `NotSentError` and nothing is accepted; an accepted request answers one id per
message. Fates of the next requests (`fates`) make it fail, fail after accepting, answer
late, or never answer (in doubt: accepted or dropped, the publisher cannot tell). A late
or lost answer is a `clock.Deferred`, which `clock.deterministic` turns into a publish future
the fake clock resolves; an acceptance after the publisher gave up waits in `pending` until
the clock reaches it (never after the request's deadline, as Pub/Sub drops it then).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from devstack.sim.clock import Deferred
from function.core.messages import Message
from function.errors import NotSentError, PublishError


class Fate(Enum):
    ACCEPT = "accept"
    FAIL = "fail"  # nothing accepted, an error
    FAIL_ACCEPTED = "fail_accepted"  # accepted, yet the answer is an error
    SLOW = "slow"  # accepted, the answer comes `delay` later
    DOUBT_ACCEPT = "doubt_accept"  # no answer; accepted `delay` later, before the deadline
    DOUBT_DROP = "doubt_drop"  # no answer, never accepted


@dataclass(frozen=True)
class Accepted:
    message: Message
    message_id: str
    at: float  # monotonic instant Pub/Sub took it
    sender: str  # who sent it (the simulation names runs)


@dataclass
class FakeSink:
    clock: Callable[[], float] = time.monotonic
    fates: list[tuple[Fate, float]] = field(default_factory=list)  # the next requests'
    accepted: list[Accepted] = field(default_factory=list)
    pending: list[tuple[float, list[Message], list[str], str]] = field(default_factory=list)
    on_accept: list[Callable[[Accepted], None]] = field(default_factory=list)
    sender: str = ""
    requests: int = 0
    _ids: int = 0

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        fate, delay = self.fates.pop(0) if self.fates else (Fate.ACCEPT, 0.0)
        return self.publish_as(self.sender, messages, deadline, fate, delay)

    def publish_as(
        self,
        sender: str,
        messages: Sequence[Message],
        deadline: Callable[[], float],
        fate: Fate = Fate.ACCEPT,
        delay: float = 0.0,
    ) -> list[str]:
        now, limit = self.clock(), deadline()
        if limit <= now:
            raise NotSentError(
                f"{len(messages)} messages were not sent: the run's publish deadline had passed"
            )
        self.requests += 1
        ids = self._new_ids(len(messages))
        if fate is Fate.FAIL:
            raise PublishError(f"Pub/Sub did not accept {len(messages)} messages: Unavailable")
        if fate in (Fate.DOUBT_ACCEPT, Fate.DOUBT_DROP):
            if fate is Fate.DOUBT_ACCEPT:  # strictly inside (now, deadline)
                at = now + min(max(delay, 1e-3), (limit - now) * 0.999)
                self.pending.append((at, list(messages), ids, sender))
                self.pending.sort(key=lambda p: p[0])
            raise Deferred(None)
        self._accept(sender, messages, ids, now)
        if fate is Fate.FAIL_ACCEPTED:
            raise PublishError(
                f"Pub/Sub did not answer for {len(messages)} messages; they may or may not "
                "have been accepted"
            )
        if fate is Fate.SLOW:
            raise Deferred(now + delay, ids)
        return ids

    def deliver(self, before: float, now: float) -> None:
        """Clock listener: accept what was in flight and reaches Pub/Sub by `now`."""
        while self.pending and self.pending[0][0] < now:
            at, messages, ids, sender = self.pending.pop(0)
            self._accept(sender, messages, ids, at)

    def _new_ids(self, n: int) -> list[str]:
        first, self._ids = self._ids, self._ids + n
        return [str(first + i + 1) for i in range(n)]

    def _accept(self, sender: str, messages: Sequence[Message], ids: list[str], at: float) -> None:
        for message, message_id in zip(messages, ids, strict=True):
            accepted = Accepted(message, message_id, at, sender)
            self.accepted.append(accepted)
            for listener in self.on_accept:
                listener(accepted)
