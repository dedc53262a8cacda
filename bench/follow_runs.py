"""Executions started as a scheduler starts them, and what they left: looks, summaries,
operations, CPU; and the messages with the time Pub/Sub stamped on them.

A scheduler starts a new process every period whether or not the previous one is still
running; so does `scheduled`. Each process is reaped with `wait4`, which gives its own CPU
time (user + system) without the bench's: the figure the cost model needs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.pubsub_v1 import SubscriberClient
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

from bench.measure import BenchError
from bench.relayer import summary_of


@dataclass
class Execution:
    """One scheduled process: when it was started (wall), how it ended, what it logged."""

    started_at: float
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return summary_of(self.stdout) or {}

    @property
    def looks(self) -> list[float]:
        """When each look ended (wall time), from the relayer's DEBUG look records."""
        return [
            datetime.fromisoformat(r["looked_at"]).timestamp()
            for r in self.records
            if "look" in r and "looked_at" in r
        ]

    @property
    def ops(self) -> dict[str, int]:
        for line in reversed(self.stderr.splitlines()):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "bench_ops" in record:
                return {str(k): int(v) for k, v in record["bench_ops"].items()}
        return {}


def _records(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _reap(
    proc: subprocess.Popen[bytes],
    execution: Execution,
    out: IO[bytes],
    err: IO[bytes],
    timeout_s: float,
) -> None:
    began = time.monotonic()
    deadline = began + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    execution.wall_s = time.monotonic() - began
    execution.code = proc.returncode = os.waitstatus_to_exitcode(status)
    execution.cpu_s = usage.ru_utime + usage.ru_stime
    out.seek(0)
    err.seek(0)
    execution.stdout = out.read().decode(errors="replace")
    execution.stderr = err.read().decode(errors="replace")
    execution.records = _records(execution.stdout)


def scheduled(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    *,
    period_s: float,
    count: int,
    timeout_s: float,
) -> list[Execution]:
    """Start `argv` every `period_s` seconds, `count` times, overlapping as they may; wait for
    all. Raises BenchError if one fails (a failed run's timing means nothing)."""
    executions: list[Execution] = []
    reapers: list[threading.Thread] = []
    t0 = time.monotonic()
    with ExitStack() as files:
        for k in range(count):
            time.sleep(max(0.0, t0 + k * period_s - time.monotonic()))
            out = files.enter_context(tempfile.TemporaryFile())
            err = files.enter_context(tempfile.TemporaryFile())
            execution = Execution(time.time())
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True,
            )  # fmt: skip
            reaper = threading.Thread(
                target=_reap, args=(proc, execution, out, err, timeout_s), daemon=True
            )
            reaper.start()
            executions.append(execution)
            reapers.append(reaper)
        for reaper in reapers:
            reaper.join()
    for i, e in enumerate(executions):
        if e.code != 0 or e.summary.get("outcome") in (None, "failed"):
            tail = (e.stdout + e.stderr)[-2000:]
            raise BenchError(f"scheduled execution {i + 1} exited {e.code}:\n{tail}")
    return executions


@dataclass(frozen=True)
class Timed:
    """One message pulled: its event id and the time Pub/Sub stamped on it (wall seconds)."""

    event_id: str
    publish_time: float


def pull_timed(host: str, project: str, subscription: str, idle_s: float = 1.0) -> list[Timed]:
    """Pull and ack until nothing new comes for `idle_s`; in delivery order."""
    channel = grpc.insecure_channel(host)
    subscriber = SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    path = subscriber.subscription_path(project, subscription)
    pulled: list[Timed] = []
    try:
        idle_until = time.monotonic() + idle_s
        while (left := idle_until - time.monotonic()) > 0:
            try:
                reply = subscriber.pull(
                    request={"subscription": path, "max_messages": 1000},
                    timeout=max(left, 0.05),
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                continue
            if not reply.received_messages:
                time.sleep(0.01)
                continue
            for received in reply.received_messages:
                m = received.message
                event_id = json.loads(m.data)["event_id"]
                pulled.append(Timed(event_id, m.publish_time.timestamp()))
            subscriber.acknowledge(
                subscription=path,
                ack_ids=[r.ack_id for r in reply.received_messages],
                timeout=30.0,
            )
            idle_until = time.monotonic() + idle_s
    finally:
        channel.close()
    return pulled
