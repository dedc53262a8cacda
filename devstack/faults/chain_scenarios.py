"""Scenarios on chains of the campaign's own making (devstack/faults/chains.py).

- `odd_events`: the big and odd events (600 kB `bytes`, a block of four 90,000-character
  CJK strings, invalid UTF-8, anonymous events), relayed by runs killed at a random step
  (before, during and after publishing and recording), then recovery. The verdict compares
  each message with the payload written from what was sent (U+FFFD where invalid).
- `reorg@getlogs`: the chain reorganises between a run's checkpoint check and its
  eth_getLogs (the RPC proxy calls anvil_reorg as the log query arrives): the checkpoint
  block itself is replaced, and some events move below the run's range.
- `reorg@unrecorded`: a run is killed after recording, before its commit; then the blocks it
  published are replaced (some transactions re-included elsewhere): every event it published
  there must be retracted exactly once.
Each trial's chain is its own (a fresh anvil), so reorganising it disturbs no other trial.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from devstack.faults.chains import NoteChain
from devstack.faults.trial import Trial
from devstack.faults.world import World
from devstack.rpcproxy import RpcProxy

ODD_POINTS = ("mid_publish", "before_record", "after_record", "during_commit", "after_decode")
ODD_LEASE_S = 8.0  # a run moves megabytes: it must not lose its lease to its own slowness


def odd_events(world: World, rng: random.Random, kills: int = 2) -> Trial:
    """Runs over the odd events killed at random steps, then recovery."""
    trial = Trial(world, "odd", lease_s=ODD_LEASE_S, interval=rng.choice((1, 2)),
                  batch=rng.choice((1000, 2)))  # fmt: skip
    for _ in range(kills):
        point = rng.choice(ODD_POINTS)
        on = rng.randint(1, 3) if point == "mid_publish" else 1
        trial.run(point, on=on, delay_ms=rng.uniform(0, 20))
        trial.wait_lease()
    trial.recover()
    return trial


def _note_trial(
    base: World, rng: random.Random, scenario: str, proxy: bool = False, **kwargs: Any
) -> tuple[Trial, NoteChain, RpcProxy | None]:
    """A trial over a NoteChain of its own (and an RPC proxy in front, if asked)."""
    chain = NoteChain(base)
    rpc = RpcProxy(chain.anvil.rpc_url) if proxy else None
    try:
        if rpc is not None:
            rpc._server.handle_error = lambda *_: None  # type: ignore[method-assign]
        trial = Trial(chain.world(), scenario, rpc_url=rpc.url() if rpc else None,
                      interval=kwargs.pop("interval", rng.choice((1, 2, 3))), **kwargs)  # fmt: skip
    except BaseException:
        if rpc is not None:
            rpc.stop()
        chain.stop()
        raise
    trial.cleanups.append(chain.stop)
    if rpc is not None:
        trial.cleanups.append(rpc.stop)
    trial.settle = chain.settle
    return trial, chain, rpc


def _guarded(build: Callable[[Trial], None], trial: Trial) -> Trial:
    try:
        build(trial)
    except BaseException:
        trial.close()
        raise
    return trial


def reorg_at_getlogs(world: World, rng: random.Random) -> Trial:
    """A reorganisation lands between the run's checkpoint check and its eth_getLogs."""
    trial, chain, proxy = _note_trial(world, rng, "reorg-getlogs", proxy=True, lease_s=4.0)
    assert proxy is not None

    def build(trial: Trial) -> None:
        chain.rpc("anvil_mine", ["0x3"])
        trial.run()  # a checkpoint below the notes
        relayed = chain.notes(rng.randint(2, 4))
        trial.run()  # relayed, checkpoint at the last one
        pending = chain.notes(rng.randint(1, 3))  # the next run's range
        first = rng.choice(relayed)  # the replaced stretch starts here: the checkpoint too
        replaced = [x for x in relayed + pending if x.block_number >= first.block_number]
        raws = chain.raw(replaced)
        # each transaction re-included (or dropped) at a random new block; offset 0 lies at
        # or below the checkpoint block, so its event moves below the run's range
        depth = chain.head() - first.block_number + 1
        moved = [(r, rng.randint(0, depth - 1)) for r in raws if rng.random() < 0.8]
        fired: list[bool] = []

        def reorganise_once(body: bytes) -> tuple[int, bytes] | None:
            if b"eth_getLogs" in body and not fired:
                fired.append(True)
                chain.reorg(first.block_number, moved)
            return None

        proxy.faults = reorganise_once
        run = trial.run()
        if not fired:
            trial.notes.append(f"the proxy never saw the log query ({run.tag})")
        trial.wait_lease()
        trial.recover()

    return _guarded(build, trial)


def reorg_unrecorded(world: World, rng: random.Random) -> Trial:
    """Blocks recorded but not committed (the run was killed) are replaced."""
    trial, chain, _ = _note_trial(world, rng, "reorg-unrecorded", lease_s=1.5)

    def build(trial: Trial) -> None:
        chain.rpc("anvil_mine", ["0x2"])
        # a recorded block below the fork: a fork below every block a relayer knows fails
        # its runs by design (README, Reorganisations), which is not this trial's question
        chain.notes(1)
        if rng.random() < 0.5:
            trial.run()  # a checkpoint first; else the killed run is the relayer's first
        notes = chain.notes(rng.randint(2, 6))
        # notes in consecutive blocks span at least this many chunks, each recorded once
        chunks = -(-len(notes) // trial.interval)
        proc = trial.run("after_record", on=rng.randint(1, chunks))
        if not proc.killed:
            trial.notes.append(f"{proc.tag} was not killed after recording")
        first = rng.choice(notes[: max(1, len(notes) // 2 + 1)])
        replaced = [x for x in notes if x.block_number >= first.block_number]
        depth = chain.head() - first.block_number + 1
        moved = [(r, rng.randint(0, depth - 1)) for r in chain.raw(replaced)
                 if rng.random() < 0.5]  # fmt: skip
        chain.reorg(first.block_number, moved)
        if rng.random() < 0.5:
            chain.notes(rng.randint(1, 2))  # and the chain goes on
        trial.wait_lease()
        time.sleep(0.1)
        trial.recover()

    return _guarded(build, trial)
