"""Fake time for the run modules: a clock the test or the simulation advances, run ids from a
counter, and publish "threads" answered in the caller's thread.

The run code reads `time.monotonic()`, waits on publish futures with real timeouts and starts
a thread per publish request (`function.run.dispatch`). `deterministic()` patches those
modules' `time`, `uuid` and the dispatcher's thread and wait, for as long as it is entered, so
that a run over the fakes takes no real time and does the same thing every time.
"""

from __future__ import annotations

import concurrent.futures
import uuid as real_uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import function.run.dispatch as dispatch
import function.run.leasing as leasing
import function.run.relay as relay
import function.stopping as stopping
from function.run.ahead import done_now

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class FakeClock:
    """Monotonic seconds and the matching UTC time; only `advance` moves them."""

    now: float = 1000.0
    listeners: list[Callable[[float, float], None]] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)

    def utc_at(self, monotonic: float) -> datetime:
        return EPOCH + timedelta(seconds=monotonic)

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + max(0.0, seconds))

    def advance_to(self, instant: float) -> None:
        """Move on to `instant`; listeners (delayed deliveries) see each step first."""
        if instant <= self.now:
            return
        before, self.now = self.now, instant
        for listener in list(self.listeners):
            listener(before, instant)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


class Deferred(BaseException):
    """Raised by a sink whose answer comes later (`answer_at`, monotonic) or never (None):
    the deterministic publish "thread" turns it into a future that resolves then."""

    def __init__(
        self, answer_at: float | None, result: list[str] | BaseException | None = None
    ) -> None:
        super().__init__("answer deferred")
        self.answer_at = answer_at
        self.result = result


class _Later(concurrent.futures.Future[list[str]]):
    """A publish future that the clock resolves at `answer_at` (never when None)."""

    def __init__(self, answer_at: float | None, result: list[str] | BaseException | None) -> None:
        super().__init__()
        self.answer_at = answer_at
        self.outcome = result

    def settle(self, now: float) -> None:
        if self.done() or self.answer_at is None or self.answer_at > now:
            return
        if isinstance(self.outcome, BaseException):
            self.set_exception(self.outcome)
        else:
            self.set_result(self.outcome or [])


def _run_now(call: Callable[..., list[str]], *args: Any) -> concurrent.futures.Future[list[str]]:
    """`dispatch._in_thread` without the thread: the sink answers at once, or later."""
    try:
        result = call(*args)
    except Deferred as d:
        return _Later(d.answer_at, d.result)
    except Exception as e:  # what the thread would hand to the waiting one
        future: concurrent.futures.Future[list[str]] = concurrent.futures.Future()
        future.set_exception(e)
        return future
    done: concurrent.futures.Future[list[str]] = concurrent.futures.Future()
    done.set_result(result)
    return done


def _settled(futures: Iterable[concurrent.futures.Future[list[str]]], now: float) -> set[Any]:
    for f in futures:
        if isinstance(f, _Later):
            f.settle(now)
    return {f for f in futures if f.done()}


def make_wait(
    clock: FakeClock, waiting: Callable[[float], None] | None = None
) -> Callable[..., tuple[set[Any], set[Any]]]:
    """`concurrent.futures.wait` on the fake clock: when nothing is done, the caller waits
    (`waiting(seconds)`: the simulation parks the run there; by default the clock moves)."""

    def wait(
        fs: Any, timeout: float | None = None, return_when: str = ""
    ) -> tuple[set[Any], set[Any]]:
        futures = set(fs)
        done = _settled(futures, clock.now)
        if done or not timeout or timeout <= 0:
            return done, futures - done
        due = [f.answer_at for f in futures if isinstance(f, _Later) and f.answer_at is not None]
        step = min([timeout, *(max(0.0, t - clock.now) for t in due)])
        target = clock.now + step
        if waiting is not None:
            waiting(step)
        clock.advance_to(target)
        done = _settled(futures, clock.now)
        return done, futures - done

    return wait


class _Ids:
    """uuid4 stand-in: run ids from a counter."""

    def __init__(self) -> None:
        self.count = 0

    def uuid4(self) -> real_uuid.UUID:
        self.count += 1
        return real_uuid.UUID(int=self.count << 64)  # run ids are hex[:16]


@contextmanager
def deterministic(
    clock: FakeClock, waiting: Callable[[float], None] | None = None
) -> Iterator[FakeClock]:
    """Patch the run modules onto `clock` while entered (not thread-safe: one at a time)."""
    fake_time = SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep)
    futures = SimpleNamespace(
        futures=SimpleNamespace(wait=make_wait(clock, waiting), Future=concurrent.futures.Future)
    )
    with ExitStack() as stack:
        for module in (relay, leasing, dispatch, stopping):
            stack.enter_context(mock.patch.object(module, "time", fake_time))
        stack.enter_context(mock.patch.object(relay, "uuid", _Ids()))
        stack.enter_context(mock.patch.object(dispatch, "_in_thread", _run_now))
        stack.enter_context(mock.patch.object(relay, "read_ahead", done_now))
        stack.enter_context(mock.patch.object(dispatch, "concurrent", futures))
        yield clock
