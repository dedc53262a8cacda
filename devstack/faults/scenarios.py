"""Scenarios that kill, stall, stop and overlap runs (the dependencies stay up).

Each scenario builds one Trial, does its damage, then recovers: plain runs until one finds
nothing new. The verdict (verdict.py) then compares the chain with what arrived.
Every scenario takes the world, a seeded random source and its own parameter.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from devstack.faults.trial import Trial
from devstack.faults.world import World
from devstack.rpcproxy import RpcProxy

# The named points of devstack/faults/crashing_main.py, in the order of a run, and how many
# times a point comes up in a run of this world (the CRASH_ON drawn is at most that).
POINTS: dict[str, int] = {
    "after_lease": 1,
    "after_plan": 1,
    "during_getlogs": 1,
    "after_decode": 1,
    "after_read": 3,
    "before_publish": 3,
    "mid_publish": 20,
    "before_record": 3,
    "after_record": 3,
    "during_commit": 3,
    "after_commit": 3,
    "during_release": 1,
    "after_release": 1,
}
STALL_POINTS = ("after_plan", "after_decode", "after_read", "before_publish", "mid_publish",
                "before_record", "after_record")  # fmt: skip
CHAIN_LEASE_S = 1.0  # runs killed one after another: each waits for the last one's lease
RUN_S = 0.6  # a run's life from the wrapper's start to its exit, about (random kills fall in it)
GETLOGS_DELAY_S = 0.15  # eth_getLogs answers this late, so a kill lands while it is in flight


def _trial(world: World, scenario: str, rng: random.Random, **kwargs: Any) -> Trial:
    """A trial with a random checkpoint interval and batch size."""
    kwargs.setdefault("interval", rng.choice((2, 3, 4)))
    kwargs.setdefault("batch", rng.choice((1000, 1000, 8, 12)))
    return Trial(world, scenario, **kwargs)


def _slow_getlogs(body: bytes) -> None:
    if b"eth_getLogs" in body:
        time.sleep(GETLOGS_DELAY_S)


def crash_at(world: World, rng: random.Random, point: str, kills: int = 3) -> Trial:
    """Runs killed one after another at the same named point, then recovery."""
    proxy = RpcProxy(world.rpc_url, faults=_slow_getlogs) if point == "during_getlogs" else None
    if proxy:
        proxy._server.handle_error = lambda *_: None  # type: ignore[method-assign]  # killed clients
    trial = _trial(world, f"crash-{point}", rng, rpc_url=proxy.url() if proxy else None,
                   lease_s=CHAIN_LEASE_S)  # fmt: skip
    try:
        for kill in range(kills):
            delay = rng.uniform(0, 6) if point.startswith("during_") else 2.0
            if point == "during_getlogs":
                delay = rng.uniform(5, GETLOGS_DELAY_S * 1000 - 20)
            on = rng.randint(1, POINTS[point]) if kill else 1  # the first surely comes
            for _ in range(3):  # a run that came before the lease expired is skipped: again
                proc = trial.run(point, on=on, delay_ms=delay)
                trial.wait_lease()
                if proc.first("acquired") is not None:
                    break
        trial.recover()
    finally:
        if proxy:
            proxy.stop()
    return trial


def random_kills(world: World, rng: random.Random, kills: int = 4) -> Trial:
    """Runs killed from outside at random instants (after the wrapper is ready), then recovery."""
    trial = _trial(world, "random", rng, batch=rng.choice((4, 6)), lease_s=CHAIN_LEASE_S)
    for _ in range(kills):
        proc = trial.launch()
        trial.kill_after(proc, rng.uniform(0.0, RUN_S))
        proc.wait()
        trial.wait_lease()
    trial.recover()
    return trial


def overlap(world: World, rng: random.Random, kills: bool, waves: int = 3) -> Trial:
    """Waves of 2 to 8 runs started together (a little staggered), with or without kills."""
    trial = _trial(world, "overlap-kills" if kills else "overlap", rng, batch=rng.choice((6, 9)))
    for _ in range(waves):
        killers = []
        for _ in range(rng.randint(2, 8)):
            point, on = "none", 1
            if kills and rng.random() < 0.2:
                point = rng.choice(list(POINTS))
                on = rng.randint(1, POINTS[point])
            proc = trial.launch(point, on=on, delay_ms=rng.uniform(0, 6))
            if kills and point == "none" and rng.random() < 0.35:
                killer = threading.Thread(
                    target=trial.kill_after, args=(proc, rng.uniform(0.0, RUN_S)), daemon=True
                )
                killer.start()
                killers.append(killer)
            time.sleep(rng.uniform(0, 0.3))
        trial.wait_all()
        for killer in killers:
            killer.join()
    trial.recover()
    return trial


def stall(world: World, rng: random.Random, point: str, action: str = "stall") -> Trial:
    """A run stalls (or freezes whole) at `point` past its lease; another run takes over;
    then the first goes on."""
    trial = _trial(world, f"{action}-{point}", rng, lease_s=2.0)
    on = 1
    if point == "mid_publish":  # inside a block: the next message belongs to the same block
        blocks = [world.block_of(e) for e in sorted(world.truth, key=_chain_order(world))]
        on = rng.choice([n for n in range(1, 20) if blocks[n - 1] == blocks[n]])
    pause = trial.lease_s * 2 + 1.5
    # a freeze lands 0-4 ms after the next publish request started: before its bytes left,
    # while they were on the wire, or after Pub/Sub answered
    first = trial.launch(point, on=on, action=action, pause=pause, delay_ms=rng.uniform(0, 4))
    stalled = trial.wait_for(first, "point")
    if stalled is not None:
        time.sleep(max(0.0, stalled["t"] + trial.lease_s + 0.1 - time.time()))
        trial.run()  # takes the expired lease over while the first run sleeps
        time.sleep(max(0.0, stalled["t"] + pause - time.time()))
        first.signal(signal.SIGCONT)  # a frozen run thaws (a stalled one needs nothing)
    first.wait()
    trial.wait_lease()
    trial.recover()
    return trial


def random_freeze(world: World, rng: random.Random) -> Trial:
    """A run frozen whole (SIGSTOP: a paused VM) at a random instant while it publishes,
    for longer than its lease; another run takes over; then the first thaws (SIGCONT)."""
    trial = _trial(world, "freeze-random", rng, lease_s=2.0)
    first = trial.launch("slow_publish", pause=0.01)  # 60 requests over ~0.6 s
    granted = trial.wait_for(first, "acquired")
    if granted is not None:
        time.sleep(max(0.0, granted["t"] + rng.uniform(0.0, 0.8) - time.time()))
    if first.done.is_set():
        trial.notes.append("the run ended before the freeze")
    else:
        frozen_at = time.time()
        first.signal(signal.SIGSTOP)
        time.sleep(max(0.0, frozen_at + trial.lease_s + 0.1 - time.time()))
        trial.run()  # takes the expired lease over while the first run is frozen
        time.sleep(max(0.0, frozen_at + trial.lease_s * 2 + 1.5 - time.time()))
        first.signal(signal.SIGCONT)
    first.wait()
    trial.wait_lease()
    trial.recover()
    return trial


def _chain_order(world: World) -> Callable[[str], tuple[int, int]]:
    def key(event_id: str) -> tuple[int, int]:
        return world.block_of(event_id), int(world.truth[event_id]["log_index"])

    return key


def sigterm(world: World, rng: random.Random) -> Trial:
    """SIGTERM at a random instant of a slow run: out within 10 s, everything committed."""
    trial = _trial(world, "sigterm", rng, lease_s=4.0)
    proc = trial.launch("slow_publish", pause=0.05)  # ~3 s of publishing
    granted = trial.wait_for(proc, "acquired")
    if granted is not None:
        time.sleep(max(0.0, granted["t"] + rng.uniform(0.0, 2.0) - time.time()))
    if not proc.done.is_set():
        proc.term_sent = time.time()
        proc.signal(signal.SIGTERM)
    proc.wait()
    proc.doc_after = trial.doc()
    trial.recover()
    return trial


Scenario = Callable[[World, random.Random], Trial]


def kill_scenarios(kills: int = 3) -> dict[str, Scenario]:
    """Every scenario of this module, by name (one per crash point and stall point);
    `kills`: SIGKILLs in a row per trial where runs are killed one after another."""
    out: dict[str, Scenario] = {}
    for point in POINTS:
        out[f"crash@{point}"] = lambda w, r, p=point: crash_at(w, r, p, kills)  # type: ignore[misc]
    out["random_kills"] = lambda w, r: random_kills(w, r, kills + 1)
    out["overlap"] = lambda w, r: overlap(w, r, kills=False)
    out["overlap+kills"] = lambda w, r: overlap(w, r, kills=True)
    for point in STALL_POINTS:
        out[f"stall@{point}"] = lambda w, r, p=point: stall(w, r, p)  # type: ignore[misc]
    out["freeze@mid_publish"] = lambda w, r: stall(w, r, "mid_publish", "freeze")
    # published, not yet recorded: on waking it must write nothing over the newer run's records
    out["freeze@before_record"] = lambda w, r: stall(w, r, "before_record", "freeze")
    out["freeze@random"] = random_freeze
    out["sigterm"] = sigterm
    return out
