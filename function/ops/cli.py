"""`relayer`: the operator's command line (run, status, backfill, replay, verify, reset).

Every command reads the same environment as the job (README, Configuration) and goes
through the same guard: a backfill has its own checkpoint and shares the processed-event set,
so it can run beside the scheduled job without publishing twice; all backfills of a relayer
share one lease, so overlapping ones take turns instead of publishing the same blocks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

import function.logs as logs
import function.ops.app as app
from function.config import Settings, logging_settings
from function.core.blockrecords import states_of
from function.core.checkpoint import Commit
from function.core.messages import event_payload
from function.core.model import PUBLISHED
from function.core.planning import BlockRange, split
from function.errors import RelayerError
from function.stopping import StopSignal

if TYPE_CHECKING:  # the commands import what they use when they run: a fast --help
    from function.adapters.chain import ChainReader
    from function.adapters.transactions import TransactionReader
    from function.core.catalogue import EventCatalogue
    from function.core.logspan import RangeLimits
    from function.core.watch import Watch
    from function.run.fetching import Fetched


_META = "relayer."  # where the shared options keep their values (ctx.meta is one per run)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value is not False:  # given, before or after the subcommand
        ctx.meta[_META + str(param.name)] = value
    return value


def _load_env_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    from function.ops.cli_env import load_under, read_env_file

    try:
        values = read_env_file(value)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    overridden = load_under(os.environ, values)
    if overridden:
        click.echo(f"--env-file {value}: the shell's {', '.join(overridden)} kept", err=True)


def _shared(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command takes, before or after its name."""
    for option in (
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            expose_value=False,
            callback=_remember,
            help="Print the result as one JSON document on stdout.",
        ),
        click.option(
            "--env-file",
            metavar="FILE",
            expose_value=False,
            callback=_load_env_file,
            help="Read the job's settings from KEY=VALUE lines (e.g. `relayer job-env`); "
            "variables already set in the shell win.",
        ),
        click.option(
            "--relayer",
            metavar="ID",
            expose_value=False,
            callback=_remember,
            help="The relayer to act on, when RELAYER_CONFIG lists several (its RELAYER_ID).",
        ),
    ):
        command = option(command)
    return command


def _as_json() -> bool:
    return bool(click.get_current_context().meta.get(_META + "as_json"))


def _result(text: str, data: dict[str, Any]) -> None:
    """A command's result: a line for people, or its JSON document with --json."""
    if _as_json():
        click.echo(json.dumps(data, default=str, sort_keys=True))
    else:
        click.echo(text)


def _progress(length: int, label: str) -> Any:
    """A progress bar for people: on stderr (stdout keeps the result), only on a terminal."""
    return click.progressbar(
        length=length, label=label, file=sys.stderr, hidden=not sys.stderr.isatty()
    )


def _fleet() -> list[Settings]:
    level, fmt, labels = logging_settings(os.environ)
    logs.setup(level, "text" if "LOG_FORMAT" not in os.environ else fmt, labels)
    try:
        return app.load_deployment(os.environ)[1]
    except RelayerError as e:
        _fail(str(e), e.exit_code)


def _settings() -> Settings:
    """The relayer a command acts on: the only one, or the one --relayer names."""
    fleet = _fleet()
    wanted = click.get_current_context().meta.get(_META + "relayer")
    if wanted is None and len(fleet) == 1:
        return fleet[0]
    for settings in fleet:
        if settings.relayer_id == wanted:
            return settings
    ids = ", ".join(s.relayer_id for s in fleet)
    _fail(f"--relayer {wanted or '(missing)'}: name one of the configured relayers: {ids}", 2)


def _fail(message: str, code: int = 1) -> NoReturn:
    for line in message.splitlines() or [""]:  # several invalid settings: a line each
        click.secho(f"error: {line}", fg="red", err=True)
    context = click.get_current_context(silent=True)
    if context is not None and context.meta.get(_META + "as_json"):
        click.echo(json.dumps({"error": message, "exit_code": code}))
    sys.exit(code)


def _range(from_block: int, to_block: int) -> BlockRange:
    if from_block < 0 or to_block < from_block:
        _fail(f"--from-block {from_block} --to-block {to_block} is not a range of blocks", 2)
    return BlockRange(from_block, to_block)


def _stop_on_signals() -> StopSignal:
    stop = StopSignal()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evm-pubsub-relayer", prog_name="relayer")
@_shared
def main() -> None:
    """Operate the EVM → Pub/Sub relayer configured by the environment (see README)."""


@main.command()
@_shared
def run() -> None:
    """One relay run, exactly like `python main.py` (exit 0 ok/idle/skipped, 1 failed, 2 bad
    configuration)."""
    sys.exit(app.run_job(os.environ))


@main.command()
@_shared
def status() -> None:
    """The relayers' status as a table; exit 1 when any is unhealthy."""
    body = app.status_body(_fleet())
    if _as_json():
        click.echo(json.dumps(body, default=str, sort_keys=True))
        sys.exit(0 if body["healthy"] else 1)
    rows = [("relayer", "chain", "next block", "head", "lag", "last run", "published", "health")]
    for r in body["relayers"]:
        last = (r.get("last_run") or {}).get("outcome", "-")
        health = "healthy" if r["healthy"] else "UNHEALTHY: " + "; ".join(r["reasons"])
        rows.append(
            (
                r["relayer_id"],
                str(r["chain_id"]),
                str(r["next_block"]),
                str(r["head_block"]),
                str(r["lag_blocks"]),
                last,
                str(r["totals"]["events_published"]),
                health,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for n, row in enumerate(rows):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]
        click.secho(line, bold=n == 0, fg=None if n == 0 or "UNHEALTHY" not in line else "red")
    for r in body["relayers"]:
        if r.get("factory"):
            click.echo(f"{r['relayer_id']}: {r['children']} children of factory {r['factory']}")
        _backfill_lines(r["relayer_id"], r.get("backfills") or [])
    sys.exit(0 if body["healthy"] else 1)


def _backfill_lines(relayer_id: str, backfills: list[dict[str, Any]]) -> None:
    """Each backfill task of a relayer (a slice of a parallel one) and how far it got."""
    if backfills:
        click.secho(f"backfills of {relayer_id}", bold=True)
    for b in backfills:
        span = b["to_block"] - b["from_block"] + 1
        done = min(span, b["next_block"] - b["from_block"])
        state = "done" if b["done"] else "running" if b["running"] else "stopped (run it again)"
        click.echo(
            f"  {b['task']}  blocks {b['from_block']}..{b['to_block']}  next {b['next_block']}  "
            f"{100 * done // span}%  {b['events_published']} events  {state}"
        )


@main.command()
@_shared
@click.option("--from-block", type=int, required=True, help="First block to relay.")
@click.option("--to-block", type=int, required=True, help="Last block to relay.")
@click.option(
    "--replay-expired",
    is_flag=True,
    help="Allow a range the job relayed more than RELAYER_EVENT_TTL_DAYS ago: its events "
    'without a record are published again marked replay="true".',
)
@click.option(
    "--parallel",
    is_flag=True,
    help="Relay only this Cloud Run task's slice of the range (CLOUD_RUN_TASK_INDEX of "
    "CLOUD_RUN_TASK_COUNT): an execution with N tasks relays the range N slices at once.",
)
def backfill(from_block: int, to_block: int, replay_expired: bool, parallel: bool) -> None:
    """Relay a historical range through the same guard, beside the scheduled job.

    Resumable: run the same command again after a crash and it continues where it stopped
    (with --parallel, each slice from its own checkpoint). The range must lie below the
    scheduled job's checkpoint. Its messages carry backfill="true" and no ordering key.
    Backfills of disjoint ranges run at once; one whose range overlaps a running backfill
    of another range waits for it, so no block is published by both.
    """
    from function.config import load_runtime
    from function.core.backfills import slice_of, task_of
    from function.ops.wiring import build_relay, firestore_client, specs_of, state_store
    from function.run.marking import BackfillSink

    settings = _settings()
    try:
        # A bad ABI (or RELAYER_FACTORY) is named before Firestore is read: its fix is the
        # operator's whatever else is wrong, and the read may wait on an unreachable
        # Firestore for minutes. The run uses what was read here (`build_relay`).
        specs_read = specs_of(settings)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    whole = _range(from_block, to_block)
    blocks: BlockRange | None = whole
    if parallel:
        try:
            runtime = load_runtime(os.environ)
        except RelayerError as e:
            _fail(str(e), e.exit_code)
        blocks = slice_of(whole, runtime.task_index, runtime.task_count)
        if blocks is None:  # more tasks than blocks
            _result(
                f"backfill: task {runtime.task_index} of {runtime.task_count} has no blocks "
                f"of {whole.start}..{whole.end}",
                {"task": None, "events_published": 0, "interrupted": False},
            )
            return
    assert blocks is not None
    job = state_store(settings, firestore_client(settings)).read() or {}
    below = int(job.get("next_block", settings.start_block))
    if whole.end >= below:  # the whole range: every task of an execution decides alike
        _fail(
            f"--to-block {whole.end} reaches the scheduled job's range (it relays from block "
            f"{below} on): backfill only blocks below {below}",
            2,
        )
    replay = _relayed_before(settings, blocks, below, replay_expired)
    task = task_of(blocks)
    stop = _stop_on_signals()
    # No ordering key (docs/CONTRACT.md §3): slices and the live job publish at once, so no
    # order could hold across them; consumers deduplicate on event_id.
    settings = dataclasses.replace(settings, start_block=blocks.start, ordering=False)
    try:
        relay = build_relay(settings, stop, task=task, specs_read=specs_read)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    relay.sink = BackfillSink(relay.sink)
    relay.last_block = blocks.end
    relay.replay = replay
    published = 0
    waiting = False
    with _progress(len(blocks), f"backfill {task}") as bar:
        while not stop.is_set():
            outcome = relay.run()
            s = outcome.summary
            if outcome.error is not None or s.outcome == "failed":
                _fail(
                    f"backfill stopped: {s.error}; run the same command to resume",
                    outcome.exit_code or 1,
                )
            if s.outcome == "skipped":
                # A backfill of an overlapping range (or this range's, run twice) is
                # running: wait for it; this range's own checkpoint resumes after.
                if not waiting:
                    click.echo(
                        f"another backfill of {settings.relayer_id} is relaying blocks of "
                        f"{task}: waiting for it (Ctrl-C stops; run the same command to resume)",
                        err=True,
                    )
                waiting = True
                time.sleep(min(2.0, settings.lease_s / 4))
                continue
            published += s.events_published
            if s.to_block is not None:
                bar.update(s.to_block - (s.from_block or s.to_block) + 1)
            if s.outcome == "idle":
                break
    _result(
        f"backfill {task}: {published} events published"
        + (" (interrupted: run it again to resume)" if stop.is_set() else ""),
        {
            "task": task,
            "from_block": blocks.start,
            "to_block": blocks.end,
            "range": [whole.start, whole.end],
            "events_published": published,
            "interrupted": stop.is_set(),
        },
    )


def _relayed_from(settings: Settings, stored: dict[str, Any]) -> int:
    """The first block the job relayed for the configured contracts: START_BLOCK, or, when
    every one was added later (`relayer contracts --accept`), the block it was added at."""
    added = stored.get("contracts_added") or {}
    since = [added.get(a.lower()) for a in settings.contracts]
    if since and all(isinstance(n, int) for n in since):
        return max(settings.start_block, min(int(n) for n in since if n is not None))
    return settings.start_block


def _relayed_before(
    settings: Settings, blocks: BlockRange, job_next: int, replay_expired: bool
) -> tuple[BlockRange, ...]:
    """The parts of a backfill's range relayed before (by the scheduled job, from
    START_BLOCK to its checkpoint, or by earlier backfills) whose records may have expired:
    refused unless --replay-expired, then their unrecorded events go out marked
    replay="true"."""
    from function.ops.wiring import chain_reader, firestore_client, state_store

    store = state_store(settings, firestore_client(settings))
    try:
        stored = store.read() or {}
        job = (_relayed_from(settings, stored), job_next - 1)
        job_first = stored.get("first_commit_at")
        earlier = [(BlockRange(*job), job_first)] if job[0] <= job[1] else []
        own = f"backfill-{blocks.start}-{blocks.end}"  # resuming itself is no replay
        earlier += [r for task, r in store.backfilled().items() if task != own]
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    overlaps = [
        (BlockRange(max(r.start, blocks.start), min(r.end, blocks.end)), first)
        for r, first in earlier
        if max(r.start, blocks.start) <= min(r.end, blocks.end)
    ]
    if not overlaps:
        return ()
    chain = chain_reader(settings)
    now = datetime.now(UTC)
    ttl = settings.event_ttl_days
    stale = [
        r
        for r, first in overlaps
        if may_have_expired(chain.headers([r.start])[r.start].timestamp, first, now, ttl)
    ]
    if stale and not replay_expired:
        shown = ", ".join(f"{r.start}..{r.end}" for r in stale[:3])
        _fail(
            f"blocks {shown} were relayed before and are older than "
            f"RELAYER_EVENT_TTL_DAYS={settings.event_ttl_days:g}: their records may have "
            "expired, so their events would be published again as if new. Add "
            '--replay-expired to publish them again marked replay="true", or backfill only '
            "blocks not relayed before",
            2,
        )
    return tuple(stale)


def _scan(
    settings: Settings, blocks: BlockRange, label: str, *, as_published: bool = False
) -> Iterator[tuple[BlockRange, Any]]:
    """The chain's events of the range, window by window, with a progress bar;
    `as_published`: with what the messages carry beyond the log (RELAYER_INCLUDE)."""
    from function.core.logspan import RangeLimits
    from function.core.watch import Watch
    from function.ops.wiring import chain_reader, specs_of, transaction_reader
    from function.run.fetching import creations

    try:
        specs, factory = specs_of(settings)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    chain = chain_reader(settings)
    transactions = transaction_reader(settings, chain) if as_published else None
    watch = Watch(settings.contracts, factory, by_topic=specs.topic_filter is not None)
    if factory is not None and blocks.start > 0:
        # The children created before the range, from the chain itself (not the state:
        # verify checks the state against the chain), from genesis as a run looks for them.
        before = BlockRange(0, blocks.start - 1)
        with _progress(len(before), f"{label}: the factory's creations before") as bar:
            try:
                spans = RangeLimits(len(before), start=settings.batch_size)
                lenient = settings.deadletter_topic is not None  # as a run passes them over
                read_to = before.start
                for end, found in creations(
                    chain, watch, before, settings.chain_id, spans, lenient
                ):
                    watch.add(found)
                    bar.update(end.number + 1 - read_to)
                    read_to = end.number + 1
            except RelayerError as e:
                _fail(f"{label} stopped reading the factory's creations: {e}", e.exit_code)
    limits = RangeLimits(settings.batch_size)  # what one batch learns, the next ones know
    with _progress(len(blocks), label) as bar:
        for window in split(blocks, settings.batch_size):
            try:
                fetched = _fetch_window(chain, specs, watch, settings, window, transactions, limits)
            except RelayerError as e:
                _fail(f"{label} stopped at blocks {window.start}..{window.end}: {e}", e.exit_code)
            watch.add(fetched.children)
            yield window, fetched
            bar.update(len(window))


def _fetch_window(
    chain: ChainReader,
    specs: EventCatalogue,
    watch: Watch,
    settings: Settings,
    window: BlockRange,
    transactions: TransactionReader | None = None,
    limits: RangeLimits | None = None,
) -> Fetched:
    from function.run.fetching import fetch

    return fetch(
        chain,
        specs,
        watch,
        settings.chain_id,
        window,
        dead_letters=True,
        limits=limits,
        transactions=transactions,
    )


def _recorded(settings: Settings, blocks: BlockRange) -> dict[str, str]:
    from function.ops.wiring import firestore_client, state_store

    store = state_store(settings, firestore_client(settings))
    try:
        records = store.records.read(blocks.start, blocks.end)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    return states_of(records)


@main.command()
@_shared
@click.option("--from-block", type=int, required=True)
@click.option("--to-block", type=int, required=True)
@click.option("--yes", is_flag=True, help="Confirm: consumers will receive these events again.")
def replay(from_block: int, to_block: int, yes: bool) -> None:
    """Publish again events already relayed (for a consumer that lost data), with the
    attribute replay="true". Events not relayed yet are left to the job or a backfill."""
    from function.adapters.pubsub import Publisher, make_channel
    from function.run.dispatch import Dispatcher

    if not yes:
        _fail("replay publishes events again to every subscriber: add --yes to confirm", 2)
    settings = _settings()
    blocks = _range(from_block, to_block)
    recorded = _recorded(settings, blocks)
    publisher = Publisher(make_channel(), settings.pubsub_project, settings.topic)
    try:
        publisher.check_topic()
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    dispatcher = Dispatcher(publisher, StopSignal(), settings.ordering)
    sent = skipped = 0
    for _, fetched in _scan(settings, blocks, "replay", as_published=True):
        events = [e for e in fetched.events if recorded.get(e.event_id) == PUBLISHED]
        skipped += len(fetched.events) - len(events)
        payloads = [event_payload(e) for e in events]
        results = dispatcher.send_payloads(payloads, _deadline(), replay=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            _fail(f"Pub/Sub refused {len(failed)} replayed messages: {failed[0]}")
        sent += len(events)
    _result(
        f"replayed {sent} events of blocks {blocks.start}..{blocks.end}; {skipped} not "
        "relayed yet were left alone",
        {
            "from_block": blocks.start,
            "to_block": blocks.end,
            "replayed": sent,
            "not_relayed_yet": skipped,
        },
    )


def may_have_expired(
    block_time: int, first_commit: datetime | None, now: datetime, ttl_days: float
) -> bool:
    """Whether the records of a block stamped `block_time` (and of every newer one) may have
    expired by `now`. A record is written after its block and after its relayer's first
    commit (`first_commit`, unknown for state older than that field), so it expires no
    sooner than either plus the TTL (with a margin for clocks: a day, at most a tenth of
    the TTL)."""
    ttl_s = ttl_days * 86_400
    oldest = now.timestamp() - ttl_s + min(86_400.0, ttl_s / 10)
    written = first_commit.timestamp() if first_commit is not None else block_time
    return max(block_time, written) <= oldest


def _deadline(seconds: float = 120.0) -> Callable[[], float]:
    end = time.monotonic() + seconds
    return lambda: end


@main.command()
@_shared
@click.option("--from-block", type=int, required=True)
@click.option("--to-block", type=int, required=True)
def verify(from_block: int, to_block: int) -> None:
    """Compare the chain's logs with the processed-event set: report gaps and strays, exit 1
    when an event below the checkpoint is missing or a record is not on the chain."""
    from function.ops.wiring import firestore_client, state_store

    settings = _settings()
    blocks = _range(from_block, to_block)
    job = state_store(settings, firestore_client(settings)).read() or {}
    checkpoint = int(job.get("next_block", settings.start_block))
    recorded = _recorded(settings, blocks)
    on_chain: dict[str, int] = {}
    for _, fetched in _scan(settings, blocks, "verify"):
        on_chain.update((e.event_id, e.block_number) for e in fetched.events)
        on_chain.update((d.event_id, d.block_number) for d in fetched.dead)
    missing = sorted(i for i, n in on_chain.items() if n < checkpoint and i not in recorded)
    pending = sum(1 for i, n in on_chain.items() if n >= checkpoint and i not in recorded)
    stray = sorted(i for i, s in recorded.items() if s == PUBLISHED and i not in on_chain)
    found = sum(1 for i in on_chain if i in recorded)
    if _as_json():
        report = {
            "from_block": blocks.start,
            "to_block": blocks.end,
            "checkpoint": checkpoint,
            "on_chain": len(on_chain),
            "recorded": found,
            "missing": missing,
            "not_yet_reached": pending,
            "stray": stray,
        }
        click.echo(json.dumps(report, sort_keys=True))
        sys.exit(1 if missing or stray else 0)
    click.echo(
        f"blocks {blocks.start}..{blocks.end}: {len(on_chain)} events on chain, "
        f"{found} recorded, {len(missing)} missing, "
        f"{pending} not yet reached (checkpoint {checkpoint}), {len(stray)} stray records"
    )
    for event_id in missing[:20]:
        click.secho(f"missing: {event_id}", fg="red")
    for event_id in stray[:20]:
        click.secho(f"stray:   {event_id} (recorded as published, not on the chain)", fg="red")
    sys.exit(1 if missing or stray else 0)


@main.command()
@_shared
@click.option("--to-block", type=int, required=True, help="The new next block to relay.")
@click.option("--yes", is_flag=True, help="Confirm: blocks may be skipped or scanned again.")
@click.option(
    "--replay-expired",
    is_flag=True,
    help="Allow moving back over blocks older than RELAYER_EVENT_TTL_DAYS: their events "
    'are published again marked replay="true".',
)
def reset(to_block: int, yes: bool, replay_expired: bool) -> None:
    """Move the checkpoint, under the lease so no run is in the middle of it. Events already
    recorded are still never published twice; blocks skipped forward are not relayed.

    Records expire after RELAYER_EVENT_TTL_DAYS: moving back over older blocks would publish
    their events again as if new, so it is refused unless --replay-expired, which marks the
    events found without a record replay="true"."""
    from function.core.checkpoint import Progress
    from function.core.model import BlockRef
    from function.ops.wiring import chain_reader, firestore_client, state_store

    if not yes:
        _fail("reset moves the checkpoint: add --yes to confirm", 2)
    if to_block < 0:
        _fail(f"--to-block {to_block} is not a block number", 2)
    settings = _settings()
    store = state_store(settings, firestore_client(settings))
    now = datetime.now(UTC)
    try:
        grant = store.acquire(f"reset-{os.getpid()}", now, settings.lease_s)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    if grant is None:
        _fail("a run holds the lease right now: try again when it has finished")
    try:
        chain = chain_reader(settings)
        recent: tuple[BlockRef, ...] = ()
        block_hash = None
        if to_block > 0:
            block_hash = chain.headers([to_block - 1])[to_block - 1].hash
            recent = (BlockRef(to_block - 1, block_hash),)
        replay = None
        if grant.next_block is not None and to_block < grant.next_block:
            replay = BlockRange(to_block, grant.next_block - 1)
            oldest = chain.headers([to_block])[to_block].timestamp
            first = (store.read() or {}).get("first_commit_at")
            expired = may_have_expired(oldest, first, now, settings.event_ttl_days)
            if expired and not replay_expired:
                _fail(
                    f"blocks from {to_block} on were relayed before and are older than "
                    f"RELAYER_EVENT_TTL_DAYS={settings.event_ttl_days:g}: their records may "
                    "have expired, so their events would be published again as if new. Add "
                    '--replay-expired to publish them again marked replay="true", or reset '
                    "to a newer block",
                    2,
                )
            if not expired:
                replay = None
        progress = Progress(to_block, block_hash, recent, 0, rewind=True, replay=replay)
        store.commit(grant, now, Commit(progress=progress))
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    finally:
        store.release(grant, datetime.now(UTC))
    _result(
        f"checkpoint of {settings.relayer_id} moved: the next run starts at block "
        f"{to_block} (was {grant.next_block})",
        {"relayer_id": settings.relayer_id, "next_block": to_block, "was": grant.next_block},
    )


@main.command()
@_shared
@click.option(
    "--accept",
    is_flag=True,
    help="Store CONTRACT_ADDRESS as the relayer's contracts: added ones are relayed from its "
    "checkpoint on, without their history.",
)
@click.option(
    "--new",
    "start_new",
    is_flag=True,
    help="Start this RELAYER_ID's state at START_BLOCK on purpose, beside a relayer of the "
    "same contracts and topic (a second relayer with other events or filters).",
)
def contracts(accept: bool, start_new: bool) -> None:
    """The contracts the relayer's state is for, beside CONTRACT_ADDRESS. A run refuses
    (exit 2) a CONTRACT_ADDRESS that adds one, since its history would be left out; --accept
    takes the new set on purpose (README: Adding a contract)."""
    from function.adapters.firestore.state import FirestoreState
    from function.core import identity
    from function.ops.wiring import firestore_client, identity_of, state_store

    settings = _settings()
    client = firestore_client(settings)
    try:
        guarded = state_store(settings, client)
        stored = guarded.read()
        verdict = guarded.identity_verdict(stored)  # what a run would say, others read too
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    had = list((stored or {}).get("contracts") or [])
    data: dict[str, Any] = {
        "relayer_id": settings.relayer_id,
        "stored": had,
        "configured": list(settings.contracts),
        "next_block": (stored or {}).get("next_block"),
        "refused": verdict.refused,
    }
    if start_new:
        _start_new(settings, client, stored, verdict)
        return
    if not accept:
        _result(
            f"{settings.relayer_id}: stored {', '.join(had) or '(no state yet)'}; configured "
            f"{', '.join(settings.contracts)}"
            + (f"\nrefused: {verdict.refused}" if verdict.refused else ""),
            data,
        )
        sys.exit(2 if verdict.refused else 0)
    if not identity.is_state(stored):
        _fail(f"no state under RELAYER_ID={settings.relayer_id}: nothing to accept", 2)
    assert stored is not None
    if verdict.refused and verdict.kind != identity.ADDED:
        _fail(f"{verdict.refused} (--accept takes a changed contract set only)", 2)
    # Where each added contract's relaying begins: below it, its history was never relayed,
    # and a backfill of it there is new history, however old (see `_relayed_before`).
    since = int(stored.get("next_block") or settings.start_block)
    added = identity.newly_added(stored, settings.contracts, since)
    fields = {**identity_of(settings).fields(), "contracts_added": added}
    store = FirestoreState(client, settings.relayer_id, fields)
    now = datetime.now(UTC)
    try:
        grant = store.acquire(f"contracts-{os.getpid()}", now, settings.lease_s)
        if grant is None:
            _fail("a run holds the lease right now: try again when it has finished")
        store.release(grant, datetime.now(UTC))  # the lease's write stored the configured set
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    _result(
        f"{settings.relayer_id} now relays {', '.join(settings.contracts)} from block "
        f"{grant.next_block} on",
        {**data, "stored": list(settings.contracts), "refused": None},
    )


def _start_new(settings: Settings, client: Any, stored: Any, verdict: Any) -> None:
    """`relayer contracts --new`: the state created at START_BLOCK, so the guard takes it
    for a relayer of its own (a second one of the same contracts, on purpose)."""
    from google.api_core import exceptions as gexc

    from function.adapters.firestore.conditional import TIMEOUT_S, WRITES
    from function.core import identity
    from function.ops.wiring import identity_of

    if identity.is_state(stored):
        _fail(f"RELAYER_ID={settings.relayer_id} has state already: nothing to start", 2)
    if verdict.refused and verdict.kind != identity.REORDERED:
        _fail(verdict.refused, 2)
    me = identity_of(settings)
    fields = {
        **me.fields(),
        "contracts_seen": identity.seen(None, settings.contracts),
        "next_block": settings.start_block,
        "updated_at": datetime.now(UTC),
    }
    ref = client.collection("relayers").document(settings.relayer_id)
    try:
        if stored is None:
            # refused if a run created it meanwhile
            ref.create(fields, retry=WRITES, timeout=TIMEOUT_S)
        else:  # what a failed start left: its summary stays
            ref.set(fields, merge=True, retry=WRITES, timeout=TIMEOUT_S)
    except gexc.GoogleAPIError as e:
        _fail(f"could not create the state of {settings.relayer_id}: {e}")
    _result(
        f"{settings.relayer_id}: a state of its own from block {settings.start_block}",
        {"relayer_id": settings.relayer_id, "next_block": settings.start_block},
    )


@main.command("export")
@click.option(
    "--out", "out_path", required=True, metavar="FILE", help="Where to write (JSON lines)."
)
@_shared
def export_state(out_path: str) -> None:
    """Write the relayer's state (checkpoint, lease, totals, backfills, every block record)
    to a file that `relayer import` reads into another database or project."""
    from function.adapters.firestore.backup import export_state as export
    from function.adapters.firestore.backup import record_count
    from function.ops.wiring import firestore_client

    settings = _settings()
    client = firestore_client(settings)
    try:
        total = record_count(client, settings.relayer_id)
        with open(out_path, "w", encoding="utf-8") as out, _progress(total, "export") as bar:
            counts = export(client, settings.relayer_id, out, bar.update)
    except OSError as e:
        _fail(f"--out {out_path}: {e.strerror}", 2)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    _result(
        f"exported relayer {settings.relayer_id}: {counts.blocks} block records, "
        f"{counts.tasks} task documents to {out_path}",
        {"relayer_id": settings.relayer_id, "blocks": counts.blocks, "tasks": counts.tasks,
         "file": out_path},
    )  # fmt: skip


@main.command("import")
@click.option("--in", "in_path", required=True, metavar="FILE", help="A `relayer export` file.")
@click.option("--yes", is_flag=True, help="Confirm: runs relay from the imported checkpoint.")
@_shared
def import_state(in_path: str, yes: bool) -> None:
    """Read a `relayer export` file into the database the environment names (for a restore,
    or to move a relayer to another project). Refused where the relayer already has state;
    an import cut short is resumed by running it again."""
    from function.adapters.firestore.backup import import_state as restore
    from function.adapters.firestore.backup import read_export
    from function.ops.wiring import firestore_client

    if not yes:
        _fail("import writes a relayer's checkpoint and records: add --yes to confirm", 2)
    settings = _settings()
    try:
        with open(in_path, encoding="utf-8") as lines:
            relayer_id, doc, docs = read_export(lines, in_path)
            if relayer_id != settings.relayer_id:
                _fail(
                    f"{in_path} holds relayer {relayer_id}, the environment configures "
                    f"{settings.relayer_id}: set RELAYER_ID={relayer_id} (or --relayer)",
                    2,
                )
            with open(in_path, encoding="utf-8") as again:
                total = sum(1 for line in again if line.startswith('{"doc": "blocks/'))
            with _progress(total, "import") as bar:
                counts = restore(
                    firestore_client(settings), relayer_id, doc, docs, f"import-{os.getpid()}",
                    bar.update,
                )  # fmt: skip
    except OSError as e:
        _fail(f"--in {in_path}: {e.strerror}", 2)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    _result(
        f"imported relayer {relayer_id}: checkpoint {doc.get('next_block')}, {counts.blocks} "
        f"block records, {counts.tasks} task documents",
        {"relayer_id": relayer_id, "next_block": doc.get("next_block"), "blocks": counts.blocks,
         "tasks": counts.tasks},
    )  # fmt: skip


@main.command()
@_shared
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of the messages this relayer publishes, from
    its ABI and RELAYER_EVENTS, for consumers to validate what they receive."""
    from function.adapters.storage import read_abi
    from function.core.abi import event_catalogue, load_abi
    from function.core.schema import message_schema

    settings = _settings()
    try:
        entries = load_abi(read_abi, settings.abi_uri)
        catalogue = event_catalogue(entries, settings.events, settings.abi_uri)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    schema = message_schema(
        catalogue, entries, settings.chain_id, transaction=settings.include_transaction
    )
    click.echo(json.dumps(schema, indent=2))


@main.command("job-env")
@click.option("--job", required=True, help="The Cloud Run Job's name (deploy.env NAME).")
@click.option("--region", required=True, help="Its region (deploy.env REGION).")
@click.option("--project", help="Its project (default: gcloud's).")
@_shared
def job_env(job: str, region: str, project: str | None) -> None:
    """Print a deployed job's environment as KEY=VALUE lines for --env-file (through
    `gcloud run jobs describe`); variables mounted from Secret Manager, such as RPC_URL, are
    named in comments, never written."""
    from function.ops.cli_env import describe_job
    from function.ops.cli_env import job_env as parse_job_env

    try:
        found = parse_job_env(describe_job(job, region, project), job)
    except RelayerError as e:
        _fail(str(e), e.exit_code)
    if _as_json():
        click.echo(json.dumps({"env": found.values, "secrets": found.secrets}, sort_keys=True))
    else:
        click.echo(found.as_env_file(job), nl=False)
