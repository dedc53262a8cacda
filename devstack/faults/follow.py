"""Followers killed in their window (docs/CONTRACT.md §7.4, §7.7): follow mode in the campaign.

Each wave starts a follower (RELAYER_RUN_SECONDS) and, while it follows, the next scheduled
execution. The follower is SIGKILLed between two looks, mid-publish, mid-commit (a
checkpoint's, or the commit between two looks), after recording, or from outside at a
random instant of its window; the next execution waits for its hand-over and, the follower
dead, takes its lease once expired (a lease just over two poll intervals, the least follow
mode accepts). A follower that survives hands over. The verdict is the campaign's: nothing
lost, duplicates only past the last commit, no lease granted over a valid one, the
checkpoint never back.
"""

from __future__ import annotations

import random
import threading
import time

from devstack.faults.proc import Proc
from devstack.faults.trial import Trial
from devstack.faults.world import World

WINDOW_S = 3.0  # each follower's RELAYER_RUN_SECONDS
POLL_S = 1.0
LEASE_S = 2.5  # more than 2 x POLL_S, as follow mode requires
# Points of devstack/faults/crashing_main.py and how often each surely comes up in a first
# follower's window over this world (small batches: several looks while behind; a busy
# machine makes fewer looks fit); a CRASH_ON that never comes leaves the follower alive.
FOLLOW_POINTS: dict[str, int] = {
    "between_looks": 2,
    "mid_publish": 8,
    "during_commit": 4,
    "during_look_commit": 2,
    "after_record": 2,
}


def follow_kills(world: World, rng: random.Random, waves: int = 2) -> Trial:
    """Waves of a follower killed in its window and the execution scheduled after it."""
    trial = Trial(
        world,
        "follow-kills",
        lease_s=LEASE_S,
        interval=rng.choice((2, 3, 4)),
        batch=rng.choice((4, 6)),  # the world's 20 blocks take several looks
    )
    for _ in range(waves):
        point = rng.choice([*FOLLOW_POINTS, "random"])
        killer: threading.Thread | None = None
        if point == "random":
            first = _follower(trial)
            when = rng.uniform(0.0, WINDOW_S)
            killer = threading.Thread(
                target=trial.kill_after, args=(first, when, "acquired"), daemon=True
            )
            killer.start()
        else:
            on = rng.randint(1, FOLLOW_POINTS[point])
            first = _follower(trial, point, on, rng.uniform(0, 6))
        # the next scheduled execution arrives while the first follows (or has just died)
        granted = trial.wait_for(first, "acquired")
        if granted is not None:
            time.sleep(max(0.0, granted["t"] + rng.uniform(0.0, WINDOW_S) - time.time()))
        second = _follower(trial)
        first.wait()
        second.wait()
        if killer is not None:
            killer.join()
        trial.wait_lease()
    trial.recover()
    return trial


def _follower(trial: Trial, point: str = "none", on: int = 1, delay_ms: float = 2.0) -> Proc:
    return trial.launch(
        point,
        on=on,
        delay_ms=delay_ms,
        RELAYER_RUN_SECONDS=f"{WINDOW_S:g}",
        RELAYER_POLL_INTERVAL=f"{POLL_S:g}",
    )
