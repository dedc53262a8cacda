"""Network waits that end when the run is asked to stop (SIGTERM, docs/CONTRACT.md §7.5).

`requests` cannot be cancelled: a slow node holds a call for its whole timeout, and retries
add backoff on top, past the 10 s a stopped run has. So the call runs in a daemon thread and
the caller waits on it and on the stop at once; a stop abandons the call (its thread dies
with the process) and raises `StoppedError`. One short-lived thread per request costs far
less than a round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from function.errors import StoppedError
from function.stopping import StopSignal

T = TypeVar("T")

POLL_S = 0.05  # how often a waiting caller looks at the stop; the call itself wakes it at once


def until_stopped(
    work: Callable[[], T], stop: StopSignal | None, what: str, limit_s: float | None = None
) -> T:
    """`work()`, or `StoppedError` as soon as `stop` is set while it runs (or before);
    with `limit_s`, `TimeoutError` once it has run that long (the call is abandoned)."""
    if stop is None and limit_s is None:
        return work()
    if stop is not None and stop.is_set():
        raise StoppedError(f"stopped before {what}: the run was asked to stop")
    done = threading.Event()
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as e:  # handed to the caller, who raises it in its own thread
            outcome.append((False, e))
        finally:
            done.set()

    threading.Thread(target=run, name="rpc-call", daemon=True).start()
    ends = None if limit_s is None else time.monotonic() + limit_s
    while not done.wait(POLL_S if ends is None else min(POLL_S, max(0.0, ends - time.monotonic()))):
        if stop is not None and stop.is_set():
            raise StoppedError(f"stopped while waiting for {what}: the run was asked to stop")
        if ends is not None and time.monotonic() >= ends:
            raise TimeoutError(f"no answer to {what} within {limit_s:g} s")
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]


def pause(
    seconds: float, stop: StopSignal | None, sleep: Callable[[float], None], what: str
) -> None:
    """Sleep between retries; with a stop, wake and raise `StoppedError` when it is set."""
    if stop is None:
        sleep(seconds)
    elif stop.wait(seconds):
        raise StoppedError(f"stopped while backing off before {what}: the run was asked to stop")
