"""Log lines Cloud Logging understands (JSON with `severity`), or plain text for a terminal.

Beyond `severity`, `message` and `time`, a JSON line carries the fields Cloud Logging and
Error Reporting read (Cloud Logging, "Structured logging", special JSON fields; Error
Reporting, "Format a log entry to report error events"):
- `logging.googleapis.com/sourceLocation` ({file, line, function}), always;
- `logging.googleapis.com/trace`, `.../spanId`, `.../trace_sampled` while an HTTP request of
  the `relay` or `status` function is served (`traced`), from its `traceparent` or
  `X-Cloud-Trace-Context` header, so the console shows the request's lines together;
- at ERROR and above, a ReportedErrorEvent (`@type`, `serviceContext`, `context.reportLocation`):
  Error Reporting takes such a line whether or not it has a stack trace (a traceback, when
  there is one, is in `stack_trace`, the field it reads first, in Python's own format,
  leaving `message` the line's text). Every ERROR line of
  the relayer is a failure to act on (a failed run's summary, a bad setting), so each is one.

Everything a line shows passes `scrub`: a message, a traceback or an `extra` string never
carries an RPC URL beyond its host; a trace header is shown only as the ids it parses to.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from function import __version__
from function.redact import scrub

# The relayer's own files are shown from the repository's root (function/ops/app.py, as the
# tree names them), the same in every deployment whatever its directory; others whole.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

_LABELS = "logging.googleapis.com/labels"
_SOURCE = "logging.googleapis.com/sourceLocation"
_TRACE_FIELD = "logging.googleapis.com/trace"
_SPAN_FIELD = "logging.googleapis.com/spanId"
_SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"
_REPORTED_ERROR = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)
# What a line carries for Cloud Logging, Cloud Trace and Error Reporting rather than for people.
CLOUD_FIELDS = (
    _SOURCE,
    _TRACE_FIELD,
    _SPAN_FIELD,
    _SAMPLED_FIELD,
    "@type",
    "serviceContext",
    "context",
)
# Error Reporting groups a process's errors under a service; a run outside Cloud Run (no
# K_SERVICE, no CLOUD_RUN_JOB) reports as the package.
_DEFAULT_SERVICE = "evm-pubsub-relayer"
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Libraries that would print endpoint URLs or request lines (with their API keys) at DEBUG.
_QUIET = ("urllib3", "requests", "google", "grpc", "web3", "websockets")
# The relayer whose run logs a record: per thread (a context variable), since the relayers
# of a task run side by side and a process-wide label would carry whichever was set last.
_RELAYER: ContextVar[str | None] = ContextVar("relayer_id", default=None)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Trace:
    """The Cloud Trace span of the HTTP request being served, as a log line names it."""

    name: str  # projects/{project}/traces/{32 hex digits}
    span_id: str | None  # 16 lowercase hex digits
    sampled: bool


# The request being served: per context, like the relayer's label, so that requests served
# at once (functions-framework's threads) never put one's trace on the other's lines.
_TRACE: ContextVar[Trace | None] = ContextVar("trace", default=None)
# W3C Trace Context, traceparent: version-traceid-parentid-flags, lowercase hex; version ff
# and all-zero ids are invalid; version 00 has exactly these four fields, later versions may
# append more after a dash.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-[ -~]*)?"
)
# X-Cloud-Trace-Context: TRACE_ID[/SPAN_ID][;o=OPTIONS], the span id in decimal.
_CLOUD_TRACE = re.compile(
    r"(?P<trace>[0-9a-fA-F]{32})(?:/(?P<span>[0-9]{0,20}))?(?:;o=(?P<o>[0-9]?))?"
)


def request_trace(headers: Mapping[str, str], project: str | None) -> Trace | None:
    """The trace a request's `traceparent` (W3C, preferred) or `X-Cloud-Trace-Context`
    header names, in `project`; None without a project or a well-formed header (a malformed
    one is ignored: a request is never refused or failed over its tracing)."""
    if not project:
        return None
    given = {str(k).lower(): str(v) for k, v in headers.items()}
    parsed = _traceparent(given.get("traceparent", "")) or _cloud_trace(
        given.get("x-cloud-trace-context", "")
    )
    if parsed is None:
        return None
    trace_id, span_id, sampled = parsed
    return Trace(f"projects/{project}/traces/{trace_id}", span_id, sampled)


def _traceparent(value: str) -> tuple[str, str | None, bool] | None:
    m = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if m is None or m["version"] == "ff" or (m["version"] == "00" and m["rest"]):
        return None
    if not int(m["trace"], 16) or not int(m["span"], 16):
        return None
    return m["trace"], m["span"], bool(int(m["flags"], 16) & 1)


def _cloud_trace(value: str) -> tuple[str, str | None, bool] | None:
    m = _CLOUD_TRACE.fullmatch(value.strip(" \t"))
    if m is None or not int(m["trace"], 16):
        return None
    span_id = None
    if m["span"]:
        span = int(m["span"])
        if not 0 < span < 2**64:
            return None
        span_id = f"{span:016x}"  # Cloud Logging's spanId: 16 hex digits, as traceparent's
    return m["trace"].lower(), span_id, bool(m["o"]) and int(m["o"]) & 1 == 1


def carry_trace(work: Callable[P, R]) -> Callable[P, R]:
    """`work`, run in this context's trace wherever it runs: a thread serving the request
    too (Python starts threads with a context of their own)."""
    trace = _TRACE.get()

    def in_trace(*args: P.args, **kwargs: P.kwargs) -> R:
        with traced(trace):
            return work(*args, **kwargs)

    return in_trace


@contextmanager
def traced(trace: Trace | None) -> Iterator[None]:
    """Put `trace` on the records logged in this context (None: no trace)."""
    token = _TRACE.set(trace)
    try:
        yield
    finally:
        _TRACE.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: severity, message, time, labels, the source location, the
    request's trace, an error report at ERROR and above, and any `extra` fields."""

    def __init__(self, labels: dict[str, str], service: str | None = None) -> None:
        super().__init__()
        self.labels = dict(labels)
        self.service_context = {"service": service or _DEFAULT_SERVICE, "version": __version__}

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
        where = _source_file(record.pathname)
        entry[_SOURCE] = {"file": where, "line": record.lineno, "function": record.funcName}
        trace = _TRACE.get()
        if trace is not None:
            entry[_TRACE_FIELD] = trace.name
            if trace.span_id:
                entry[_SPAN_FIELD] = trace.span_id
            entry[_SAMPLED_FIELD] = trace.sampled
        if record.levelno >= logging.ERROR:
            # With this @type Error Reporting takes the line as a ReportedErrorEvent, stack
            # trace or not; where it was logged stands in for a missing stack trace
            # (ReportedErrorEvent.message needs one unless context.reportLocation is given).
            entry["@type"] = _REPORTED_ERROR
            entry["serviceContext"] = dict(self.service_context)
            entry["context"] = {
                "reportLocation": {
                    "filePath": where,
                    "lineNumber": record.lineno,
                    "functionName": record.funcName,
                }
            }
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            # The field Error Reporting reads before `message`, in Python's own format: the
            # message stays the line people read in the console.
            entry["stack_trace"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def _source_file(pathname: str) -> str:
    return pathname[len(_ROOT) :] if pathname.startswith(_ROOT) else pathname


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


def setup(
    level: str = "INFO",
    fmt: str = "json",
    labels: dict[str, str] | None = None,
    service: str | None = None,
) -> None:
    """Configure the root logger once, on stdout (Cloud Run collects stdout); `service` is
    what Error Reporting groups this process's errors under (config.log_identity)."""
    labels = labels or {}
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(labels, service) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
