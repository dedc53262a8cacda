"""Work started now and taken later: the next window of a range is read while this one is
published, so a run waits on the node, Pub/Sub and Firestore at once, not in turn."""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def read_ahead(call: Callable[[], T]) -> concurrent.futures.Future[T]:
    """`call` in a daemon thread (a read stuck until its timeout must never hold up a
    run's exit), with the caller's context so its log lines keep their relayer's label."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as e:  # handed to the run when it takes the result
            future.set_exception(e)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(run,), daemon=True, name="read-ahead").start()
    return future


def done_now(call: Callable[[], T]) -> concurrent.futures.Future[T]:
    """`read_ahead` without the thread (the simulation's, one thread moving at a time)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    try:
        future.set_result(call())
    except Exception as e:
        future.set_exception(e)
    return future
