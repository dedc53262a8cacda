"""The follow phase: latency and coverage on a chain that never stops, and what they cost.

On its own anvil mining a block a second, an escrow emits an event every `emit_every_s`.
Two segments, one after the other, each with its own relayer (RELAYER_ID), topic and an
ordered subscription:
- **follow**: `python main.py` with RELAYER_RUN_SECONDS=`window_s`, RELAYER_POLL_INTERVAL=
  `poll_s`, started every `period_s` as a scheduler would, `executions` times, overlapping;
- **one batch**: RELAYER_RUN_SECONDS=0 started every `batch_period_s`, `batch_executions`
  times: the one-minute schedule compressed (see bench/README.md for the 60 s figure).
Per event, latency is the `publish_time` Pub/Sub stamped on its message minus the time the
block `RELAYER_CONFIRMATIONS` after its own was first reported by the node (when it became
eligible). Coverage is the longest time between two consecutive looks of all the follow
executions, from their DEBUG look records. Every event must arrive exactly once, in chain
order; CPU is each process's own (wait4) and the operations are counted by
bench/counted_main.py, which runs main.py.

    python -m bench.follow [--quick]   # this phase alone, with its own emulators
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from web3 import Web3

from bench.follow_chain import BlockClock, SteadyEmitter
from bench.follow_measures import check_delivery, gaps, latencies, ops, timeline
from bench.follow_runs import pull_timed, scheduled
from bench.measure import ROOT
from bench.relayer import relayer_env
from devstack.chain.escrow import deploy_escrow
from devstack.stack.clients import create_topic_and_subscription
from devstack.stack.services import start_anvil

if TYPE_CHECKING:
    from bench.phases import Context


@dataclass(frozen=True)
class FollowSettings:
    """The follow phase's schedule; the defaults take about 90 s."""

    poll_s: float = 2.0  # RELAYER_POLL_INTERVAL of the follow segment
    # RELAYER_RUN_SECONDS a few seconds longer than the schedule's period, as the README
    # advises (e.g. 70 s on a one-minute schedule): the next execution is up and waiting when
    # a window ends, so the hand-over leaves no gap of an execution's start-up.
    window_s: float = 14.0
    period_s: float = 10.0  # the scheduler's period for the follow executions
    executions: int = 4
    batch_period_s: float = 20.0  # one-batch executions: the compressed one-minute schedule
    batch_executions: int = 3
    confirmations: int = 2  # RELAYER_CONFIRMATIONS
    emit_every_s: float = 0.5
    block_time_s: float = 1.0


QUICK_FOLLOW = FollowSettings(window_s=11.0, period_s=8.0, executions=3, batch_period_s=12.0)
ANALYTIC_PERIOD_S = 60.0  # the real schedule's period the one-batch figure is scaled to


def _segment(
    ctx: Context,
    clock: BlockClock,
    rpc_url: str,
    escrow: str,
    label: str,
    *,
    period_s: float,
    count: int,
    emit_s: float,
    extra: dict[str, str],
) -> dict[str, Any]:
    """One relayer started `count` times every `period_s` while the escrow emits for `emit_s`;
    what arrived, how late, the looks, CPU and operations."""
    s: FollowSettings = ctx.settings.follow
    topic = ctx.topics.fresh_id(label)
    create_topic_and_subscription(
        ctx.topics.host, ctx.project, topic, f"{topic}-sub", ordering=True
    )
    start = clock.head() + 1
    env = relayer_env(
        ctx.env, rpc_url=rpc_url, contract=escrow, project=ctx.project, topic=topic,
        relayer_id=ctx.topics.fresh_id(f"{label}-relayer"), start_block=start,
        batch_size=ctx.settings.batch_size, checkpoint_interval=ctx.settings.checkpoint_interval,
        RELAYER_CONFIRMATIONS=str(s.confirmations), LOG_LEVEL="DEBUG", **extra,
    )  # fmt: skip
    emitter = SteadyEmitter(rpc_url, escrow, s.emit_every_s, time.monotonic() + emit_s)
    emitter.start()
    argv = [sys.executable, str(ROOT / "bench" / "counted_main.py"), str(ctx.relayer_root)]
    window = float(extra.get("RELAYER_RUN_SECONDS", "0"))
    runs = scheduled(
        argv, env, ctx.relayer_root, period_s=period_s, count=count, timeout_s=window + 120
    )
    landed = emitter.landed()
    if landed:
        clock.wait_for(landed[-1].block_number + s.confirmations)
    pulled = pull_timed(ctx.topics.host, ctx.project, f"{topic}-sub")
    delivery = check_delivery(label, landed, pulled)
    looks = sorted(t for r in runs for t in r.looks)
    latency = latencies(clock, landed, pulled, s.confirmations, first_look=looks[0])
    return {
        "relayer_settings": {k: v for k, v in env.items() if k.startswith("RELAYER_")},
        "start_block": start,
        "events": len(landed),
        "delivery": delivery,
        "latency_s": latency,
        "looks": len(looks),
        "looks_per_execution": [len(r.looks) for r in runs],
        "max_gap_s": max((b - a for a, b in itertools.pairwise(looks)), default=0.0),
        "gaps_s": gaps(runs),
        "outcomes": [r.summary.get("outcome") for r in runs],
        "handed_over": sum(1 for r in runs if r.summary.get("handed_over_by")),
        "waited_s": [r.summary.get("waited_s") for r in runs if r.summary.get("waited_s")],
        "cpu_s": [round(r.cpu_s, 3) for r in runs],
        "wall_s": [round(r.wall_s, 3) for r in runs],
        "ops": ops(runs),
        "span_s": count * period_s,
        "timeline": timeline(runs),
    }


def follow_phase(ctx: Context) -> dict[str, Any]:
    """Both segments on one anvil mining a block every `block_time_s`."""
    s: FollowSettings = ctx.settings.follow
    anvil = start_anvil(block_time=s.block_time_s)
    clock: BlockClock | None = None
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
        escrow = deploy_escrow(w3)
        clock = BlockClock(anvil.rpc_url)
        clock.start()
        # The follow segment emits until its last execution's last look can still relay it:
        # that look is a poll interval before its window ends, and an event is eligible a
        # block plus the confirmations after it is sent.
        last_look = (s.executions - 1) * s.period_s + s.window_s - s.poll_s
        margin = (s.confirmations + 2) * s.block_time_s
        ctx.say(
            f"  follow: {s.executions} executions every {s.period_s:g} s, window "
            f"{s.window_s:g} s, poll {s.poll_s:g} s, {s.confirmations} confirmations"
        )
        follow = _segment(
            ctx, clock, anvil.rpc_url, escrow, "follow", period_s=s.period_s,
            count=s.executions, emit_s=last_look - margin,
            extra={"RELAYER_RUN_SECONDS": f"{s.window_s:g}",
                   "RELAYER_POLL_INTERVAL": f"{s.poll_s:g}"},
        )  # fmt: skip
        ctx.say(_said(follow))
        ctx.say(f"  one batch: {s.batch_executions} executions every {s.batch_period_s:g} s")
        batch = _segment(
            ctx, clock, anvil.rpc_url, escrow, "batch", period_s=s.batch_period_s,
            count=s.batch_executions, emit_s=(s.batch_executions - 1) * s.batch_period_s - margin,
            extra={"RELAYER_RUN_SECONDS": "0", "RELAYER_POLL_INTERVAL": f"{s.batch_period_s:g}"},
        )  # fmt: skip
        ctx.say(_said(batch))
        offsets = clock.offsets_from_timestamps(range(follow["start_block"], clock.head() + 1))
    finally:
        if clock is not None:
            clock.stop()
        anvil.stop()
    return {
        "settings": asdict(s),
        "follow": follow,
        "batch": batch,
        "block_seen_after_timestamp_s": {
            "median": statistics.median(offsets), "min": min(offsets), "max": max(offsets),
        },
        "cpu": _cpu(s, follow, batch),
    }  # fmt: skip


def _said(segment: dict[str, Any]) -> str:
    lat = segment["latency_s"]
    return (
        f"    {segment['events']} events exactly once in order; latency p50 {lat['p50']:.2f} s, "
        f"p95 {lat['p95']:.2f} s ({lat['n']} events); {segment['looks']} looks, longest gap "
        f"{segment['max_gap_s']:.2f} s; CPU {sum(segment['cpu_s']):.2f} s"
    )


def _cpu(s: FollowSettings, follow: dict[str, Any], batch: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per hour: as measured, and modelled for follow mode on the deployed
    schedule (window 60 s, poll 5 s: a start-up and 12 looks a minute)."""
    per_batch_run = statistics.median(batch["cpu_s"])
    looks = follow["looks_per_execution"]
    per_follow_run = statistics.mean(follow["cpu_s"])
    per_look = max(0.0, (per_follow_run - per_batch_run) / max(1.0, statistics.mean(looks) - 1))
    return {
        "follow_measured_per_hour": sum(follow["cpu_s"]) / follow["span_s"] * 3600,
        "batch_per_run": per_batch_run,
        "batch_60s_per_hour": per_batch_run * 3600 / ANALYTIC_PERIOD_S,
        "follow_per_extra_look": per_look,
        "follow_60s_poll5_per_hour": 60 * (per_batch_run + 11 * per_look),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """This phase alone against its own emulators: prints its rows and its details."""
    import dataclasses
    import os

    from bench.follow_report import follow_rates, follow_rows, follow_targets
    from bench.phases import Context, Settings
    from bench.run import PROJECT, say
    from bench.topics import Topics
    from devstack.stack.services import Stack

    p = argparse.ArgumentParser(prog="python -m bench.follow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a shorter schedule (about 60 s)")
    a = p.parse_args(argv)
    settings = Settings()
    if a.quick:
        settings = dataclasses.replace(settings, follow=QUICK_FOLLOW)
    with Stack.start(PROJECT) as stack:
        os.environ.update(stack.env())
        topics = Topics(stack.pubsub.address, stack.project)
        env = {**os.environ, **stack.env()}
        ctx = Context(settings, env, stack.project, stack.firestore.address, topics, say)
        out = follow_phase(ctx)
    r = follow_rates(out)
    print(json.dumps(out, indent=2))
    for name, value, unit, note in follow_rows(r):
        print(f"{name:<44} {value:>10.2f} {unit:<7} {note}")
    for t in follow_targets(r):
        print(f"target {t['target']}: {t['value']:.2f} ({t['wanted']}): "
              + ("holds" if t["holds"] else "MISSED"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
