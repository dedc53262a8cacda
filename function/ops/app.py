"""Entry points behind `main.py`: the job's run, the `relay` and `status` HTTP functions."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import function.logs as logs
from function.adapters.storage import read_uri
from function.config import Runtime, Settings, load_runtime, log_identity, logging_settings
from function.core.summary import FAILED, RunSummary, headline, log_fields
from function.errors import ConfigError, RelayerError
from function.ops import heap
from function.ops.fleet import Misconfigured, distinct, fleet_entries, load_fleet, shard
from function.ops.request_window import request_stop_after, time_is_up, window_refusal
from function.ops.side_by_side import run_side_by_side
from function.redact import scrub
from function.run.relay import Outcome, Relay
from function.stopping import HARD_EXIT_S, StopSignal, install_sigterm

log = logging.getLogger("relayer")

Response = tuple[str | bytes, int, dict[str, str]]
Headers = Mapping[str, str]  # a request's (flask's Headers: the names in any case)
STATUS_TIMEOUT_S = 3.0  # status answers within seconds, unhealthy, when a dependency is down
STATUS_READS_AT_ONCE = 8  # relayers /status reads at once
Build = Callable[[Settings, StopSignal], Relay]  # the wiring; tests pass one over fakes


def log_summary(outcome: Outcome, settings: Settings, *, started: bool = True) -> None:
    """The one summary record every run ends with (docs/CONTRACT.md §2)."""
    s = outcome.summary
    level = logging.ERROR if s.outcome == FAILED else logging.INFO
    shown = log_fields(s, started=started, dead_letters=settings.deadletter_topic is not None)
    error = outcome.error
    # A failure the relayer did not foresee (a bug, a library's surprise) is worth its
    # traceback in Error Reporting; one it raised on purpose says all in its message.
    trace = None
    if error is not None and not isinstance(error, RelayerError):
        trace = (type(error), error, error.__traceback__)
    log.log(
        level,
        headline(s),
        exc_info=trace,
        extra={"run_summary": True, "relayer_id": s.relayer_id, **shown},
    )


def relay_once(
    settings: Settings,
    stop: StopSignal,
    build: Build | None = None,
    execution: str | None = None,
    settle: Callable[[], None] | None = None,
) -> Outcome:
    """Wire and run; whatever fails, the run still ends in its summary (a deployment
    error before the run, or anything a library raised that nothing else caught).
    `settle` is called between the two, once everything the run needs is imported (the
    job's: `heap.settle_for_one_run`)."""
    started, began = datetime.now(UTC), time.monotonic()
    wired = build is None  # a real deployment: a failure is recorded in its state
    try:
        if build is None:
            from function.ops.wiring import build_relay

            build = build_relay
        relay = build(settings, stop)
        relay.execution = execution
        if settle is not None:
            settle()
    except Exception as e:
        detail = str(e) if isinstance(e, RelayerError) else f"{type(e).__name__}: {e}"
        summary = RunSummary("-", settings.relayer_id, started, error=scrub(detail))
        summary.finished_at = datetime.now(UTC)
        summary.duration_s = round(time.monotonic() - began, 3)
        outcome = Outcome(summary, e)
        if wired:
            from function.ops.wiring import record_failure

            record_failure(settings, summary)
        log_summary(outcome, settings, started=False)
        return outcome
    take_back = stop.add_last_words(lambda: _abandoned(relay, settings, began))
    try:
        outcome = relay.run()
    finally:
        take_back()
    log_summary(outcome, settings)
    return outcome


def _abandoned(relay: Relay, settings: Settings, began: float) -> None:
    """The summary of a run the hard exit ends (a dependency hung past SIGTERM's grace)."""
    summary = relay.current
    if summary is None:
        return
    summary.outcome = FAILED
    summary.interrupted = True
    summary.duration_s = round(time.monotonic() - began, 3)
    summary.error = (
        f"still running {HARD_EXIT_S} s after SIGTERM (Firestore, Pub/Sub or the RPC endpoint "
        "did not answer in time): what was not committed is the next run's, once this run's "
        "lease expires (RELAYER_LEASE_SECONDS)"
    )
    log_summary(Outcome(summary, None), settings)


def _read_config(uri: str) -> bytes:
    return read_uri(uri, "RELAYER_CONFIG", ConfigError)


def load_deployment(env: Mapping[str, str]) -> tuple[Runtime, list[Settings]]:
    """This task's place in the deployment and every relayer of it (docs/CONTRACT.md §1)."""
    runtime = load_runtime(env)
    return runtime, load_fleet(env, runtime.config_uri, _read_config)


def run_relayers(
    runtime: Runtime,
    fleet: Sequence[Settings],
    stop: StopSignal,
    build: Build | None = None,
    *,
    settle: Callable[[], None] | None = None,
) -> list[Outcome]:
    """One run of each relayer of this task, side by side (function/ops/side_by_side.py): a
    hung or failing relayer keeps none of the others from its looks; outcomes in the
    fleet's order. `settle`: see `relay_once`; called only when this task runs one relayer
    (in a fleet, one relayer's build ends while another already runs)."""
    mine = shard(fleet, runtime.task_index, runtime.task_count)
    if runtime.config_uri:
        log.info(
            "task %d of %d runs %d of %d relayers: %s",
            runtime.task_index,
            runtime.task_count,
            len(mine),
            len(fleet),
            ", ".join(s.relayer_id for s in mine) or "none",
        )
    if len(mine) == 1:
        # The whole process is this relayer's: library threads' lines carry its id too.
        logs.add_label("relayer_id", mine[0].relayer_id)
    else:
        settle = None
    run_one = logs.carry_trace(lambda s: relay_once(s, stop, build, runtime.execution, settle))
    return run_side_by_side(mine, run_one, stop)  # threads: in a relay request's trace too


def _problems(error: RelayerError) -> tuple[str, ...]:
    return error.problems if isinstance(error, ConfigError) else (str(error),)


def run_job(env: Mapping[str, str]) -> int:
    """`python main.py`: one run of each relayer of this task; the exit code of docs/CONTRACT.md §2
    (with several relayers, the worst of theirs)."""
    level, fmt, labels = logging_settings(env)
    logs.setup(level, fmt, labels, service=log_identity(env)[0])
    try:
        runtime, fleet = load_deployment(env)
    except RelayerError as e:
        for line in _problems(e):  # every invalid setting, a line each
            log.error(line, extra={"outcome": FAILED})
        return e.exit_code
    if runtime.backfill is not None:
        return _backfill_job(*runtime.backfill)
    stop = StopSignal()
    install_sigterm(stop)
    outcomes = run_relayers(runtime, fleet, stop, settle=heap.settle_for_one_run)
    return max((o.exit_code for o in outcomes), default=0)


def _backfill_job(start: int, end: int) -> int:
    """An execution started with RELAYER_BACKFILL_FROM/TO (README, Parallel backfill): this
    task's slice, exactly as `relayer backfill --parallel` relays it."""
    from function.ops.cli import main

    args = ["backfill", "--from-block", str(start), "--to-block", str(end), "--parallel"]
    try:
        main(args, standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


class _Cache:
    """Per-process clients for the HTTP functions: built on first use, reused after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Any] = {}

    def get(self, key: str, build: Any) -> Any:
        with self._lock:
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _Cache()


def clear_cache() -> None:
    """Forget cached settings and clients (a test changing the environment needs this)."""
    _cache.clear()


def _json(body: Any, status: int) -> Response:
    return json.dumps(body, default=str), status, {"Content-Type": "application/json"}


def relay_http(env: Mapping[str, str], headers: Headers | None = None) -> Response:
    """The `relay` function: one run per request; 200 when it succeeded or skipped. With
    several relayers the answer is `{"runs": [summary, ...]}`, 500 if any failed. Follow
    mode's windows must end, commit and answer inside RELAYER_REQUEST_TIMEOUT. Its lines
    carry the request's trace (`traceparent` or X-Cloud-Trace-Context)."""
    with logs.traced(logs.request_trace(headers or {}, log_identity(env)[1])):
        return _relay(env)


def _relay(env: Mapping[str, str]) -> Response:
    try:
        runtime, fleet = _cache.get("deployment", lambda: _deployment(env))
    except RelayerError as e:
        for line in _problems(e):
            log.error(line)
        return _json({"outcome": FAILED, "error": str(e), "problems": list(_problems(e))}, 500)
    refusal = window_refusal(fleet)
    if refusal is not None:
        log.error(refusal, extra={"outcome": FAILED})
        return _json({"outcome": FAILED, "error": refusal}, 500)
    # This request's own stop: no SIGTERM handler is ours in a function (the server's), and
    # a stop set for one request must not end the next. Its deadline sets it as SIGTERM
    # would, so that the runs still commit and answer before the platform gives up.
    stop = StopSignal()
    timeout_s = fleet[0].request_timeout_s  # process-wide: the same for every relayer
    say_why = logs.carry_trace(time_is_up)  # from the timer's thread, in the request's trace
    deadline = threading.Timer(request_stop_after(timeout_s), say_why, (stop, timeout_s))
    deadline.daemon = True
    deadline.start()
    try:
        outcomes = run_relayers(runtime, fleet, stop)
    finally:
        deadline.cancel()
    failed = any(o.summary.outcome == FAILED for o in outcomes)
    summaries = [o.summary.as_json() for o in outcomes]
    body = summaries[0] if len(fleet) == 1 and summaries else {"runs": summaries}
    return _json(body, 500 if failed else 200)


def _deployment(env: Mapping[str, str]) -> tuple[Runtime, list[Settings]]:
    level, fmt, labels = logging_settings(env)
    logs.setup(level, fmt, labels, service=log_identity(env)[0])
    return load_deployment(env)


def _status_fleet(env: Mapping[str, str]) -> list[Settings | Misconfigured]:
    """Status's relayers: one entry of RELAYER_CONFIG that cannot run is shown as an
    unhealthy relayer beside the others, not the whole page an error."""
    try:
        return list(_deployment(env)[1])
    except ConfigError:
        runtime = load_runtime(env)
        if runtime.config_uri is None:  # a single relayer's settings: nothing else to show
            raise
    fleet = fleet_entries(env, runtime.config_uri, _read_config)
    distinct(runtime.config_uri, [s for s in fleet if isinstance(s, Settings)])
    return fleet


def status_http(env: Mapping[str, str], path: str, headers: Headers | None = None) -> Response:
    """The `status` function: /health, /status, /metrics, a page at /; in the request's trace."""
    with logs.traced(logs.request_trace(headers or {}, log_identity(env)[1])):
        return _status(env, path)


def _status(env: Mapping[str, str], path: str) -> Response:
    path = "/" + path.strip("/")
    if path == "/health":
        return _json({"status": "ok"}, 200)
    try:
        fleet = _cache.get("status-fleet", lambda: _status_fleet(env))
    except RelayerError as e:
        return _json({"healthy": False, "error": str(e)}, 503)
    if path not in ("/", "/status", "/metrics"):
        return _json({"error": f"no such page {path}: try /, /status, /metrics, /health"}, 404)
    from function.ops import status  # /health stays free of these imports

    body = status_body(fleet)
    code = 200 if body["healthy"] else 503
    if path == "/metrics":
        return (
            status.metrics_text(body["relayers"]),
            200,
            {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )
    if path == "/":
        return status.html_page(body), code, {"Content-Type": "text/html; charset=utf-8"}
    return _json(body, code)


def status_body(fleet: Sequence[Settings | Misconfigured]) -> dict[str, Any]:
    """The `/status` answer (docs/CONTRACT.md §5): every relayer of the deployment, all tasks'."""
    import function.ops.status as status

    if len(fleet) <= 1:
        return status.report([_relayer_entry(settings) for settings in fleet])
    # Side by side, a few at a time: ten relayers on a hung endpoint must not add up their
    # timeouts past the function's (each read gives up after STATUS_TIMEOUT_S).
    with ThreadPoolExecutor(min(STATUS_READS_AT_ONCE, len(fleet))) as pool:
        return status.report(list(pool.map(logs.carry_trace(_relayer_entry), fleet)))


def _relayer_entry(settings: Settings | Misconfigured) -> dict[str, Any]:
    import function.ops.status as status
    import function.ops.wiring as wiring

    if isinstance(settings, Misconfigured):  # nothing to read with: its problems are all
        return status.misconfigured(settings.label, settings.problems)
    key = settings.relayer_id
    now = datetime.now(UTC)
    try:
        state = _cache.get(
            f"state:{key}", lambda: wiring.state_store(settings, wiring.firestore_client(settings))
        )
        doc = state.read(timeout_s=STATUS_TIMEOUT_S)
    except Exception as e:  # a client that cannot be built (credentials) counts as well
        detail = str(e) if isinstance(e, RelayerError) else f"{type(e).__name__}: {e}"
        entry = status.relayer_status(settings, None, None, now)
        entry["healthy"] = False
        entry["reasons"] = [f"state unreadable: {scrub(detail)}"]
        return entry
    chain = _cache.get(
        f"chain:{key}",
        lambda: wiring.chain_reader(
            settings, timeout_s=STATUS_TIMEOUT_S, attempts=1, deadline_s=STATUS_TIMEOUT_S
        ),
    )
    next_block = (doc or {}).get("next_block", settings.start_block)
    head: int | None = None
    lag_seconds: float | None = None
    try:
        latest, checkpoint = chain.latest_and_header(int(next_block) - 1)
        head = latest.number
        if checkpoint is not None:
            lag_seconds = max(0, latest.timestamp - checkpoint.timestamp)
    except Exception as e:
        log.warning("status could not read the head: %s", scrub(str(e)))
    try:
        backfills = state.backfills(now, STATUS_TIMEOUT_S)
    except RelayerError as e:  # the relayer's own state was read: its entry stands
        log.warning("status could not read the backfill tasks: %s", scrub(str(e)))
        backfills = []
    return status.relayer_status(settings, doc, head, now, lag_seconds, backfills)
