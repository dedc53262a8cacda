"""The measured phases: floor, relayer end to end, idle runs, naive relayer, empty blocks
(the follow phase, latency and coverage, is bench/follow.py).

Each returns a plain dict of measurements (seconds, counts, MB) that `report` turns into
rates and ratios. What is timed, and what is left out, is said on each function.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench import floor
from bench.chains import Chain
from bench.follow import FollowSettings
from bench.measure import ROOT, BenchError, median, run_timed, spread
from bench.relayer import ABI_PATH, RelayerRun, catch_up, relayer_env, run_relayer
from bench.topics import Topics, check_delivery
from devstack.stack.clients import reset_firestore


@dataclass(frozen=True)
class Settings:
    """Sizes and relayer settings of one bench run."""

    events: int = 20_000
    event_blocks: int = 200
    empty_blocks: int = 100_000
    naive_events: int = 500
    repeat: int = 3  # repetitions of the expensive phases
    cheap_repeat: int = 9  # repetitions of the idle runs and the empty-block scans
    batch_size: int = 1000  # covers the ~200 busy blocks in one run
    checkpoint_interval: int = 100  # the default of RELAYER_CHECKPOINT_INTERVAL
    empty_batch: int = 100_000  # one run over all empty blocks
    empty_small_batch: int = 10_000  # ... and many runs over them
    verify: bool = True  # an untimed warm-up run of each relayer checks delivery
    follow: FollowSettings = field(default_factory=FollowSettings)  # bench/follow.py


@dataclass
class Context:
    """What every phase needs: the emulators, the children's environment, topic names."""

    settings: Settings
    env: dict[str, str]  # for child processes: this environment plus the emulator hosts
    project: str
    firestore_host: str
    topics: Topics
    say: Callable[[str], None]
    relayer_root: Path = ROOT  # where the measured main.py lives

    def run(self, env: dict[str, str]) -> RelayerRun:
        return run_relayer(env, root=self.relayer_root)

    def catch_up(self, env: dict[str, str], head: int) -> list[RelayerRun]:
        return catch_up(env, head, root=self.relayer_root)

    def relayer_env(
        self, chain: Chain, topic: str, label: str, *, start_block: int = 0, batch_size: int = 0
    ) -> dict[str, str]:
        """A relayer with its own RELAYER_ID, so it starts without a checkpoint."""
        return relayer_env(
            self.env,
            rpc_url=chain.rpc_url,
            contract=chain.contract,
            project=self.project,
            topic=topic,
            relayer_id=f"bench-{label}-{uuid.uuid4().hex[:8]}",
            start_block=start_block,
            batch_size=batch_size or self.settings.batch_size,
            checkpoint_interval=self.settings.checkpoint_interval,
        )


def _floor_argv(ctx: Context, chain: Chain, topic: str) -> list[str]:
    return [
        sys.executable, "-m", "bench.floor", "--rpc-url", chain.rpc_url,
        "--address", chain.contract, "--abi", str(ABI_PATH), "--start", str(chain.first_block),
        "--end", str(chain.head), "--project", ctx.project, "--topic", topic,
        "--range-size", str(ctx.settings.batch_size), "--ordering", "true",
    ]  # fmt: skip


def _floor_once(ctx: Context, chain: Chain, topic: str) -> dict[str, Any]:
    done = run_timed(_floor_argv(ctx, chain, topic), ctx.env)
    if done.code != 0:
        raise BenchError(f"the floor exited {done.code}:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["published"] != len(chain.expected):
        raise BenchError(f"the floor published {result['published']} of {len(chain.expected)}")
    return {**result, "wall_s": done.wall_s, "max_rss_mb": done.max_rss_mb}


def _catch_up_from_scratch(
    ctx: Context, chain: Chain, topic: str
) -> tuple[dict[str, str], list[RelayerRun]]:
    """A new relayer (own RELAYER_ID, Firestore emptied) from no checkpoint to the head."""
    reset_firestore(ctx.firestore_host, ctx.project)
    env = ctx.relayer_env(chain, topic, "e2e")
    runs = ctx.catch_up(env, chain.head)
    published = sum(int(r.summary.get("events_published") or 0) for r in runs)
    if published != len(chain.expected):
        raise BenchError(f"the relayer published {published} of {len(chain.expected)} events")
    return env, runs


def busy_phase(ctx: Context, chain: Chain) -> tuple[dict[str, Any], dict[str, Any]]:
    """The floor and the relayer over every event, repetitions interleaved (floor, relayer,
    floor, ...) so that a slow spell of the machine weighs on both alike; then idle runs.

    The floor: `python -m bench.floor` as a process, wall from spawn to exit, and its inner
    phases. The relayer: `python main.py` runs from no checkpoint until caught up, summed.
    """
    s = ctx.settings
    floor: dict[str, Any] = {"events": len(chain.expected)}
    relayer: dict[str, Any] = {"events": len(chain.expected)}
    if s.verify:
        topic = ctx.topics.with_subscription("floor-check")
        _floor_once(ctx, chain, topic)
        floor["delivery"] = check_delivery("the floor", ctx.topics.pull(topic), chain.expected)
        topic = ctx.topics.with_subscription("relayer-check")
        _catch_up_from_scratch(ctx, chain, topic)
        relayer["delivery"] = check_delivery("the relayer", ctx.topics.pull(topic), chain.expected)
    floors: list[dict[str, Any]] = []
    catch_ups: list[list[RelayerRun]] = []
    env: dict[str, str] = {}
    for i in range(s.repeat):
        floors.append(_floor_once(ctx, chain, ctx.topics.topic("floor")))
        env, runs = _catch_up_from_scratch(ctx, chain, ctx.topics.topic("relayer"))
        catch_ups.append(runs)
        ctx.say(
            f"  {i + 1}/{s.repeat}: floor {floors[-1]['wall_s']:.2f} s, relayer "
            f"{sum(r.process.wall_s for r in runs):.2f} s in {len(runs)} run(s)"
        )
    for key in ("wall_s", "work_s", "get_logs_s", "decode_s", "publish_s", "imports_s"):
        floor[key] = spread([f[key] for f in floors])
    floor["peak_rss_mb"] = spread([f["max_rss_mb"] for f in floors])
    relayer.update(
        wall_s=spread([sum(r.process.wall_s for r in runs) for runs in catch_ups]),
        run_duration_s=spread([sum(r.duration_s for r in runs) for runs in catch_ups]),
        runs_per_catch_up=max(len(runs) for runs in catch_ups),
        peak_rss_mb=spread([r.process.max_rss_mb for runs in catch_ups for r in runs]),
        peak_rss_exact=all(r.process.rss_exact for runs in catch_ups for r in runs),
    )
    idle = [ctx.run(env) for _ in range(s.cheap_repeat)]
    if any(r.outcome != "idle" for r in idle):
        raise BenchError(f"an idle run had outcome {[r.outcome for r in idle]}")
    relayer["idle_wall_s"] = spread([r.process.wall_s for r in idle])
    relayer["idle_run_duration_s"] = spread([r.duration_s for r in idle])
    relayer["idle_peak_rss_mb"] = spread([r.process.max_rss_mb for r in idle])
    return floor, relayer


def naive_slice(chain: Chain, n_events: int) -> tuple[int, int, int]:
    """The first blocks holding at least `n_events` events: (first, last, events in them)."""
    last = chain.expected[min(n_events, len(chain.expected)) - 1]["block_number"]
    count = sum(1 for e in chain.expected if e["block_number"] <= last)
    return chain.first_block, last, count


def naive_phase(ctx: Context, chain: Chain) -> dict[str, Any]:
    """The naive relayer in this process over a slice; clients built outside the timing."""
    from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]
    from web3 import Web3

    from bench.naive import NaiveRelayer

    first, last, n = naive_slice(chain, ctx.settings.naive_events)
    abi = json.loads(ABI_PATH.read_text())["abi"]
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url, request_kwargs={"timeout": 60}))
    db = firestore.Client(project=ctx.project)
    publisher = pubsub_v1.PublisherClient()

    def relayer(topic: str) -> NaiveRelayer:
        path = publisher.topic_path(ctx.project, topic)
        return NaiveRelayer(
            w3, chain.contract, abi, db, publisher, path, ctx.topics.fresh_id("naive")
        )

    out: dict[str, Any] = {"events": n, "blocks": [first, last]}
    if ctx.settings.verify:
        topic = ctx.topics.with_subscription("naive-check")
        relayer(topic).relay(first, last)
        expected = [e for e in chain.expected if e["block_number"] <= last]
        out["delivery"] = check_delivery("the naive relayer", ctx.topics.pull(topic), expected)
    seconds = []
    for i in range(ctx.settings.repeat):
        naive = relayer(ctx.topics.topic("naive"))
        started = time.perf_counter()
        published = naive.relay(first, last)
        seconds.append(time.perf_counter() - started)
        if published != n:
            raise BenchError(f"the naive relayer published {published} of {n} events")
        ctx.say(f"  naive {i + 1}/{ctx.settings.repeat}: {n} events in {seconds[-1]:.2f} s")
    publisher.stop()
    db.close()  # type: ignore[no-untyped-call]
    out["seconds"] = spread(seconds)
    return out


def raw_scan_s(chain: Chain, range_size: int) -> float:
    """A raw eth_getLogs loop over the chain's blocks, `range_size` blocks per call."""
    session = requests.Session()
    session.trust_env = False
    started = time.perf_counter()
    logs = floor.get_logs(
        session, chain.rpc_url, chain.contract, chain.first_block, chain.head, range_size
    )
    seconds = time.perf_counter() - started
    if logs:
        raise BenchError(f"the empty chain has {len(logs)} logs")
    return seconds


def empty_phase(ctx: Context, chain: Chain, topic: str) -> dict[str, Any]:
    """Raw loop versus the relayer over the same empty blocks with the same range per call,
    repetitions interleaved (raw, relayer, raw, ...).

    One run with batch = all blocks, each followed by an idle run of the same relayer: the
    scan's own cost is the run's duration minus the idle run's (lease, head, commit: what
    every run pays whatever it scans). Then many runs of a smaller batch, whose wall time
    includes a process start per run.
    """
    s = ctx.settings
    out: dict[str, Any] = {"blocks": chain.blocks}
    raw_scan_s(chain, s.empty_batch)  # warm-up: anvil's first answers are slower
    for label, batch, repeat in (
        ("one_run", s.empty_batch, s.cheap_repeat),
        ("many_runs", s.empty_small_batch, s.repeat),
    ):
        raw: list[float] = []
        scans: list[float] = []
        idles: list[float] = []
        walls: list[float] = []
        durations: list[float] = []
        runs_n = 0
        for _ in range(repeat):
            raw.append(raw_scan_s(chain, batch))
            env = ctx.relayer_env(
                chain, topic, "empty", start_block=chain.first_block, batch_size=batch
            )
            runs = ctx.catch_up(env, chain.head)
            walls.append(sum(r.process.wall_s for r in runs))
            durations.append(sum(r.duration_s for r in runs))
            runs_n = len(runs)
            if label == "one_run":
                idle = ctx.run(env)
                scans.append(runs[0].duration_s - idle.duration_s)
                idles.append(idle.duration_s)
        out[label] = {
            "range_size": batch,
            "runs": runs_n,
            "raw_s": spread(raw),
            "relayer_wall_s": spread(walls),
            "relayer_run_duration_s": spread(durations),
        }
        if scans:
            out[label]["relayer_scan_s"] = spread(scans)
            out[label]["idle_run_duration_s"] = spread(idles)
        ctx.say(
            f"  {label} ({batch}-block ranges): raw {median(raw):.3f} s, relayer "
            f"{median(durations):.3f} s in-run, {median(walls):.2f} s wall"
        )
    return out
