"""The relayers of one task run side by side, a thread each.

Each relay's I/O (JSON-RPC, Firestore, Pub/Sub) blocks only its own thread, so a relayer
whose endpoint hangs or whose topic fails never holds up another's looks: in follow mode
every relayer looks every RELAYER_POLL_INTERVAL for its whole window. Threads rather than
processes: a relay spends its time waiting on the network, the clients are per relayer
anyway, and one process keeps one SIGTERM handler, one hard exit and one log stream.

Followers (RELAYER_RUN_SECONDS > 0) all run at once: a follower kept waiting would go stale.
One-batch runs (RELAYER_RUN_SECONDS = 0) take turns in BATCH_RUNS_AT_ONCE slots: each holds
its batch's events and records in memory, so a task's peak is that many batches whatever
the size of its fleet, and a batch still starts at once in a fleet of a few relayers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import function.logs as logs
from function.config import Settings
from function.core.summary import RunSummary
from function.redact import scrub
from function.run.relay import Outcome
from function.stopping import StopSignal

log = logging.getLogger("relayer")

BATCH_RUNS_AT_ONCE = 4
# How often a thread waiting (for a slot, or for the others) looks up: the main thread
# must come back to the interpreter, where the SIGTERM handler runs.
STEP_S = 0.25

RunOne = Callable[[Settings], Outcome]


def run_side_by_side(
    fleet: Sequence[Settings],
    run_one: RunOne,
    stop: StopSignal,
    batch_slots: int = BATCH_RUNS_AT_ONCE,
) -> list[Outcome]:
    """One run of each relayer, side by side; the outcomes in the fleet's order (a relayer
    that a stop reached before its turn came has none)."""
    outcomes: list[Outcome | None] = [None] * len(fleet)
    slots = threading.BoundedSemaphore(batch_slots)

    def work(n: int, settings: Settings) -> None:
        with logs.relayer_labelled(settings.relayer_id):
            takes_slot = settings.run_s <= 0
            if takes_slot and not _take(slots, stop):
                return
            try:
                if not stop.is_set():
                    outcomes[n] = _guarded(run_one, settings)
            finally:
                if takes_slot:
                    slots.release()

    if len(fleet) == 1:  # no thread for the common case: the run is the process's
        work(0, fleet[0])
    else:
        threads = [
            threading.Thread(target=work, args=(n, s), name=f"relayer-{n}", daemon=True)
            for n, s in enumerate(fleet)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(STEP_S)
    return [o for o in outcomes if o is not None]


def _take(slots: threading.BoundedSemaphore, stop: StopSignal) -> bool:
    """A one-batch slot, or False once a stop was asked while waiting for one."""
    while not slots.acquire(timeout=STEP_S):
        if stop.is_set():
            return False
    return True


def _guarded(run_one: RunOne, settings: Settings) -> Outcome:
    """`run_one` ends every run in its summary; whatever escapes it still fails only its
    own relayer, never a neighbour's thread or the task."""
    try:
        return run_one(settings)
    except Exception as e:
        detail = scrub(f"{type(e).__name__}: {e}")
        log.error("relayer %s ended without a summary: %s", settings.relayer_id, detail)
        return Outcome(RunSummary("-", settings.relayer_id, datetime.now(UTC), error=detail), e)
