"""`python -m bench.parallel_backfill`: a historical range backfilled by 1, 2 and 4 tasks.

Each measurement starts N processes of `relayer backfill --parallel` with
CLOUD_RUN_TASK_INDEX 0..N-1 and CLOUD_RUN_TASK_COUNT N, as a Cloud Run Job execution with
N tasks does, under a fresh RELAYER_ID (no checkpoint) and a topic without subscriptions
(the emulator drops what it accepts); the wall time is from the first spawn to the last
exit, interpreter starts included. One measurement at a time. A last, untimed 4-task run
publishes to a subscribed topic and every event must arrive exactly once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence

from bench.chains import events_chain
from bench.measure import ROOT, BenchError
from bench.relayer import relayer_env
from bench.topics import Topics
from devstack.stack.services import Stack

PROJECT = "relayer-bench"


def _task(index: int, count: int) -> dict[str, str]:
    return {
        "PYTHONPATH": str(ROOT),
        "CLOUD_RUN_TASK_INDEX": str(index),
        "CLOUD_RUN_TASK_COUNT": str(count),
    }


def backfill(env: dict[str, str], last: int, tasks: int) -> float:
    """Wall seconds of one execution of `tasks` tasks over blocks 0..last."""
    args = ["-c", "from function.ops.cli import main; main()", "backfill", "--from-block",
            "0", "--to-block", str(last), "--parallel"]  # fmt: skip
    began = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**env, **_task(i, tasks)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(tasks)
    ]
    for p in procs:
        out, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise BenchError(f"task failed ({p.returncode}): {(out + err)[-800:]}")
    return time.monotonic() - began


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    a = parser.parse_args(argv)
    with Stack.start(PROJECT) as stack:
        os.environ.update(stack.env())
        topics = Topics(stack.pubsub.address, stack.project)
        chain = events_chain(a.events, a.blocks)
        try:
            last = chain.head

            def env(label: str, topic: str) -> dict[str, str]:
                return relayer_env(
                    os.environ,
                    rpc_url=chain.rpc_url,
                    contract=chain.contract,
                    project=stack.project,
                    topic=topic,
                    relayer_id=topics.fresh_id(label),
                    start_block=last + 1,  # the live job's: the backfill lies below it
                    batch_size=a.batch_size,
                    checkpoint_interval=a.batch_size,
                    LOG_LEVEL="WARNING",
                )

            print(f"{len(chain.expected)} events over blocks 0..{last}, "
                  f"RELAYER_BATCH_SIZE={a.batch_size}")  # fmt: skip
            for tasks in (1, 2, 4):
                times = sorted(
                    backfill(env(f"p{tasks}", topics.topic(f"p{tasks}")), last, tasks)
                    for _ in range(a.repeat)
                )
                print(f"{tasks} task(s): {' '.join(f'{t:.1f}' for t in times)} s, "
                      f"{len(chain.expected) / times[0]:.0f} events/s at best")  # fmt: skip
            topic = topics.with_subscription("check")
            backfill(env("check", topic), last, 4)
            counts = Counter(m.attributes["event_id"] for m in topics.pull(topic))
            expected = {e["event_id"] for e in chain.expected}
            if set(counts) != expected or max(counts.values()) != 1:
                raise BenchError("the 4-task backfill did not deliver every event exactly once")
            print("4 tasks: every event delivered exactly once")
        finally:
            chain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
