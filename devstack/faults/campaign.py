"""`make faults`: a campaign that tries hard to break the delivery guarantees (CONTRACT §7).

`python -m devstack.faults --kills 300` starts the local stack, makes one escrow history
(60 events over 20 blocks) and relays it again and again, each trial a fresh relayer:
SIGKILL at every named step of a run and at random instants, 2 to 8 overlapping runs, runs
that stall past their lease, SIGTERM, a misbehaving RPC provider, Firestore contention, and
Pub/Sub and Firestore stopped mid-run. And the kinds of fault an outside audit found: big
and odd events (600 kB bytes, a block of four 90,000-character CJK strings, invalid UTF-8,
anonymous events; devstack/faults/chains.py), repeated logs and batch caps without
blockTimestamp (devstack/faults/provider.py), reorganisations between a run's checkpoint
check and its eth_getLogs and over published blocks above the checkpoint (each on a fresh
anvil; devstack/faults/chain_scenarios.py), SIGTERM with a slow provider or a publish held
on the wire, a run frozen before recording, overlapping backfills
(devstack/faults/backfills.py), a Cloud Storage outage in a fleet (devstack/faults/fleet.py),
followers killed in their window with the next execution waiting (devstack/faults/follow.py).
Every trial ends with plain runs until one finds nothing new; then the final canonical
chain's logs are compared with what a subscriber received (live once, §7.4 duplicates
counted; every orphaned event published live retracted exactly once with the same data),
what Firestore recorded and what each run's journal says (devstack/faults/verdict.py,
devstack/faults/duplicates.py, retractions.py). It prints a table per scenario, writes
artifacts/faults.json and exits 1 if any guarantee broke.
`--kills` scales the number of trials (about that many SIGKILLs); `--only` picks scenarios.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devstack.faults.backfills import overlapping_backfills
from devstack.faults.chain_scenarios import odd_events, reorg_at_getlogs, reorg_unrecorded
from devstack.faults.chains import odd_world
from devstack.faults.fleet import storage_outage
from devstack.faults.follow import follow_kills
from devstack.faults.launch import Launcher, Spawner, Zygote
from devstack.faults.outages import (
    Restartable,
    contention,
    firestore_outage,
    pubsub_outage,
    rpc_faults,
)
from devstack.faults.provider import (
    rpc_batch_caps,
    rpc_repeats,
    sigterm_slow_pubsub,
    sigterm_slow_rpc,
)
from devstack.faults.report import (
    Result,
    figures_table,
    normalise,
    progress,
    run_line,
    sum_figures,
    write_report,
)
from devstack.faults.scenarios import POINTS, STALL_POINTS, kill_scenarios
from devstack.faults.trial import Trial
from devstack.faults.verdict import judge
from devstack.faults.world import World, build_world
from devstack.stack.services import Anvil, Stack, start_anvil

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "relayer-faults"
# Trials per scenario for 300 kills; --kills scales them (at least one each).
BASE = {
    **{f"crash@{p}": 4 for p in POINTS},
    "random_kills": 24,
    "overlap": 4,
    "overlap+kills": 14,
    **{f"stall@{p}": 2 for p in STALL_POINTS},
    "freeze@mid_publish": 8,
    "freeze@before_record": 4,
    "freeze@random": 8,
    "sigterm": 8,
    "rpc": 8,
    "contention": 3,
    "pubsub_outage": 4,
    "firestore_outage": 4,
    # the kinds of fault an outside audit found
    "odd_events": 4,
    "rpc_repeats": 5,
    "rpc_batch_caps": 5,
    "reorg@getlogs": 5,
    "reorg@unrecorded": 5,
    "sigterm@slow_rpc": 3,
    "sigterm@slow_pubsub": 3,
    "backfills": 4,
    "fleet_storage_outage": 2,
    "follow+kills": 6,
}


class Campaign:
    """Runs trials of the scenarios on one world and keeps their verdicts."""

    def __init__(self, world: World, kills_per_trial: int = 3) -> None:
        self.world = world
        self._dedicated: dict[str, Restartable] = {}
        self._lock = threading.Lock()
        self._odd: tuple[World, Anvil] | None = None
        self.scenarios: dict[str, Callable[[World, random.Random], Trial]] = {
            **kill_scenarios(kills_per_trial),
            "rpc": rpc_faults,
            "contention": contention,
            "pubsub_outage": lambda w, r: pubsub_outage(w, r, self._emulator("pubsub")),
            "firestore_outage": lambda w, r: firestore_outage(w, r, self._emulator("firestore")),
            "odd_events": lambda w, r: odd_events(self._odd_world(), r),
            "reorg@getlogs": reorg_at_getlogs,
            "reorg@unrecorded": reorg_unrecorded,
            "rpc_repeats": rpc_repeats,
            "rpc_batch_caps": rpc_batch_caps,
            "sigterm@slow_rpc": sigterm_slow_rpc,
            "sigterm@slow_pubsub": sigterm_slow_pubsub,
            "backfills": overlapping_backfills,
            "fleet_storage_outage": storage_outage,
            "follow+kills": follow_kills,
        }
        self.results: list[Result] = []

    def _emulator(self, kind: str) -> Restartable:
        with self._lock:
            if kind not in self._dedicated:
                self._dedicated[kind] = Restartable(kind, self.world.project)
            return self._dedicated[kind]

    def _odd_world(self) -> World:
        """The big and odd events, on an anvil of their own, made once."""
        with self._lock:
            if self._odd is None:
                self._odd = odd_world(self.world)
            return self._odd[0]

    def run(self, jobs: Iterable[tuple[str, int]], workers: int = 2) -> list[Result]:
        """Run the trials, `workers` at a time; their results (also kept in `results`)."""
        done = []
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trial") as pool:
            for result in pool.map(lambda job: self.trial(*job), jobs):
                done.append(result)
                progress(result)
        self.results.extend(done)
        return done

    def trial(self, scenario: str, seed: int) -> Result:
        started = time.monotonic()
        trial: Trial | None = None
        try:
            trial = self.scenarios[scenario](self.world, random.Random(seed))
            if trial.verdict is not None:
                figures, findings = trial.verdict()
            else:
                evidence = trial.evidence()  # settles the trial's world (a chain that changed)
                figures, findings = judge(trial.world, evidence, trial.interval)
            settings: dict[str, Any] = {
                "interval": trial.interval,
                "batch": trial.batch,
                "lease_s": trial.lease_s,
            }
            failures = [normalise(s.get("error") or s.get("message") or "") for p in trial.procs
                        for s in p.summaries() if s.get("outcome") == "failed"]  # fmt: skip
            settings["runs"] = [run_line(p) for p in trial.procs]
        except Exception:
            figures, findings = Counter({"trial_errors": 1}), [traceback.format_exc()]
            settings, failures = {}, []
        finally:
            if trial is not None:
                trial.close()
        figures["trials"] += 1
        seconds = round(time.monotonic() - started, 1)
        return Result(scenario, seed, seconds, figures, findings, settings, failures)

    def close(self) -> None:
        for emulator in self._dedicated.values():
            emulator.stop()
        if self._odd is not None:
            self._odd[1].stop()


def plan(kills: int, only: list[str] | None = None) -> list[tuple[str, int]]:
    """(scenario, trial count) for about `kills` SIGKILLs, scenarios interleaved."""
    counts = {s: max(1, round(n * kills / 300)) for s, n in BASE.items()}
    if only:
        counts = {s: n for s, n in counts.items() if any(re.search(o, s) for o in only)}
    jobs = [(s, i) for s, n in counts.items() for i in range(n)]
    jobs.sort(key=lambda job: (job[1], list(counts).index(job[0])))
    return jobs


def totals(results: list[Result]) -> dict[str, Counter[str]]:
    """Figures summed per scenario and in total, scenarios in BASE's order."""
    return sum_figures(results, list(BASE))


def table(results: list[Result]) -> str:
    """The campaign's table, one line per scenario and the total."""
    return figures_table(results, list(BASE))


def report(results: list[Result], seconds: float, path: Path) -> dict[str, Any]:
    """artifacts/faults.json: the figures, the failures and every trial."""
    return write_report(results, list(BASE), seconds, path)


def open_world(stack: Stack, rpc_url: str, launcher: Launcher) -> World:
    return build_world(
        stack.project, stack.pubsub.address, stack.firestore.address, rpc_url, launcher=launcher
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.faults", description=__doc__)
    parser.add_argument("--kills", type=int, default=300, help="about this many SIGKILLs")
    parser.add_argument("--only", action="append", help="scenarios matching this regex")
    parser.add_argument("--workers", type=int, default=2, help="trials at a time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--spawn", action="store_true", help="start each run as a new python (not forked)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "faults.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    jobs = [(s, args.seed * 100_000 + n) for n, (s, _) in enumerate(plan(args.kills, args.only))]
    print(f"fault campaign: {len(jobs)} trials, {args.workers} at a time", flush=True)
    with Stack.start(PROJECT) as stack, start_anvil() as anvil:
        os.environ.update(stack.env())
        launcher = Spawner() if args.spawn else Zygote()
        campaign = Campaign(open_world(stack, anvil.rpc_url, launcher))
        try:
            results = campaign.run(jobs, args.workers)
        finally:
            campaign.close()
            launcher.close()
    body = report(results, time.monotonic() - started, args.out)
    print()
    print(table(results))
    kills_by_point = {
        k[5:]: v for k, v in totals(results)["TOTAL"].items() if k.startswith("kill@")
    }
    print(f"\nSIGKILLs by point: {dict(sorted(kills_by_point.items()))}")
    print(f"{body['seconds']} s; figures in {args.out}")
    broken = {k: v for k, v in body["violations"].items() if v}
    print("guarantees held" if not broken else f"GUARANTEES BROKEN: {broken}")
    return 1 if broken else 0
