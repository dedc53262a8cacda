"""Backfills started together over overlapping ranges (`relayer backfill`, the operator CLI,
run through devstack/faults/crashing_main.py), one of them sometimes frozen (SIGSTOP) past
its lease in the middle of publishing while the others relay its blocks.

The scheduled job's checkpoint is first put past the head (`relayer reset`), so every block
is a backfill's. Each backfill has its own task lease; they share the
processed-event set, which must keep any block from being published twice. Afterwards each
range is backfilled again until its command succeeds ("run the same command to resume"),
then the job runs until idle, and the verdict compares the chain with what arrived.
"""

from __future__ import annotations

import random
import signal
import time

from devstack.faults.proc import Proc
from devstack.faults.trial import Trial
from devstack.faults.world import World

LEASE_S = 2.0


def _ranges(world: World, rng: random.Random) -> list[tuple[int, int]]:
    """2 to 4 ranges that cover the world's blocks and overlap one another."""
    count = rng.randint(2, 4)
    low, span = world.start_block, world.head - world.start_block + 1
    out = []
    for i in range(count):
        start = low + i * span // count - (rng.randint(1, 4) if i else 0)
        end = low + (i + 1) * span // count - 1 + (rng.randint(1, 4) if i < count - 1 else 0)
        out.append((max(low, start), min(world.head, end)))
    if rng.random() < 0.3:  # the same range twice: the same task lease
        out.append(rng.choice(out))
    return out


def _args(blocks: tuple[int, int]) -> list[str]:
    return ["backfill", "--from-block", str(blocks[0]), "--to-block", str(blocks[1])]


def overlapping_backfills(world: World, rng: random.Random) -> Trial:
    """Backfills over overlapping ranges at once, one perhaps frozen past its lease."""
    trial = Trial(world, "backfills", lease_s=LEASE_S, interval=rng.choice((2, 3)),
                  batch=rng.choice((4, 6, 1000)))  # fmt: skip
    first = trial.run(args=["reset", "--to-block", str(world.head + 1), "--yes"])
    # an operator's move past events nobody published yet: not a checkpoint ahead of them
    # (§7.1 is about runs); the job's checkpoint does not move again in this trial
    trial.poller.stop()
    trial.poller.seen.clear()
    if trial.doc().get("next_block") != world.head + 1:
        trial.notes.append(f"{first.tag} left the job's checkpoint at "
                           f"{trial.doc().get('next_block')}")  # fmt: skip
    ranges = _ranges(world, rng)
    frozen = rng.randrange(len(ranges)) if rng.random() < 0.6 else None
    procs: list[Proc] = []
    for n, blocks in enumerate(ranges):
        if n == frozen:
            procs.append(trial.launch("mid_publish", on=rng.randint(1, 6), action="freeze",
                                      delay_ms=rng.uniform(0, 4), args=_args(blocks)))  # fmt: skip
        else:
            procs.append(trial.launch(args=_args(blocks)))
        time.sleep(rng.uniform(0, 0.1))
    if frozen is not None:
        stopped = trial.wait_for(procs[frozen], "point")
        if stopped is not None:  # the others relay on; then a resume of its range, then thaw
            time.sleep(max(0.0, stopped["t"] + LEASE_S + 0.2 - time.time()))
            if rng.random() < 0.5:
                procs.append(trial.launch(args=_args(ranges[frozen])))
            time.sleep(max(0.0, stopped["t"] + LEASE_S * 2 + 0.5 - time.time()))
            procs[frozen].signal(signal.SIGCONT)
    trial.wait_all()
    for blocks in ranges:  # resume every range until its command succeeds
        for _ in range(5):
            trial.wait_lease()
            if trial.run(args=_args(blocks)).code == 0:
                break
            time.sleep(LEASE_S / 2)
    trial.recover()
    return trial
