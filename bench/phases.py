"""The measured phases: floor and relayer end to end on two networks, idle runs, naive
relayer, empty blocks, peak RSS over 100,000 events (the follow phase, latency and coverage,
is bench/follow.py).

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

from bench import floor
from bench.chains import Chain
from bench.follow import FollowSettings
from bench.measure import ROOT, BenchError, median, run_timed, spread
from bench.network import LOCAL, Network
from bench.relayer import ABI_PATH, RelayerRun, catch_up, relayer_env, run_relayer
from bench.topics import Topics, check_delivery
from devstack.stack.clients import reset_firestore
from devstack.stack.processes import http_session


@dataclass(frozen=True)
class Settings:
    """Sizes and relayer settings of one bench run."""

    events: int = 20_000
    event_blocks: int = 200
    empty_blocks: int = 100_000
    naive_events: int = 100
    repeat: int = 3  # repetitions of the end-to-end runs, on each network
    cheap_repeat: int = 9  # repetitions of the empty-block scans (each about 0.1 s: noisy)
    idle_repeat: int = 5  # idle runs
    naive_repeat: int = 1
    small_batch_repeat: int = 0  # the empty blocks in many small runs (0: not measured)
    batch_size: int = 1000  # covers the ~200 busy blocks in one run
    checkpoint_interval: int = 100  # the default of RELAYER_CHECKPOINT_INTERVAL
    empty_batch: int = 100_000  # one run over all empty blocks
    empty_small_batch: int = 10_000  # ... and many runs over them
    # Empty blocks before those: the past of a relayer in service, relayed by an untimed run
    # of the warm relayer first, so that its scan starts from the density it learnt (16 x
    # 10,000 covers the 100,000 in one read); 0: no warm relayer measured.
    empty_history: int = 10_000
    rss_events: int = 100_000  # the peak-RSS chain: this many events in one batch
    rss_logs_per_tx: int = 2_000
    rtt_s: float = 0.020  # the delayed network's round trip
    setup_round_trips: int = 2  # ... and what a new connection costs first (TCP, TLS 1.3)
    floor_paths: tuple[str, ...] = floor.PATHS  # publish paths the floor is timed with
    verify: bool = True  # an untimed warm-up run of each relayer checks delivery
    verify_delayed: bool = False  # ... also through the delayed network (the smoke test)
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
        self,
        chain: Chain,
        topic: str,
        label: str,
        *,
        start_block: int = 0,
        batch_size: int = 0,
        network: Network = LOCAL,
    ) -> dict[str, str]:
        """A relayer with its own RELAYER_ID, so it starts without a checkpoint."""
        return relayer_env(
            network.env(self.env),
            rpc_url=network.rpc_url(chain.rpc_url),
            contract=chain.contract,
            project=self.project,
            topic=topic,
            relayer_id=f"bench-{label}-{uuid.uuid4().hex[:8]}",
            start_block=start_block,
            batch_size=batch_size or self.settings.batch_size,
            checkpoint_interval=self.settings.checkpoint_interval,
        )


def _floor_argv(ctx: Context, chain: Chain, topic: str, path: str, network: Network) -> list[str]:
    return [
        sys.executable, "-m", "bench.floor", "--rpc-url", network.rpc_url(chain.rpc_url),
        "--address", chain.contract, "--abi", str(ABI_PATH), "--start", str(chain.first_block),
        "--end", str(chain.head), "--project", ctx.project, "--topic", topic,
        "--range-size", str(ctx.settings.batch_size), "--ordering", "true", "--publish", path,
    ]  # fmt: skip


def _floor_once(
    ctx: Context, chain: Chain, topic: str, path: str, network: Network = LOCAL
) -> dict[str, Any]:
    done = run_timed(_floor_argv(ctx, chain, topic, path, network), network.env(ctx.env))
    if done.code != 0:
        raise BenchError(f"the floor ({path}) exited {done.code}:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["published"] != len(chain.expected):
        raise BenchError(f"the floor published {result['published']} of {len(chain.expected)}")
    return {**result, "wall_s": done.wall_s, "cpu_s": done.cpu_s, "max_rss_mb": done.max_rss_mb}


def _guarded_once(
    ctx: Context, chain: Chain, topic: str, network: Network = LOCAL
) -> dict[str, Any]:
    """`python -m bench.guarded` (the floor with the least guard), Firestore emptied first
    as for the relayer; what it says it published and recorded must be every event."""
    reset_firestore(ctx.firestore_host, ctx.project)
    relayer_id = f"bench-guarded-{uuid.uuid4().hex[:8]}"
    argv = [
        sys.executable, "-m", "bench.guarded", "--rpc-url", network.rpc_url(chain.rpc_url),
        "--address", chain.contract, "--abi", str(ABI_PATH), "--start", str(chain.first_block),
        "--end", str(chain.head), "--project", ctx.project, "--topic", topic,
        "--range-size", str(ctx.settings.batch_size), "--relayer-id", relayer_id,
    ]  # fmt: skip
    done = run_timed(argv, network.env(ctx.env))
    if done.code != 0:
        raise BenchError(f"the guarded floor exited {done.code}:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    n = len(chain.expected)
    if result["published"] != n or result["recorded"] != n:
        raise BenchError(
            f"the guarded floor published {result['published']} and recorded "
            f"{result['recorded']} of {n} events"
        )
    return {**result, "relayer_id": relayer_id, "wall_s": done.wall_s, "cpu_s": done.cpu_s,
            "max_rss_mb": done.max_rss_mb}  # fmt: skip


def _recorded_events(ctx: Context, relayer_id: str) -> int:
    """The events the block records of `relayer_id` hold, read back from the emulator (its
    REST API: this process's environment need not name the emulator)."""
    url = (f"http://{ctx.firestore_host}/v1/projects/{ctx.project}/databases/(default)/"
           f"documents/relayers/{relayer_id}/blocks")  # fmt: skip
    total, token = 0, ""
    with http_session() as session:
        while True:
            reply = session.get(url, params={"pageSize": "300", "pageToken": token}, timeout=30)
            if reply.status_code != 200:
                raise BenchError(f"Firestore answered {reply.status_code}: {reply.text[:200]}")
            page = reply.json()
            for doc in page.get("documents", []):
                events = doc["fields"].get("events", {}).get("arrayValue", {})
                total += len(events.get("values", []))
            token = page.get("nextPageToken", "")
            if not token:
                return total


def _catch_up_from_scratch(
    ctx: Context, chain: Chain, topic: str, network: Network = LOCAL
) -> tuple[dict[str, str], list[RelayerRun]]:
    """A new relayer (own RELAYER_ID, Firestore emptied) from no checkpoint to the head."""
    reset_firestore(ctx.firestore_host, ctx.project)
    env = ctx.relayer_env(chain, topic, "e2e", network=network)
    runs = ctx.catch_up(env, chain.head)
    published = sum(int(r.summary.get("events_published") or 0) for r in runs)
    if published != len(chain.expected):
        raise BenchError(f"the relayer published {published} of {len(chain.expected)} events")
    return env, runs


def _verify(ctx: Context, chain: Chain, network: Network) -> dict[str, Any]:
    """One untimed run of each floor path and of the relayer to a topic with a subscription:
    what arrived must be the chain's events, each once, with the §3 payload."""
    checked: dict[str, Any] = {}
    for path in ctx.settings.floor_paths:
        topic = ctx.topics.with_subscription(f"floor-{path}-check")
        _floor_once(ctx, chain, topic, path, network)
        who = f"the floor ({path}, {network.label})"
        checked[f"floor_{path}"] = check_delivery(who, ctx.topics.pull(topic), chain.expected)
    topic = ctx.topics.with_subscription("guarded-check")
    run = _guarded_once(ctx, chain, topic, network)
    who = f"the guarded floor ({network.label})"
    checked["guarded"] = check_delivery(who, ctx.topics.pull(topic), chain.expected)
    recorded = _recorded_events(ctx, run["relayer_id"])
    if recorded != len(chain.expected):
        raise BenchError(f"{who} left {recorded} of {len(chain.expected)} events recorded")
    checked["guarded"]["recorded"] = recorded
    topic = ctx.topics.with_subscription("relayer-check")
    _catch_up_from_scratch(ctx, chain, topic, network)
    who = f"the relayer ({network.label})"
    checked["relayer"] = check_delivery(who, ctx.topics.pull(topic), chain.expected)
    return checked


def _floor_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs)}
    for key in ("wall_s", "cpu_s", "work_s", "get_logs_s", "decode_publish_s", "imports_s"):
        out[key] = spread([r[key] for r in runs])
    out["peak_rss_mb"] = spread([r["max_rss_mb"] for r in runs])
    return out


def _relayer_summary(catch_ups: list[list[RelayerRun]]) -> dict[str, Any]:
    return {
        "wall_s": spread([sum(r.process.wall_s for r in runs) for runs in catch_ups]),
        "cpu_s": spread([sum(r.process.cpu_s for r in runs) for runs in catch_ups]),
        "run_duration_s": spread([sum(r.duration_s for r in runs) for runs in catch_ups]),
        "runs_per_catch_up": max(len(runs) for runs in catch_ups),
        "peak_rss_mb": spread([r.process.max_rss_mb for runs in catch_ups for r in runs]),
        "peak_rss_exact": all(r.process.rss_exact for runs in catch_ups for r in runs),
    }


def busy_phase(ctx: Context, chain: Chain, networks: list[Network]) -> dict[str, Any]:
    """The floor, the guarded floor and the relayer over every event, on each network,
    repetitions interleaved (floor, guarded floor, relayer, then the same on the next network,
    ...) so that a slow spell of the machine weighs on all alike; then idle runs (on loopback).

    The floor: `python -m bench.floor` as a process, wall from spawn to exit. Its publish
    paths are all timed in the first repetition on each network; the faster one there is
    that network's floor, and the only one timed in the later repetitions (the two differ
    by far more than the machine's noise). The relayer: `python main.py` runs from no
    checkpoint until caught up, summed.
    """
    s = ctx.settings
    out: dict[str, Any] = {"events": len(chain.expected), "networks": {}}
    if s.verify:
        out["delivery"] = {
            n.label: _verify(ctx, chain, n)
            for n in networks
            if n.label == LOCAL.label or s.verify_delayed
        }
    floors: dict[str, dict[str, list[dict[str, Any]]]] = {n.label: {} for n in networks}
    chosen: dict[str, str] = {}
    guarded: dict[str, list[dict[str, Any]]] = {n.label: [] for n in networks}
    catch_ups: dict[str, list[list[RelayerRun]]] = {n.label: [] for n in networks}
    env: dict[str, str] = {}
    # Loopback last in each repetition: the idle runs follow its last catch-up (a catch-up
    # empties Firestore first, which would leave the idle runs something to relay again).
    order = sorted(networks, key=lambda n: n.label == LOCAL.label)
    for i in range(s.repeat):
        for network in order:
            said = []
            paths = s.floor_paths if i == 0 else (chosen[network.label],)
            for path in paths:
                run = _floor_once(ctx, chain, ctx.topics.topic("floor"), path, network)
                floors[network.label].setdefault(path, []).append(run)
                said.append(f"floor ({path}) {run['wall_s']:.2f} s")
            if i == 0:
                chosen[network.label] = min(
                    paths, key=lambda p: float(floors[network.label][p][0]["wall_s"])
                )
            least = _guarded_once(ctx, chain, ctx.topics.topic("guarded"), network)
            guarded[network.label].append(least)
            said.append(f"guarded floor {least['wall_s']:.2f} s")
            topic = ctx.topics.topic("relayer")
            run_env, runs = _catch_up_from_scratch(ctx, chain, topic, network)
            if network.label == LOCAL.label:
                env = run_env
            catch_ups[network.label].append(runs)
            ctx.say(
                f"  {i + 1}/{s.repeat} {network.label}: {', '.join(said)}, relayer "
                f"{sum(r.process.wall_s for r in runs):.2f} s in {len(runs)} run(s)"
            )
    for network in networks:
        label = network.label
        out["networks"][label] = {
            "network": network.describe(),
            "rtt_s": network.rtt_s,
            "setup_round_trips": network.setup_round_trips,
            "floor_path": chosen[label],
            "floor": {path: _floor_summary(runs) for path, runs in floors[label].items()},
            # the paths side by side, as timed in the same (first) repetition
            "floor_first_wall_s": {p: runs[0]["wall_s"] for p, runs in floors[label].items()},
            "guarded": _floor_summary(guarded[label]),
            "relayer": _relayer_summary(catch_ups[label]),
        }
    idle = [ctx.run(env) for _ in range(s.idle_repeat)]
    if any(r.outcome != "idle" for r in idle):
        raise BenchError(f"an idle run had outcome {[r.outcome for r in idle]}")
    out["idle"] = {
        "wall_s": spread([r.process.wall_s for r in idle]),
        "cpu_s": spread([r.process.cpu_s for r in idle]),
        "run_duration_s": spread([r.duration_s for r in idle]),
        "peak_rss_mb": spread([r.process.max_rss_mb for r in idle]),
    }
    return out


def rss_phase(ctx: Context, chain: Chain) -> dict[str, Any]:
    """One `python main.py` over the many-events chain in one batch (every block in one run,
    RELAYER_CHECKPOINT_INTERVAL as in the other phases): its peak RSS, wall and CPU; then
    the floor (raw requests) over the same range, for scale."""
    topic = ctx.topics.topic("rss")
    env = ctx.relayer_env(
        chain, topic, "rss", start_block=chain.first_block, batch_size=chain.blocks
    )
    run = run_relayer(env, root=ctx.relayer_root, timeout=900.0)
    published = int(run.summary.get("events_published") or 0)
    if run.summary.get("to_block") != chain.head or published != ctx.settings.rss_events:
        raise BenchError(
            f"the relayer published {published} of {ctx.settings.rss_events} events up to "
            f"block {run.summary.get('to_block')} of {chain.head} in one run"
        )
    # The floor over the same events, for scale: it too holds every log of its range.
    argv = _floor_argv(ctx, chain, ctx.topics.topic("rss-floor"), "requests", LOCAL)
    argv[argv.index("--range-size") + 1] = str(chain.blocks)
    done = run_timed(argv, ctx.env)
    floor_run = json.loads(done.stdout.strip().splitlines()[-1]) if done.code == 0 else {}
    if floor_run.get("published") != ctx.settings.rss_events:
        raise BenchError(f"the floor over the many-events chain: {done.stderr[-2000:]}")
    return {
        "events": published,
        "blocks": chain.blocks,
        "runs": 1,
        "peak_rss_mb": run.process.max_rss_mb,
        "peak_rss_exact": run.process.rss_exact,
        "wall_s": run.process.wall_s,
        "cpu_s": run.process.cpu_s,
        "run_duration_s": run.duration_s,
        "floor_peak_rss_mb": done.max_rss_mb,
        "floor_wall_s": done.wall_s,
        "floor_cpu_s": done.cpu_s,
    }


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
    for i in range(ctx.settings.naive_repeat):
        naive = relayer(ctx.topics.topic("naive"))
        started = time.perf_counter()
        published = naive.relay(first, last)
        seconds.append(time.perf_counter() - started)
        if published != n:
            raise BenchError(f"the naive relayer published {published} of {n} events")
        ctx.say(f"  naive {i + 1}/{ctx.settings.naive_repeat}: {n} events in {seconds[-1]:.2f} s")
    publisher.stop()
    db.close()  # type: ignore[no-untyped-call]
    out["seconds"] = spread(seconds)
    return out


def raw_scan_s(chain: Chain, range_size: int) -> float:
    """A raw eth_getLogs loop over the chain's blocks, `range_size` blocks per call."""
    started = time.perf_counter()
    logs = floor.get_logs(chain.rpc_url, chain.contract, chain.first_block, chain.head, range_size)
    seconds = time.perf_counter() - started
    if logs:
        raise BenchError(f"the empty chain has {len(logs)} logs")
    return seconds


def empty_phase(ctx: Context, chain: Chain, topic: str) -> dict[str, Any]:
    """Raw loop versus the relayer over the same empty blocks with the same range per call,
    repetitions interleaved (raw, relayer, raw, ...).

    One run with batch = all blocks, each followed by an idle run of the same relayer: the
    scan's own cost is the run's duration minus the idle run's (lease, head, commit: what
    every run pays whatever it scans). Two relayers in each repetition: a cold one (no
    checkpoint: the scan starts from START_BLOCK, its windows learn the density as they go)
    and, with `empty_history`, a warm one, whose untimed first run relays the empty blocks
    before the measured ones, as a relayer in service has: its scan starts from the density
    that run learnt (`planning.Density`). Then many runs of a smaller batch (cold), whose
    wall time includes a process start per run.
    """
    s = ctx.settings
    out: dict[str, Any] = {"blocks": chain.blocks, "history": chain.history}
    raw_scan_s(chain, s.empty_batch)  # warm-up: anvil's first answers are slower
    for label, batch, repeat in (
        ("one_run", s.empty_batch, s.cheap_repeat),
        ("many_runs", s.empty_small_batch, s.small_batch_repeat),
    ):
        if not repeat:
            continue
        raw: list[float] = []
        scans: list[float] = []
        idles: list[float] = []
        walls: list[float] = []
        durations: list[float] = []
        warm: dict[str, list[float]] = {"scan": [], "idle": [], "duration": [], "wall": []}
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
            if label == "one_run" and chain.history:
                past = chain.first_block - chain.history
                env = ctx.relayer_env(chain, topic, "empty-warm", start_block=past,
                                      batch_size=chain.history)  # fmt: skip
                before = ctx.run(env)  # untimed: the past, up to the measured blocks
                if before.summary.get("to_block") != chain.first_block - 1:
                    raise BenchError(f"the warm relayer's first run ended at {before.summary}")
                env["RELAYER_BATCH_SIZE"] = str(batch)
                scan = ctx.run(env)
                if scan.summary.get("to_block") != chain.head:
                    raise BenchError(f"the warm relayer's scan ended at {scan.summary}")
                idle = ctx.run(env)
                warm["scan"].append(scan.duration_s - idle.duration_s)
                warm["idle"].append(idle.duration_s)
                warm["duration"].append(scan.duration_s)
                warm["wall"].append(scan.process.wall_s)
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
        if warm["scan"]:
            out[label]["warm"] = {
                "history": chain.history,
                "relayer_scan_s": spread(warm["scan"]),
                "idle_run_duration_s": spread(warm["idle"]),
                "relayer_run_duration_s": spread(warm["duration"]),
                "relayer_wall_s": spread(warm["wall"]),
            }
        line = (f"  {label} ({batch}-block ranges): raw {median(raw):.3f} s, relayer "
                f"{median(durations):.3f} s in-run, {median(walls):.2f} s wall")  # fmt: skip
        if scans:
            line += (f"; scan (run minus idle run) {median(scans):.3f} s, "
                     f"x{_times(median(raw), median(scans))} raw")  # fmt: skip
        if warm["scan"]:
            line += (f"; warm (after {chain.history} blocks relayed): scan "
                     f"{median(warm['scan']):.3f} s, x{_times(median(raw), median(warm['scan']))} "
                     "raw")  # fmt: skip
        ctx.say(line)
    return out


def _times(raw: float, scan: float) -> str:
    """The scan's speed against the raw loop's, for the progress line: a scan that cost no
    more than its idle run (tiny chains: the smoke test) has no ratio to show."""
    return f"{raw / scan:.2f}" if scan > 0 else "-"
