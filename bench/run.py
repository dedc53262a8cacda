"""`make bench`: start the local stack, prepare two chains, measure, print, write results.json.

    python -m bench.run [--quick] [--repeat N] [--rtt-ms MS] [--only PHASES] [--out PATH]

Phases, in one run on one machine: the floor and the relayer end to end, on loopback and
through injected round trips, with idle runs after them (busy); the naive relayer on a slice
(naive); the empty-block scans (empty); the peak RSS of one run over 100,000 events (rss);
then follow mode's latency and coverage on a chain that mines a block a second (follow).
See bench/README.md for what each number means and how the comparisons are kept fair.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chains import Chain, empty_chain, events_chain, many_events_chain
from bench.follow import QUICK_FOLLOW, follow_phase
from bench.follow_report import follow_rates
from bench.measure import ROOT, compiled
from bench.network import LOCAL, delayed
from bench.phases import Context, Settings, busy_phase, empty_phase, naive_phase, rss_phase
from bench.report import rates, table, with_targets
from bench.topics import Topics
from devstack.stack.services import Stack

PROJECT = "relayer-bench"
QUICK = Settings(
    events=2_000, event_blocks=40, empty_blocks=20_000, naive_events=100, repeat=3,
    cheap_repeat=3, idle_repeat=3, empty_batch=20_000, empty_small_batch=5_000, empty_history=2_000,
    rss_events=20_000,
    follow=QUICK_FOLLOW,
)  # fmt: skip


def say(text: str) -> None:
    print(text, flush=True)


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _measured_code(rev: str | None) -> dict[str, Any]:
    if rev is None:
        dirty = bool(_git("status", "--porcelain", "--", "function", "main.py"))
        return {"commit": _git("rev-parse", "HEAD"), "working_tree": True, "dirty": dirty}
    return {"commit": _git("rev-parse", rev), "working_tree": False}


@contextmanager
def _checkout(rev: str | None) -> Iterator[Path]:
    """The relayer to measure: this working tree, or `rev` exported to a scratch directory
    (`git archive`: the repository is not touched), so edits in progress do not disturb it."""
    if rev is None:
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="bench-relayer-") as scratch:
        archive = subprocess.run(["git", "archive", rev, "main.py", "function"], cwd=ROOT,
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        yield Path(scratch)


PHASES = ("busy", "naive", "empty", "rss", "follow")


def measure(
    settings: Settings,
    stack: Stack,
    started: float,
    relayer_root: Path = ROOT,
    phases: Sequence[str] = PHASES,
) -> dict[str, Any]:
    """Every phase (or those named) against a running stack; the content of results.json."""
    ctx = Context(
        settings=settings,
        env={**os.environ, **stack.env()},
        project=stack.project,
        firestore_host=stack.firestore.address,
        topics=Topics(stack.pubsub.address, stack.project),
        say=say,
        relayer_root=relayer_root,
    )
    details: dict[str, Any] = {}
    phase_s: dict[str, float] = {}
    chains: list[Chain] = []

    def made(label: str, make: Callable[[], Chain]) -> Chain:
        t = time.perf_counter()
        chain = make()
        chains.append(chain)
        phase_s[f"chain_{label}"] = round(time.perf_counter() - t, 1)
        say(f"[chain]   {label}: blocks {chain.first_block}..{chain.head} in "
            f"{time.perf_counter() - t:.1f} s")  # fmt: skip
        return chain

    def timed(label: str, work: Callable[[], dict[str, Any]]) -> None:
        t = time.perf_counter()
        details[label] = work()
        phase_s[label] = round(time.perf_counter() - t, 1)

    def rss() -> None:
        """The many-events chain, then the one run over it. Peak RSS does not depend on how
        busy the machine is, so this runs while the other chains are made (unmeasured
        work): the run's wall and CPU are reported, but they are not figures to compare."""
        say(f"[chain] many: {settings.rss_events} events in a few blocks, third anvil ...")
        many = made("many", lambda: many_events_chain(settings.rss_events,
                                                      per_tx=settings.rss_logs_per_tx))  # fmt: skip
        say(f"[rss] python main.py over {settings.rss_events} events in one batch (meanwhile)")
        timed("rss", lambda: rss_phase(ctx, many))
        many.stop()  # its state is large and nothing else reads it
        say(f"[rss]   peak RSS {details['rss']['peak_rss_mb']:.0f} MB, "
            f"{details['rss']['wall_s']:.1f} s wall")  # fmt: skip

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rss") as pool:
            rss_done = pool.submit(rss) if "rss" in phases else None
            if "empty" in phases:
                say(f"[chain] empty: {settings.empty_blocks} empty blocks after "
                    f"{settings.empty_history}, second anvil ...")  # fmt: skip
                empty = made("empty", lambda: empty_chain(settings.empty_blocks,
                                                          settings.empty_history))  # fmt: skip
            if "busy" in phases or "naive" in phases:
                say(f"[chain] busy: {settings.events} events over ~{settings.event_blocks} "
                    "blocks ...")  # fmt: skip
                busy = made("busy", lambda: events_chain(settings.events, settings.event_blocks))
            if rss_done is not None:
                rss_done.result()  # before measuring anything else
        if "busy" in phases:
            with delayed(ctx.env, [busy.rpc_url], settings.rtt_s,
                         settings.setup_round_trips) as network:  # fmt: skip
                say("[busy] the floor (python -m bench.floor, each publish path) and the relayer")
                say("[busy]   (python main.py from no checkpoint to caught up), alternating, on")
                say(f"[busy]   loopback and through {network.describe()}; then idle runs")
                timed("busy", lambda: busy_phase(ctx, busy, [LOCAL, network]))
        if "naive" in phases:
            say(f"[naive] web3 + a transaction and a publish per event, {settings.naive_events}"
                " events")  # fmt: skip
            timed("naive", lambda: naive_phase(ctx, busy))
        if "empty" in phases:
            say("[empty] scanning the empty blocks: raw eth_getLogs loop vs relayer")
            timed("empty", lambda: empty_phase(ctx, empty, ctx.topics.topic("empty")))
    finally:
        for chain in chains:
            chain.stop()
    if "follow" in phases:
        say("[follow] follow mode and one batch on a chain mining a block a second")
        timed("follow", lambda: follow_phase(ctx))
    headline: dict[str, Any] = {}
    if set(PHASES) <= set(phases):
        headline = with_targets(
            {**rates(details["busy"], details["naive"], details["empty"], details["rss"]),
             **follow_rates(details["follow"])}
        )  # fmt: skip
    return {
        **headline,
        "details": details,
        "phases": list(phases),
        "phase_s": phase_s,
        "settings": dataclasses.asdict(settings),
        "relayer_settings": {
            "RELAYER_BATCH_SIZE": settings.batch_size,
            "RELAYER_CHECKPOINT_INTERVAL": settings.checkpoint_interval,
            "RELAYER_CONFIRMATIONS": 0,
            "START_BLOCK": 0,
            "RELAYER_ORDERING": "true (default)",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "finished_at": datetime.now(UTC).isoformat(),
        "bench_s": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="small chains: a minute, not five")
    p.add_argument("--repeat", type=int, help="repetitions of the end-to-end runs (default 3)")
    p.add_argument("--rtt-ms", type=float, help="the delayed network's round trip (default 20)")
    p.add_argument("--setup-round-trips", type=int,
                   help="round trips a new connection costs there first (default 2)")  # fmt: skip
    p.add_argument("--only", metavar="PHASES",
                   help=f"comma-separated phases of {','.join(PHASES)}: those alone, results "
                   "without the table and targets (which need every phase)")  # fmt: skip
    p.add_argument("--checkpoint-interval", type=int, help="RELAYER_CHECKPOINT_INTERVAL")
    p.add_argument("--no-verify", action="store_true", help="skip the delivery checks")
    p.add_argument("--small-batches", type=int, metavar="N",
                   help="also scan the empty blocks in small batches, N repetitions")  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--relayer-rev", metavar="REV",
                   help="measure main.py and function/ as committed in REV (default: as they "
                   "are in the working tree)")  # fmt: skip
    a = p.parse_args(argv)
    settings = QUICK if a.quick else Settings()
    if a.repeat:
        cheap = max(a.repeat, settings.cheap_repeat)
        settings = dataclasses.replace(settings, repeat=a.repeat, cheap_repeat=cheap)
    if a.checkpoint_interval:
        settings = dataclasses.replace(settings, checkpoint_interval=a.checkpoint_interval)
    if a.no_verify:
        settings = dataclasses.replace(settings, verify=False)
    if a.small_batches is not None:
        settings = dataclasses.replace(settings, small_batch_repeat=a.small_batches)
    if a.rtt_ms is not None:
        settings = dataclasses.replace(settings, rtt_s=a.rtt_ms / 1000)
    if a.setup_round_trips is not None:
        settings = dataclasses.replace(settings, setup_round_trips=a.setup_round_trips)
    phases = tuple(a.only.split(",")) if a.only else PHASES
    if unknown := set(phases) - set(PHASES):
        p.error(f"--only: unknown phases {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    code = _measured_code(a.relayer_rev)
    say(f"[code] relayer at {code['commit'][:12]}"
        + (" (working tree)" if code["working_tree"] else " (exported)"))  # fmt: skip
    say("[stack] starting the Pub/Sub, Firestore and storage emulators ...")
    with _checkout(a.relayer_rev) as root, Stack.start(PROJECT) as stack:
        compiled(root, ROOT)  # the relayer measured, and the floor (bench/, its function/)
        os.environ.update(stack.env())  # for the clients this process builds (naive, topics)
        say(f"[stack]   up in {time.perf_counter() - started:.1f} s")
        results = measure(settings, stack, started, root, phases)
    results["relayer_code"] = code
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    say("")
    if "targets" in results:
        say(table(results, results["details"]))
    else:
        say(json.dumps(results["details"], indent=1)[:20000])
    phase_s = ", ".join(f"{k} {v:.0f} s" for k, v in results["phase_s"].items())
    say(f"\nwritten to {a.out} ({results['bench_s']:.0f} s; {phase_s})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
