"""Entry points behind `main.py`: the job's run, the `relay` and `status` HTTP functions."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import logs
from .config import Settings, load_settings, logging_settings
from .errors import ConfigError, RelayerError
from .redact import scrub
from .relay import Outcome
from .stopping import StopSignal, install_sigterm
from .summary import FAILED, RunSummary

log = logging.getLogger("relayer")

Response = tuple[str | bytes, int, dict[str, str]]


def log_summary(outcome: Outcome) -> None:
    """The one summary record every run ends with (CONTRACT §2)."""
    s = outcome.summary
    level = logging.ERROR if s.outcome == FAILED else logging.INFO
    text = (
        f"run {s.outcome}: blocks {s.from_block}..{s.to_block}, {s.events_published} published, "
        f"{s.duplicates_skipped} duplicates skipped in {s.duration_s:.2f} s"
    )
    if s.error:
        text += f": {s.error}"
    log.log(level, text, extra={"run_summary": True, "relayer_id": s.relayer_id, **s.as_json()})


def relay_once(settings: Settings, stop: StopSignal) -> Outcome:
    """Wire and run; a deployment error before the run still ends in a summary."""
    from .wiring import build_relay

    try:
        relay = build_relay(settings, stop)
    except RelayerError as e:
        summary = RunSummary("-", settings.relayer_id, datetime.now(UTC), error=scrub(str(e)))
        summary.finished_at = summary.started_at
        outcome = Outcome(summary, e)
    else:
        outcome = relay.run()
    log_summary(outcome)
    return outcome


def run_job(env: Mapping[str, str]) -> int:
    """`python main.py`: one run; the exit code of CONTRACT §2."""
    level, fmt, labels = logging_settings(env)
    logs.setup(level, fmt, labels)
    try:
        settings = load_settings(env)
    except ConfigError as e:
        log.error(str(e), extra={"outcome": FAILED})
        return e.exit_code
    logs.add_label("relayer_id", settings.relayer_id)
    stop = StopSignal()
    install_sigterm(stop)
    return relay_once(settings, stop).exit_code


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


def relay_http(env: Mapping[str, str]) -> Response:
    """The `relay` function: one run per request; 200 when it succeeded or skipped."""
    try:
        settings: Settings = _cache.get("settings", lambda: _settings(env))
    except ConfigError as e:
        log.error(str(e))
        return _json({"outcome": FAILED, "error": str(e)}, 500)
    outcome = relay_once(settings, StopSignal())
    return _json(outcome.summary.as_json(), 500 if outcome.summary.outcome == FAILED else 200)


def _settings(env: Mapping[str, str]) -> Settings:
    level, fmt, labels = logging_settings(env)
    logs.setup(level, fmt, labels)
    return load_settings(env)


def status_http(env: Mapping[str, str], path: str) -> Response:
    """The `status` function: /health, /status, /metrics and a page at /."""
    path = "/" + path.strip("/")
    if path == "/health":
        return _json({"status": "ok"}, 200)
    try:
        settings: Settings = _cache.get("settings", lambda: _settings(env))
    except ConfigError as e:
        return _json({"healthy": False, "error": str(e)}, 503)
    if path not in ("/", "/status", "/metrics"):
        return _json({"error": f"no such page {path}: try /, /status, /metrics, /health"}, 404)
    from . import status  # /health stays free of these imports

    body = status_body(settings)
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


def status_body(settings: Settings) -> dict[str, Any]:
    """The `/status` answer (CONTRACT §5)."""
    from . import status

    return status.report([_relayer_entry(settings)])


def _relayer_entry(settings: Settings) -> dict[str, Any]:
    from . import status, wiring

    state = _cache.get(
        "state", lambda: wiring.state_store(settings, wiring.firestore_client(settings))
    )
    chain = _cache.get("chain", lambda: wiring.chain_reader(settings, timeout_s=3.0))
    now = datetime.now(UTC)
    try:
        doc = state.read()
    except RelayerError as e:
        entry = status.relayer_status(settings, None, None, now)
        entry["healthy"] = False
        entry["reasons"] = [f"state unreadable: {e}"]
        return entry
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
    return status.relayer_status(settings, doc, head, now, lag_seconds)
