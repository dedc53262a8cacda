"""Where a relayer run's time goes: `python main.py` on the bench chain, profiled.

    python -m bench.profile [--events 20000] [--rtt-ms 0 20] [--top 20] [--out DIR] [--cprofile]
                            [--floor]

Starts the emulators and a busy chain (as `make bench` does) and, for each `--rtt-ms` (0:
loopback; above 0: the chain and both emulators behind delaying proxies, as in the bench's
delayed network), times one plain `python main.py` from no checkpoint to the head, then one
more under a sampling profiler (py-spy's method in the process itself: py-spy is not
installed here). Every 2 ms a thread reads every other thread's stack
(`sys._current_frames`) and CPU clock (`pthread_getcpuclockid`), so each sample weighs
- **wall**: the time since the last sample, for the main thread only: its stacks are the
  run's critical path (while it waits for the `rpc-call` thread that fetches or the `publish`
  threads, its stack says where it waits);
- **CPU**: the CPU time each thread used since the last sample, every thread: the shares add
  up to the process's CPU (that is how the time of a C call that holds the GIL, a
  `json.loads` or a protobuf build, lands on the line that called it).
Tables, each a share of the total: the leaf functions (where the time is spent), and the
innermost line of the relayer's own code (`function/`, `main.py`) on the stack (who spends
it: the line that calls into a library). A sampled run takes about 20 % more CPU than a
plain one (mostly the short switch interval, SWITCH_S), spread evenly, unlike cProfile,
which multiplies the CPU of code that makes many small calls by 2 to 3.

`--floor` also profiles `python -m bench.floor` over the same chain, the same ways, so the
two can be read side by side (its own lines, `bench/floor.py`, count as "ours" in the tables).

`--cprofile` also profiles each clock with cProfile (every thread its own profiler, merged;
written to DIR as .prof files for `python -m pstats`): exact call counts, inflated times.

    python -m bench.profile --child MODE OUT ROOT [-- FLOOR ARGS]   # inside: runs ROOT/main.py
                                                                    # (or the floor) profiled
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import runpy
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from bench.network import LOCAL, Network

INTERVAL_S = 0.002
# A thread that waits for the GIL gets it when the holder releases it (a blocking call, a
# ctypes call: pycryptodome's keccak releases it several times per hash) or when the holder
# is made to, after the switch interval (5 ms by default). With the default, the sampler's
# samples land mostly on such releases and the CPU since the last sample lands on them (a
# checksum measured at 0.54 s of CPU showed as 1.5 s). A switch interval far below the
# sampling interval makes a sample land where the holder happens to be.
SWITCH_S = 0.00005
Frame = tuple[str, str, int]  # file, function, line
Weights = defaultdict[tuple[Frame, ...], float]  # seconds per stack (leaf first)
TIMERS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


# --- inside the profiled process -------------------------------------------------------------


def _stack(frame: FrameType | None) -> tuple[Frame, ...]:
    """Leaf first."""
    out: list[Frame] = []
    while frame is not None and len(out) < 200:
        code = frame.f_code
        out.append((code.co_filename, code.co_name, frame.f_lineno or 0))
        frame = frame.f_back
    return tuple(out)


class Sampler:
    """Samples every other thread's stack and CPU clock every INTERVAL_S."""

    def __init__(self) -> None:
        self.wall: Weights = defaultdict(float)  # main thread: seconds per stack
        self.cpu: Weights = defaultdict(float)  # all threads: CPU seconds per stack
        self.cpu_by_thread: dict[str, float] = defaultdict(float)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._main = threading.main_thread().ident

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        last_cpu: dict[int, float] = {}
        last = time.perf_counter()
        while not self._stop.wait(INTERVAL_S):
            now = time.perf_counter()
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = _stack(frame)
                if ident == self._main:
                    self.wall[stack] += now - last
                try:
                    cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except OSError:
                    continue  # the thread ended meanwhile
                before = last_cpu.get(ident, 0.0)
                used = cpu - before if cpu >= before else cpu  # a new thread reusing an ident
                last_cpu[ident] = cpu
                self.cpu[stack] += used
                self.cpu_by_thread[names.get(ident, "?").split("-")[0]] += used
            self.samples += 1
            last = now

    def dump(self, path: Path) -> None:
        def listed(counter: Weights) -> list[Any]:
            return [[list(map(list, stack)), w] for stack, w in counter.items()]

        path.write_text(json.dumps({
            "interval_s": INTERVAL_S, "samples": self.samples, "wall": listed(self.wall),
            "cpu": listed(self.cpu), "cpu_by_thread": dict(self.cpu_by_thread),
        }))  # fmt: skip


def _run_main(root: Path, floor: Sequence[str] = ()) -> int:
    """ROOT/main.py as `python main.py` runs it; with `floor`, `python -m bench.floor
    *floor` instead."""
    sys.path[0] = str(root)
    try:
        if floor:
            sys.argv = ["bench.floor", *floor]
            runpy.run_module("bench.floor", run_name="__main__", alter_sys=True)
        else:
            sys.argv = [str(root / "main.py")]
            runpy.run_path(str(root / "main.py"), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


def _child(mode: str, out: Path, root: Path, floor: Sequence[str] = ()) -> int:
    """Run root/main.py as `python main.py` would (or the floor, given its arguments),
    profiled: `sample`, or cProfile with the `cpu` or `wall` clock (every thread its own
    profiler, merged)."""
    if mode == "sample":
        sys.setswitchinterval(SWITCH_S)
        sampler = Sampler()
        sampler.start()
        try:
            return _run_main(root, floor)
        finally:
            sampler.stop()
            sampler.dump(out)
    timer = TIMERS[mode]
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    thread_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile(timer)
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            thread_run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile(timer)
    main.enable()
    try:
        return _run_main(root, floor)
    finally:
        main.disable()
        merged = pstats.Stats(main)
        with lock:
            for profile in profiles:
                profile.disable()  # a daemon thread may still be in its loop
                merged.add(profile)
        merged.dump_stats(str(out))


# --- the tables ------------------------------------------------------------------------------


def _short(path: str, root: Path) -> str:
    if path.startswith(str(root) + "/"):
        return path[len(str(root)) + 1 :]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path


def _ours(frame: Frame, root: Path) -> bool:
    short = _short(frame[0], root)
    return short.startswith("function/") or short in ("main.py", "bench/floor.py")


def _tables(weights: list[Any], root: Path, top: int) -> tuple[float, list[str]]:
    """Leaf functions, innermost relayer lines, relayer functions inclusive: shares."""
    leaf: dict[str, float] = defaultdict(float)
    ours: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)
    total = 0.0
    for stack, w in weights:
        frames: list[Frame] = [(f, n, int(line)) for f, n, line in stack]
        total += w
        if not frames:
            continue
        f, name, _ = frames[0]
        leaf[f"{_short(f, root)}({name})"] += w
        at = next((i for i, fr in enumerate(frames) if _ours(fr, root)), None)
        if at is None:
            ours["(not in function/ or main.py)"] += w
        else:
            f, name, line = frames[at]
            importing = any("importlib" in fr[0] for fr in frames[:at])
            ours[f"{'import at ' if importing else ''}{_short(f, root)}:{line}({name})"] += w
        for seen in {f"{_short(fr[0], root)}({fr[1]})" for fr in frames if _ours(fr, root)}:
            inclusive[seen] += w

    def rows(weights: dict[str, float], *, collapse: bool = False) -> list[str]:
        if collapse:  # callers that only call one callee have its weight: one row for them all
            same: dict[float, list[str]] = defaultdict(list)
            for key, w in weights.items():
                same[round(w, 9)].append(key)
            weights = {
                min(keys) + (f" (and {len(keys) - 1} more, same weight)" if keys[1:] else ""): w
                for w, keys in same.items()
            }
        ranked = sorted(weights.items(), key=lambda kv: -kv[1])[:top]
        return [f"  {w / max(total, 1e-9) * 100:5.1f} %  {w:7.3f} s  {key}" for key, w in ranked]

    lines = [
        f"-- where: leaf functions (top {top})", *rows(leaf),
        f"-- who: the innermost line of function/ or main.py on the stack (top {top})",
        *rows(ours), f"-- relayer functions, inclusive (top {top})",
        *rows(inclusive, collapse=True),
    ]  # fmt: skip
    return total, lines


def sample_report(path: Path, label: str, root: Path, top: int) -> str:
    data = json.loads(path.read_text())
    out = [f"== {label}: {data['samples']} samples every {data['interval_s'] * 1000:g} ms"]
    wall, lines = _tables(data["wall"], root, top)
    out += [f"== wall, main thread: {wall:.2f} s sampled", *lines]
    cpu, lines = _tables(data["cpu"], root, top)
    by_thread = sorted(data["cpu_by_thread"].items(), key=lambda kv: -kv[1])
    threads = ", ".join(f"{k} {v:.2f} s" for k, v in by_thread)
    out += [f"== CPU, all threads: {cpu:.2f} s sampled ({threads})", *lines]
    return "\n".join(out)


def cprofile_report(path: Path, label: str, root: Path, top: int) -> str:
    stats = pstats.Stats(str(path))
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = sorted(table.items(), key=lambda e: -e[1][2])[:top]
    out = [f"== {label}: {total:.2f} s over all threads; top {top} by own time"]
    for (f, line, name), (_, nc, tt, ct, _) in entries:
        out.append(f"  {tt / total * 100:5.1f} %  {tt:7.3f} s own  {ct:7.3f} s incl  {nc:>8}  "
                   f"{_short(f, root)}:{line}({name})")  # fmt: skip
    return "\n".join(out)


# --- the driver ------------------------------------------------------------------------------


def _floor_args(chain: Any, network: Network, project: str, topics: Any) -> list[str]:
    """`bench.floor`'s arguments as the bench gives them (its faster publish path)."""
    from bench.relayer import ABI_PATH

    return [
        "--rpc-url", network.rpc_url(chain.rpc_url), "--address", chain.contract,
        "--abi", str(ABI_PATH), "--start", str(chain.first_block), "--end", str(chain.head),
        "--project", project, "--topic", topics.topic("profile-floor"), "--range-size", "1000",
        "--ordering", "true", "--publish", "requests",
    ]  # fmt: skip


def _profile_floor(
    network: Network,
    base: dict[str, str],
    floor: Sequence[str],
    out_dir: Path,
    top: int,
    modes: Sequence[str],
) -> None:
    """The floor over the same chain, plain and then profiled as the relayer was."""
    from bench.measure import ROOT, run_timed

    env = network.env(base)
    plain = run_timed([sys.executable, "-m", "bench.floor", *floor], env)
    print(f"\n[plain] python -m bench.floor ({network.describe()}): {plain.wall_s:.2f} s "
          f"wall, {plain.cpu_s:.2f} s CPU", flush=True)  # fmt: skip
    tag = "local" if not network.rtt_s else f"rtt{network.rtt_s * 1000:g}ms"
    for mode in modes:
        out = out_dir / f"floor-{tag}-{mode}.{'json' if mode == 'sample' else 'prof'}"
        argv = [sys.executable, "-m", "bench.profile", "--child", mode, str(out), str(ROOT),
                "--", *floor]  # fmt: skip
        done = run_timed(argv, env)
        if done.code != 0:
            raise SystemExit(f"the profiled floor failed ({done.code}):\n{done.stderr[-2000:]}")
        print(f"\n[{mode}] profiled floor ({network.describe()}): {done.wall_s:.2f} s wall, "
              f"{done.cpu_s:.2f} s CPU (written to {out})", flush=True)  # fmt: skip
        show = sample_report if mode == "sample" else cprofile_report
        print(show(out, f"floor {tag}, {mode}", ROOT, top), flush=True)


def _profile(
    network: Network,
    env: Callable[[], dict[str, str]],
    events: int,
    out_dir: Path,
    top: int,
    modes: Sequence[str],
) -> None:
    """A plain run for reference, then one per profiling mode; the tables printed."""
    from bench.measure import ROOT, run_timed
    from bench.relayer import summary_of

    plain = run_timed([sys.executable, "main.py"], env())
    summary = summary_of(plain.stdout) or {}
    print(f"\n[plain] python main.py ({network.describe()}): {plain.wall_s:.2f} s wall, "
          f"{plain.cpu_s:.2f} s CPU, {summary.get('events_published')} events, "
          f"{summary.get('duration_s')} s in-run", flush=True)  # fmt: skip
    tag = "local" if not network.rtt_s else f"rtt{network.rtt_s * 1000:g}ms"
    for mode in modes:
        out = out_dir / f"main-{tag}-{mode}.{'json' if mode == 'sample' else 'prof'}"
        argv = [sys.executable, "-m", "bench.profile", "--child", mode, str(out), str(ROOT)]
        done = run_timed(argv, env())
        summary = summary_of(done.stdout) or {}
        if done.code != 0 or summary.get("events_published") != events:
            raise SystemExit(f"the profiled run failed ({done.code}):\n{done.stderr[-2000:]}")
        print(f"\n[{mode}] profiled ({network.describe()}): {done.wall_s:.2f} s wall, "
              f"{done.cpu_s:.2f} s CPU, {summary.get('duration_s')} s in-run (written to "
              f"{out})", flush=True)  # fmt: skip
        show = sample_report if mode == "sample" else cprofile_report
        print(show(out, f"{tag}, {mode}", ROOT, top), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        return _child(
            args[1], Path(args[2]), Path(args[3]), args[5:] if args[4:5] == ["--"] else ()
        )
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--blocks", type=int, default=200)
    p.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0],
                   help="one profile per round trip (0: loopback; default 0)")  # fmt: skip
    p.add_argument("--setup-round-trips", type=int, default=2)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-profile"))
    p.add_argument("--cprofile", action="store_true", help="also cProfile, both clocks")
    p.add_argument("--floor", action="store_true",
                   help="also profile the floor (python -m bench.floor) the same way")  # fmt: skip
    a = p.parse_args(args)
    modes = ["sample", *(("cpu", "wall") if a.cprofile else ())]

    from bench.chains import events_chain
    from bench.measure import ROOT, compiled
    from bench.network import delayed
    from bench.relayer import relayer_env
    from bench.topics import Topics
    from devstack.stack.clients import reset_firestore
    from devstack.stack.services import Stack

    a.out.mkdir(parents=True, exist_ok=True)
    compiled(ROOT)  # as the image has it: no start spent compiling
    with Stack.start("relayer-profile") as stack:
        os.environ.update(stack.env())
        print(f"[chain] {a.events} events over ~{a.blocks} blocks ...", flush=True)
        chain = events_chain(a.events, a.blocks)
        base = {**os.environ, **stack.env()}
        topics = Topics(stack.pubsub.address, stack.project)
        try:
            for rtt_ms in a.rtt_ms:
                with ExitStack() as proxies:
                    network = LOCAL
                    if rtt_ms:
                        network = proxies.enter_context(
                            delayed(base, [chain.rpc_url], rtt_ms / 1000, a.setup_round_trips)
                        )

                    def env(network: Network = network) -> dict[str, str]:
                        """A new relayer (own RELAYER_ID, Firestore emptied) from block 0."""
                        reset_firestore(stack.firestore.address, stack.project)
                        return relayer_env(
                            network.env(base), rpc_url=network.rpc_url(chain.rpc_url),
                            contract=chain.contract, project=stack.project,
                            topic=topics.topic("profile"),
                            relayer_id=f"profile-{uuid.uuid4().hex[:8]}", start_block=0,
                            batch_size=1000, checkpoint_interval=100,
                        )  # fmt: skip

                    _profile(network, env, len(chain.expected), a.out, a.top, modes)
                    if a.floor:
                        floor = _floor_args(chain, network, stack.project, topics)
                        _profile_floor(network, base, floor, a.out, a.top, modes)
        finally:
            chain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
