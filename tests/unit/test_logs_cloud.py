"""What Cloud Logging, Cloud Trace and Error Reporting read on a JSON line (function/logs.py):
the source location of every line; the trace and span of the HTTP request being served, from
its `traceparent` or `X-Cloud-Trace-Context` header (a malformed one ignored), per request
even when requests run at once; a ReportedErrorEvent for every line at ERROR or above, with
the stack trace in `message` when there is one; never an RPC URL beyond its host. The text
format stays as it was."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import function
import function.logs as logs
from function.config import log_identity

REPORTED = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
TRACE = "logging.googleapis.com/trace"
SPAN = "logging.googleapis.com/spanId"
SAMPLED = "logging.googleapis.com/trace_sampled"
SOURCE = "logging.googleapis.com/sourceLocation"
W3C_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
W3C = f"00-{W3C_TRACE}-00f067aa0ba902b7-01"
CLOUD_TRACE = "105445aa7843bc8bf206b12000100000"
KEYED_URL = "https://eth-mainnet.example/v2/SECRETKEY?apikey=SECRET2"
HERE = "tests/unit/test_logs_cloud.py"  # the repository's files by their path in it

log = logging.getLogger("relayer")


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    """The JSON lines the root logger writes, as a deployment configures it."""
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    stream = io.StringIO()
    logs.setup("DEBUG", "json", {}, service="relayer-job")
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:] = kept[0]
    root.setLevel(kept[1])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def only(stream: io.StringIO) -> dict[str, Any]:
    (entry,) = lines(stream)
    return entry


def test_every_line_says_where_it_was_logged(out: io.StringIO) -> None:
    line = sys._getframe().f_lineno + 1
    log.info("hello")
    assert only(out)[SOURCE] == {
        "file": HERE,
        "line": line,
        "function": "test_every_line_says_where_it_was_logged",
    }


def test_a_library_file_is_shown_whole(out: io.StringIO) -> None:
    logging.getLogger("elsewhere").handle(
        logging.makeLogRecord(
            {"msg": "x", "levelno": logging.INFO, "pathname": "/usr/lib/python3/x.py"}
        )
    )
    assert only(out)[SOURCE]["file"] == "/usr/lib/python3/x.py"


def test_no_trace_outside_a_request(out: io.StringIO) -> None:
    log.info("a job's line")
    entry = only(out)
    assert TRACE not in entry and SPAN not in entry and SAMPLED not in entry


@pytest.mark.parametrize(
    ("headers", "trace", "span", "sampled"),
    [
        ({"traceparent": W3C}, W3C_TRACE, "00f067aa0ba902b7", True),
        ({"Traceparent": W3C[:-2] + "00"}, W3C_TRACE, "00f067aa0ba902b7", False),
        # a later version may add fields after the flags (W3C trace-context, §3.2.4)
        (
            {"traceparent": f"cc-{W3C_TRACE}-00f067aa0ba902b7-09-what-comes"},
            W3C_TRACE,
            "00f067aa0ba902b7",
            True,
        ),
        # X-Cloud-Trace-Context gives the span in decimal; Cloud Logging wants 16 hex digits
        ({"X-Cloud-Trace-Context": f"{CLOUD_TRACE}/1;o=1"}, CLOUD_TRACE, "0000000000000001", True),
        (
            {"x-cloud-trace-context": f"{CLOUD_TRACE}/18446744073709551615"},
            CLOUD_TRACE,
            "ffffffffffffffff",
            False,
        ),
        ({"X-Cloud-Trace-Context": CLOUD_TRACE.upper()}, CLOUD_TRACE, None, False),
        # both: the W3C header wins; a malformed one leaves the other
        (
            {"traceparent": W3C, "X-Cloud-Trace-Context": f"{CLOUD_TRACE}/1;o=1"},
            W3C_TRACE,
            "00f067aa0ba902b7",
            True,
        ),
        (
            {"traceparent": "00-nonsense", "X-Cloud-Trace-Context": f"{CLOUD_TRACE}/7;o=1"},
            CLOUD_TRACE,
            "0000000000000007",
            True,
        ),
    ],
)
def test_a_request_line_carries_its_trace_and_span(
    out: io.StringIO, headers: dict[str, str], trace: str, span: str | None, sampled: bool
) -> None:
    with logs.traced(logs.request_trace(headers, "relayer-prod")):
        log.warning("inside the request")
    log.info("after it")
    inside, after = lines(out)
    assert inside[TRACE] == f"projects/relayer-prod/traces/{trace}"
    assert inside.get(SPAN) == span
    assert inside[SAMPLED] is sampled
    assert TRACE not in after and SPAN not in after


MALFORMED = [
    {},
    {"traceparent": ""},
    {"traceparent": "garbage"},
    {"traceparent": f"ff-{W3C_TRACE}-00f067aa0ba902b7-01"},  # version ff is invalid
    {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},  # all-zero trace id
    {"traceparent": f"00-{W3C_TRACE}-{'0' * 16}-01"},  # all-zero span id
    {"traceparent": W3C.upper()},  # W3C ids are lowercase hex
    {"traceparent": W3C + "-extra"},  # version 00 has exactly four fields
    {"traceparent": f"00-{W3C_TRACE}-00f067aa0ba902b7-0x"},
    {"X-Cloud-Trace-Context": "not-a-trace/1;o=1"},
    {"X-Cloud-Trace-Context": f"{CLOUD_TRACE}/0;o=1"},  # span 0 is no span
    {"X-Cloud-Trace-Context": f"{CLOUD_TRACE}/18446744073709551616"},  # over 64 bits
    {"X-Cloud-Trace-Context": f"{CLOUD_TRACE}/12ab"},
    {"X-Cloud-Trace-Context": f"{'0' * 32}/1"},
    {"X-Cloud-Trace-Context": f"{CLOUD_TRACE}/1;o=1 {KEYED_URL}"},
    {"traceparent": KEYED_URL, "X-Cloud-Trace-Context": KEYED_URL},
    {"traceparent": f"00-{W3C_TRACE}-00f067aa0ba902b7-01\n{KEYED_URL}"},
]


@pytest.mark.parametrize("headers", MALFORMED)
def test_a_malformed_header_is_ignored(out: io.StringIO, headers: dict[str, str]) -> None:
    trace = logs.request_trace(headers, "relayer-prod")  # never raises
    assert trace is None
    with logs.traced(trace):
        log.error("inside the request")
    entry = only(out)
    assert TRACE not in entry and SPAN not in entry
    assert "SECRET" not in out.getvalue()


def test_no_trace_without_a_project(out: io.StringIO) -> None:
    assert logs.request_trace({"traceparent": W3C}, None) is None


def test_concurrent_requests_keep_their_own_traces(out: io.StringIO) -> None:
    # Two requests served at once: each logs, then waits until the other has logged too,
    # then logs again; a trace kept process-wide would put one request's id on the other's.
    both_logged = threading.Barrier(2, timeout=30)
    traces = {f"{n:032x}": f"{n:016x}" for n in (1, 2)}

    def serve(trace_id: str, span_id: str) -> None:
        with logs.traced(logs.request_trace({"traceparent": f"00-{trace_id}-{span_id}-01"}, "p1")):
            log.info("request %s first", trace_id)
            both_logged.wait()
            log.info("request %s second", trace_id)

    threads = [threading.Thread(target=serve, args=item) for item in traces.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    entries = lines(out)
    assert len(entries) == 4
    for entry in entries:
        trace_id = entry["message"].split()[1]
        assert entry[TRACE] == f"projects/p1/traces/{trace_id}"
        assert entry[SPAN] == traces[trace_id]


def test_an_error_with_an_exception_is_reported_with_its_stack_trace(out: io.StringIO) -> None:
    try:
        try:
            raise ConnectionError(f"cannot reach {KEYED_URL}")
        except ConnectionError as e:
            raise RuntimeError(f"eth_getLogs failed at '{KEYED_URL}'") from e
    except RuntimeError:
        log.exception("the run crashed on %s", KEYED_URL)
    entry = only(out)
    assert entry["severity"] == "ERROR"
    assert entry["@type"] == REPORTED
    assert entry["serviceContext"] == {"service": "relayer-job", "version": function.__version__}
    # The text stays the message; the traceback goes in `stack_trace`, the field Error
    # Reporting reads first, in Python's own format.
    assert entry["message"] == "the run crashed on eth-mainnet.example"
    trace = entry["stack_trace"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "ConnectionError: cannot reach eth-mainnet.example" in trace
    assert trace.endswith("RuntimeError: eth_getLogs failed at 'eth-mainnet.example'")
    assert "SECRET" not in out.getvalue()


def test_an_error_without_an_exception_is_reported_where_it_was_logged(
    out: io.StringIO,
) -> None:
    line = sys._getframe().f_lineno + 1
    log.error("run failed: %s said 429", KEYED_URL, extra={"run_summary": True})
    entry = only(out)
    assert entry["@type"] == REPORTED
    assert entry["message"] == "run failed: eth-mainnet.example said 429"
    # ReportedErrorEvent: a message without a stack trace needs context.reportLocation
    assert entry["context"] == {
        "reportLocation": {
            "filePath": HERE,
            "lineNumber": line,
            "functionName": "test_an_error_without_an_exception_is_reported_where_it_was_logged",
        }
    }
    assert entry["serviceContext"]["service"] == "relayer-job"
    assert "SECRET" not in out.getvalue()


def test_critical_is_reported_and_warnings_are_not(out: io.StringIO) -> None:
    log.critical("down")
    log.warning("slow")
    log.info("fine")
    critical, warning, info = lines(out)
    assert critical["@type"] == REPORTED
    for entry in (warning, info):
        assert "@type" not in entry and "serviceContext" not in entry and "context" not in entry


def test_fields_given_as_extra_cannot_carry_a_key(out: io.StringIO) -> None:
    log.warning("failed over", extra={"rpc": f"from {KEYED_URL}", "n": 3})
    entry = only(out)
    assert entry["rpc"] == "from eth-mainnet.example" and entry["n"] == 3
    assert "SECRET" not in out.getvalue()


def test_fields_given_as_extra_do_not_replace_the_cloud_fields(out: io.StringIO) -> None:
    log.error("x", extra={"serviceContext": "mine", "context": "mine", "@type": "mine"})
    entry = only(out)
    assert entry["@type"] == REPORTED and entry["serviceContext"]["service"] == "relayer-job"
    assert "reportLocation" in entry["context"]


def test_without_a_service_name_errors_are_still_grouped_under_the_package() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter({}))
    record = logging.makeLogRecord({"levelno": logging.ERROR, "levelname": "ERROR", "msg": "x"})
    handler.emit(record)
    entry = json.loads(stream.getvalue())
    assert entry["serviceContext"] == {
        "service": "evm-pubsub-relayer",
        "version": function.__version__,
    }


@pytest.mark.parametrize(
    ("env", "service", "project"),
    [
        ({}, None, None),
        (
            {"K_SERVICE": "relayer-status", "PUBSUB_PROJECT_ID": "topics-1"},
            "relayer-status",
            "topics-1",
        ),
        (
            {
                "CLOUD_RUN_JOB": "relayer",
                "FIRESTORE_PROJECT_ID": "state-1",
                "PUBSUB_PROJECT_ID": "topics-1",
            },
            "relayer",
            "state-1",
        ),
        (
            {
                "K_SERVICE": "fn",
                "CLOUD_RUN_JOB": "job",
                "GOOGLE_CLOUD_PROJECT": "runs-here",
                "FIRESTORE_PROJECT_ID": "state-1",
            },
            "fn",
            "runs-here",
        ),
        # a project that is no project id names no trace (rather than a broken link)
        ({"PUBSUB_PROJECT_ID": "projects/x"}, None, None),
        ({"GOOGLE_CLOUD_PROJECT": " ", "PUBSUB_PROJECT_ID": "topics-1"}, None, "topics-1"),
    ],
)
def test_the_service_and_the_trace_project_come_from_the_deployment(
    env: dict[str, str], service: str | None, project: str | None
) -> None:
    assert log_identity(env) == (service, project)


def test_the_reported_version_is_the_package_version() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert function.__version__ == tomllib.loads(pyproject.read_text())["project"]["version"]


def test_the_text_format_is_unchanged() -> None:
    # `time LEVEL message`, the traceback under it: none of the Cloud fields, in a request too
    stream = io.StringIO()
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    logs.setup("INFO", "text", {}, service="relayer-job")
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        with logs.traced(logs.request_trace({"traceparent": W3C}, "p1")):
            try:
                raise ValueError(f"bad {KEYED_URL}")
            except ValueError:
                log.exception("failed")
    finally:
        root.handlers[:] = kept[0]
        root.setLevel(kept[1])
    text = stream.getvalue()
    first, second = text.splitlines()[:2]
    assert first[8:] == " ERROR   failed" and second == "Traceback (most recent call last):"
    assert text.rstrip().endswith("ValueError: bad eth-mainnet.example")
    for field in ('"severity"', "@type", "serviceContext", W3C_TRACE, "SECRET"):
        assert field not in text
