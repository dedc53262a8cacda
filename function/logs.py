"""Log lines Cloud Logging understands (JSON with `severity`), or plain text for a terminal."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from function.redact import scrub

_LABELS = "logging.googleapis.com/labels"
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Libraries that would print endpoint URLs or request lines (with their API keys) at DEBUG.
_QUIET = ("urllib3", "requests", "google", "grpc", "web3", "websockets")
# The relayer whose run logs a record: per thread (a context variable), since the relayers
# of a task run side by side and a process-wide label would carry whichever was set last.
_RELAYER: ContextVar[str | None] = ContextVar("relayer_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: severity, message, time, labels and any `extra` fields."""

    def __init__(self, labels: dict[str, str]) -> None:
        super().__init__()
        self.labels = dict(labels)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": scrub(record.getMessage()),
            "time": _timestamp(record.created),
        }
        if not getattr(record, "run_summary", False):  # the summary line stays short
            entry["logger"] = record.name
        labels = dict(self.labels)
        running = _RELAYER.get()
        if running:
            labels["relayer_id"] = running
        relayer_id = getattr(record, "relayer_id", None)
        if relayer_id:
            # A line with its own relayer_id field (the run summary, which the log-based
            # metric reads as jsonPayload.relayer_id) does not repeat it as a label: that
            # doubled the id on the line that most needs to stay short.
            labels.pop("relayer_id", None)
        if labels:
            entry[_LABELS] = labels
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["message"] += "\n" + scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def _timestamp(created: float) -> str:
    """RFC 3339 in UTC to the millisecond (what Cloud Logging shows)."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class TextFormatter(logging.Formatter):
    """`time level message` for people at a terminal (the fields are in the message)."""

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, "%H:%M:%S")
        line = f"{when} {record.levelname:<7} {scrub(record.getMessage())}"
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


@contextmanager
def relayer_labelled(relayer_id: str) -> Iterator[None]:
    """Label the records logged in this context with `relayer_id`: this thread's, and those
    of threads started with a copy of its context."""
    token = _RELAYER.set(relayer_id)
    try:
        yield
    finally:
        _RELAYER.reset(token)


def add_label(key: str, value: str) -> None:
    """A label every later JSON line of the process carries (a relayer's own label, from
    `relayer_labelled`, takes precedence)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.labels[key] = value


def setup(level: str = "INFO", fmt: str = "json", labels: dict[str, str] | None = None) -> None:
    """Configure the root logger once, on stdout (Cloud Run collects stdout)."""
    labels = labels or {}
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(labels) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
