"""The `relay` function's request in follow mode: a window must end, commit and answer inside
RELAYER_REQUEST_TIMEOUT (the platform's request timeout, which the code cannot see), and the
runs of a request are asked to stop shortly before it, as SIGTERM would ask a job's."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from function.config import Settings
from function.stopping import StopSignal

log = logging.getLogger("relayer")

# What a request needs beyond a follower's window and the poll interval of its last look:
# start-up, the last commit, the answer. The runs are asked to stop this long before the
# timeout, so that they still commit and answer (SIGTERM's 10 s, docs/CONTRACT.md §7.5).
REQUEST_MARGIN_S = 10.0


def window_refusal(fleet: Sequence[Settings]) -> str | None:
    """Why the relay function cannot follow inside its request (None: every window fits):
    the window, one poll interval for its last look, and REQUEST_MARGIN_S to commit and
    answer must fit in RELAYER_REQUEST_TIMEOUT."""
    for s in fleet:
        need = s.run_s + s.poll_interval_s + REQUEST_MARGIN_S
        if s.run_s <= 0 or need <= s.request_timeout_s:
            continue
        room = s.request_timeout_s - s.poll_interval_s - REQUEST_MARGIN_S
        fix = (
            f"lower RELAYER_RUN_SECONDS to at most {room:g}, or raise"
            if room > 0
            else f"no window fits with RELAYER_POLL_INTERVAL={s.poll_interval_s:g}: raise"
        )
        return (
            f"RELAYER_RUN_SECONDS={s.run_s:g} (relayer {s.relayer_id}) cannot end inside "
            f"RELAYER_REQUEST_TIMEOUT={s.request_timeout_s:g}: the window, one "
            f"RELAYER_POLL_INTERVAL={s.poll_interval_s:g} for its last look and "
            f"{REQUEST_MARGIN_S:g} s to commit and answer need {need:g} s; {fix} the "
            "function's timeout and RELAYER_REQUEST_TIMEOUT with it (at most 3600; a Cloud "
            "Scheduler caller's attempt deadline, at most 1800, must cover it too)"
        )
    return None


def request_stop_after(timeout_s: float) -> float:
    """Seconds into a request at which its runs are asked to stop: REQUEST_MARGIN_S before
    its timeout (half of a timeout shorter than twice that)."""
    return timeout_s - min(REQUEST_MARGIN_S, timeout_s / 2)


def time_is_up(stop: StopSignal, timeout_s: float) -> None:
    """The request's deadline: the runs stop taking new blocks, commit and answer."""
    log.warning(
        "the request ends in %g s (RELAYER_REQUEST_TIMEOUT=%g): stopping the runs so that "
        "they commit and answer in time",
        timeout_s - request_stop_after(timeout_s),
        timeout_s,
    )
    stop.set()
