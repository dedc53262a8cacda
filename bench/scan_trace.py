"""Where an empty-block scan's time goes: a timeline of every network call of a run.

    python -m bench.scan_trace [--blocks 100000] [--repeat 3] [--batch N] [--history H]

Starts the emulators and an empty chain (as `make bench` does for its empty phase) and, for
each repetition, times a raw `eth_getLogs` loop over the blocks (`bench.floor.get_logs`, one
call per `--batch` blocks), then one `python main.py` scanning them in one run from no
checkpoint (with `--history H`: from the checkpoint a run over H empty blocks before them
left, untraced, with the density it learnt), then an idle run of the same relayer, each run
traced: every JSON-RPC HTTP
request (its calls), every Firestore request and the relayer's steps (lease, checkpoint check,
records query, each window's fetch, the last commit), with their start and length in
milliseconds from the run's start (`Relay.run`), and the thread that made them. A sampling
profile cannot say much of a run of 0.1 s; a timeline shows which waits lie on the path and
which overlap.

    python -m bench.scan_trace --child OUT ROOT   # inside: runs ROOT/main.py traced
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import runpy
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EVENTS: list[dict[str, Any]] = []
ORIGIN: list[float] = []  # the run's start (perf_counter), once Relay.run began


def _record(label: str, started: float, ended: float, detail: str = "") -> None:
    EVENTS.append({
        "label": label, "t0": started, "t1": ended, "detail": detail,
        "thread": threading.current_thread().name,
    })  # fmt: skip


def _timed(owner: Any, name: str, label: str, describe: Callable[..., str] | None = None) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            detail = describe(*args, **kwargs) if describe else ""
            _record(label, started, time.perf_counter(), detail)

    setattr(owner, name, wrapper)


def _rpc_calls(self: Any, url: Any, *args: Any, **kwargs: Any) -> str:
    body = kwargs.get("data") or kwargs.get("json")
    try:
        sent = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        return "?"
    calls = sent if isinstance(sent, list) else [sent]
    methods: dict[str, int] = {}
    for c in calls:
        m = c.get("method", "?") if isinstance(c, dict) else "?"
        methods[m] = methods.get(m, 0) + 1
    return ", ".join(f"{m} x{n}" if n > 1 else m for m, n in methods.items())


def _commit_writes(self: Any, request: Any = None, **kwargs: Any) -> str:
    """A commit's writes: bytes, and the top-level fields each sets (what costs Firestore)."""
    writes = (request or {}).get("writes", []) if isinstance(request, dict) else []
    out = []
    for w in writes:
        pb = getattr(w, "_pb", w)
        names = sorted(pb.update.fields) if pb.HasField("update") else []
        out.append(f"{pb.ByteSize()} B {','.join(names)}")
    return "; ".join(out)


def _install() -> None:
    import requests
    from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

    from function.core import planning
    from function.run import fetching, relay

    _timed(requests.Session, "post", "rpc", _rpc_calls)
    for name in ("batch_get_documents", "run_query", "begin_transaction", "rollback"):
        _timed(FirestoreClient, name, f"firestore.{name}")
    _timed(FirestoreClient, "commit", "firestore.commit", _commit_writes)
    run = relay.Relay.run

    @functools.wraps(run)
    def traced_run(self: Any) -> Any:
        ORIGIN.append(time.perf_counter())
        return run(self)

    relay.Relay.run = traced_run  # type: ignore[method-assign]
    _timed(relay.Relay, "_acquire", "step.acquire")
    _timed(relay._Run, "_check_checkpoint", "step.check_checkpoint")
    _timed(relay._Run, "_relay", "step.relay", lambda self, blocks, anchor: f"{len(blocks)}")
    _timed(relay._Run, "_commit_end", "step.commit_end")
    _timed(
        relay,
        "fetch",
        "step.fetch",
        lambda *a, **k: f"{a[4].start}..{a[4].end} ({len(a[4])} blocks)",
    )
    from function.adapters import chain
    from function.adapters.jsonrpc import client

    _timed(planning.Intervals, "pieces", "py.pieces")
    _timed(relay, "read_ahead", "py.read_ahead (thread start)")
    _timed(fetching, "_read_logs", "step.read_logs")
    _timed(chain.ChainReader, "logs_with_headers", "step.logs_with_headers")
    _timed(client.JsonRpc, "batch", "step.rpc_batch")
    _timed(client.JsonRpc, "_send_part", "step.rpc_send_part")


def _child(out: Path, root: Path) -> int:
    started = time.perf_counter()
    sys.path[0] = str(root)
    sys.argv = [str(root / "main.py")]
    _install()
    code = 0
    try:
        runpy.run_path(str(root / "main.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        origin = ORIGIN[0] if ORIGIN else started
        out.write_text(json.dumps({
            "process_to_run_ms": (origin - started) * 1000,
            "events": [
                {**e, "t0": (e["t0"] - origin) * 1000, "t1": (e["t1"] - origin) * 1000}
                for e in EVENTS
            ],
        }))  # fmt: skip
    return code


def timeline(path: Path, title: str, summary: dict[str, Any]) -> str:
    data = json.loads(path.read_text())
    lines = [f"-- {title}: duration_s {summary.get('duration_s')}, outcome "
             f"{summary.get('outcome')} (interpreter to Relay.run: "
             f"{data['process_to_run_ms']:.0f} ms)"]  # fmt: skip
    for e in sorted(data["events"], key=lambda e: e["t0"]):
        if e["t1"] < -1:
            continue  # the wiring's reads before the run (none expected)
        lines.append(f"  {e['t0']:8.1f} +{e['t1'] - e['t0']:7.1f} ms  {e['thread'][:12]:12}  "
                     f"{e['label']:28} {e['detail']}")  # fmt: skip
    return "\n".join(lines)


def totals(path: Path) -> dict[str, float]:
    """Milliseconds per kind of call or step in one traced run (RPC requests by their calls)."""
    out: dict[str, float] = {}
    for e in json.loads(path.read_text())["events"]:
        key = f"{e['label']} {e['detail']}" if e["label"] == "rpc" else e["label"]
        key = key if e["label"] != "step.fetch" else "step.fetch"
        out[key] = out.get(key, 0.0) + e["t1"] - e["t0"]
    return out


def summary_table(rows: list[dict[str, float]]) -> str:
    """Medians over the repetitions, one line per measure."""
    keys = sorted({k for r in rows for k in r}, key=lambda k: (not k.startswith("="), k))
    lines = [f"== medians over {len(rows)} repetitions (ms)"]
    for k in keys:
        values = [r[k] for r in rows if k in r]
        lines.append(f"  {statistics.median(values):8.1f}  {k} (n={len(values)})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        return _child(Path(args[1]), Path(args[2]))
    p = argparse.ArgumentParser(prog="python -m bench.scan_trace", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--blocks", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=0, help="RELAYER_BATCH_SIZE (default: all)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--history", type=int, default=0,
                   help="empty blocks a first, untraced run relays before the scan")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-scan-trace"))
    a = p.parse_args(args)

    from bench import floor
    from bench.chains import empty_chain
    from bench.measure import ROOT, compiled, run_timed
    from bench.relayer import relayer_env, summary_of
    from bench.topics import Topics
    from devstack.stack.services import Stack

    a.out.mkdir(parents=True, exist_ok=True)
    batch = a.batch or a.blocks
    compiled(ROOT)  # as the image has it: no start spent compiling
    with Stack.start("relayer-scan-trace") as stack:
        os.environ.update(stack.env())
        chain = empty_chain(a.blocks, a.history)
        start = chain.first_block  # the scanned blocks: start..head
        base = {**os.environ, **stack.env()}
        topic = Topics(stack.pubsub.address, stack.project).topic("scan-trace")
        rows: list[dict[str, float]] = []
        try:
            floor.get_logs(chain.rpc_url, chain.contract, start, chain.head, batch)
            for i in range(a.repeat):
                t = time.perf_counter()
                floor.get_logs(chain.rpc_url, chain.contract, start, chain.head, batch)
                raw_ms = (time.perf_counter() - t) * 1000
                row = {"= raw loop": raw_ms}
                print(f"\n== repetition {i + 1}: raw loop {raw_ms:.1f} ms", flush=True)
                env = relayer_env(
                    base, rpc_url=chain.rpc_url, contract=chain.contract, project=stack.project,
                    topic=topic, relayer_id=f"trace-{uuid.uuid4().hex[:8]}",
                    start_block=start - a.history, batch_size=batch, checkpoint_interval=100,
                )  # fmt: skip
                if a.history:
                    before = run_timed(
                        [sys.executable, "main.py"],
                        {**env, "RELAYER_BATCH_SIZE": str(a.history)},
                        cwd=ROOT,
                    )
                    done_to = (summary_of(before.stdout) or {}).get("to_block")
                    if before.code != 0 or done_to != start - 1:
                        raise SystemExit(f"the history run failed:\n{before.stderr[-2000:]}")
                for what in ("scan", "idle"):
                    out = a.out / f"{what}-{i + 1}.json"
                    argv = [sys.executable, "-m", "bench.scan_trace", "--child", str(out),
                            str(ROOT)]  # fmt: skip
                    done = run_timed(argv, env)
                    summary = summary_of(done.stdout) or {}
                    if done.code != 0:
                        raise SystemExit(f"the traced run failed:\n{done.stderr[-2000:]}")
                    print(timeline(out, what, summary), flush=True)
                    row[f"= {what} duration_s"] = float(summary.get("duration_s") or 0) * 1000
                    row.update({f"{what}: {k}": v for k, v in totals(out).items()})
                row["= scan minus idle"] = row["= scan duration_s"] - row["= idle duration_s"]
                rows.append(row)
            print("\n" + summary_table(rows), flush=True)
        finally:
            chain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
