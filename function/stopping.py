"""Graceful stop: SIGTERM asks the run to finish its current work and leave within 10 s."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

# docs/CONTRACT.md §7.5: out within 10 s of SIGTERM. Publishing gets at most this long after the
# signal, leaving time to commit and release the lease.
PUBLISH_GRACE_S = 6.0
HARD_EXIT_S = 9.5


class StopSignal:
    """Set when the run should stop taking new blocks."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._at: float | None = None
        # What to log if the hard exit comes first: the summary of every run still going
        # (docs/CONTRACT.md §2: every run ends in one; the relayers of a task run side by
        # side), each with the context it was given in (its relayer's log label).
        self._words: dict[int, tuple[contextvars.Context, Callable[[], None]]] = {}
        self._words_lock = threading.Lock()
        self._keys = itertools.count()

    def set(self) -> None:
        if self._at is None:
            self._at = time.monotonic()
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`, waking at once when a stop is asked; True if it was."""
        return self._event.wait(max(0.0, timeout_s))

    def add_last_words(self, words: Callable[[], None]) -> Callable[[], None]:
        """Have `words` said if the hard exit comes before the run ends; returns what takes
        them back (call it when the run has ended)."""
        key = next(self._keys)
        with self._words_lock:
            self._words[key] = (contextvars.copy_context(), words)

        def take_back() -> None:
            with self._words_lock:
                self._words.pop(key, None)

        return take_back

    def say_last_words(self) -> None:
        """Every run's last words, in the order given; one failing keeps none from the others."""
        with self._words_lock:
            pending = list(self._words.values())
        for context, words in pending:
            try:
                context.run(words)
            except Exception as e:  # the exit must happen, whatever a summary's fate
                log.error("could not log a run's summary: %s", type(e).__name__)

    def cap(self, deadline: float) -> float:
        """`deadline` (monotonic), shortened to the grace period once a stop was asked."""
        if self._at is None:
            return deadline
        return min(deadline, self._at + PUBLISH_GRACE_S)


def install_sigterm(stop: StopSignal, exit_code: int = 1) -> None:
    """On SIGTERM, ask the run to stop; if it has not exited 9.5 s later, leave anyway.

    The hard exit is a last resort: state is safe against an abrupt end (§7.4), but the
    platform would SIGKILL us at 10 s and the log line says why.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            return
        log.warning("SIGTERM received: finishing the current blocks, then stopping")
        stop.set()
        timer = threading.Timer(HARD_EXIT_S, _hard_exit, args=(exit_code, stop))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handle)


def _hard_exit(code: int, stop: StopSignal) -> None:
    log.error("still running %.1f s after SIGTERM: exiting without a clean release", HARD_EXIT_S)
    stop.say_last_words()
    logging.shutdown()
    os._exit(code)
