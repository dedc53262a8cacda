"""Driving the relayer as its operators do: `python main.py` with an environment.

Every measured repetition gets its own RELAYER_ID (so it starts from no checkpoint) and its
own topic; a run that fails stops the bench, since the timing of a failed run means nothing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import ROOT, BenchError, Finished, run_timed

ABI_PATH = ROOT / "contracts" / "build" / "Escrow.json"


@dataclass(frozen=True)
class RelayerRun:
    """One `python main.py`: its process measurements and its summary record."""

    process: Finished
    summary: dict[str, Any]

    @property
    def outcome(self) -> str:
        return str(self.summary.get("outcome"))

    @property
    def duration_s(self) -> float:
        """The run as the relayer timed it: lease to release, without interpreter start."""
        return float(self.summary.get("duration_s") or 0.0)


def relayer_env(
    base: Mapping[str, str],
    *,
    rpc_url: str,
    contract: str,
    project: str,
    topic: str,
    relayer_id: str,
    start_block: int,
    batch_size: int,
    checkpoint_interval: int,
    **extra: str,
) -> dict[str, str]:
    """The environment of one relayer: `base` (the emulator hosts) plus its settings."""
    env = {k: v for k, v in base.items() if not k.startswith(("RELAYER_", "LOG_"))}
    env.update(
        CHAIN_ID="31337",
        RPC_URL=rpc_url,
        CONTRACT_ADDRESS=contract,
        ABI_URI=str(ABI_PATH),
        PUBSUB_PROJECT_ID=project,
        PUBSUB_TOPIC=topic,
        START_BLOCK=str(start_block),
        RELAYER_ID=relayer_id,
        RELAYER_BATCH_SIZE=str(batch_size),
        RELAYER_CHECKPOINT_INTERVAL=str(checkpoint_interval),
        RELAYER_CONFIRMATIONS="0",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def summary_of(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("run_summary"):
            return record
    return None


def run_relayer(env: Mapping[str, str], *, root: Path = ROOT, timeout: float = 300.0) -> RelayerRun:
    """One `python main.py` in `root`; raises `BenchError` unless it ran and succeeded."""
    done = run_timed([sys.executable, "main.py"], env, cwd=root, timeout=timeout)
    summary = summary_of(done.stdout)
    if done.code != 0 or summary is None or summary.get("outcome") == "failed":
        tail = (done.stdout + done.stderr)[-2000:]
        raise BenchError(f"python main.py exited {done.code}:\n{tail}")
    return RelayerRun(done, summary)


def catch_up(
    env: Mapping[str, str], head: int, *, root: Path = ROOT, max_runs: int = 200
) -> list[RelayerRun]:
    """Runs until the checkpoint reaches `head` (the idle run that would follow is not in)."""
    runs: list[RelayerRun] = []
    while len(runs) < max_runs:
        run = run_relayer(env, root=root)
        runs.append(run)
        if run.outcome == "idle" or run.summary.get("to_block") == head:
            return runs
    raise BenchError(f"not caught up with block {head} after {max_runs} runs")


def base_env(emulators: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with the emulator hosts, for child processes."""
    return {**os.environ, **emulators}
