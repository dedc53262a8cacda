"""The trace of the HTTP request being served, on every line the `relay` and `status`
functions log for it (function/ops/app.py around function/logs.py): through `main.py` as
functions-framework calls it, into the threads a fleet's relayers and /status reads run in,
and on the request deadline's line; the project from the deployment's settings."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import function.logs as logs
import function.ops.app as app
import function.ops.wiring as wiring
import main
from devstack.sim.events import settings
from function.config import Runtime, Settings
from function.core.summary import OK, RunSummary
from function.run.relay import Outcome, utcnow
from function.stopping import StopSignal

TRACE = "logging.googleapis.com/trace"
SPAN = "logging.googleapis.com/spanId"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
KEYED_URL = "https://eth.example/v2/SECRETKEY"
ENV = {
    "CHAIN_ID": "31337",
    "RPC_URL": KEYED_URL,
    "CONTRACT_ADDRESS": "0x" + "a" * 40,
    "ABI_URI": "/abi.json",
    "PUBSUB_PROJECT_ID": "proj",
    "PUBSUB_TOPIC": "events",
    "START_BLOCK": "0",
    "K_SERVICE": "relayer-relay",
}


@dataclass
class Request:
    """What main.py reads of functions-framework's (flask's) request."""

    method: str = "POST"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The lines logged, whoever (re)configures logging meanwhile: the functions call
    logs.setup on their first request."""
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    stream = io.StringIO()
    setup = logs.setup

    def onto_stream(*args: Any, **kwargs: Any) -> None:
        setup(*args, **kwargs)
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]

    monkeypatch.setattr(logs, "setup", onto_stream)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    app.clear_cache()
    yield stream
    app.clear_cache()
    root.handlers[:] = kept[0]
    root.setLevel(kept[1])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_failed_run_of_a_relay_request_is_reported_with_the_requests_trace(
    out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(s: Settings, stop: StopSignal) -> Any:
        raise ConnectionError(f"cannot reach {KEYED_URL}")

    monkeypatch.setattr(wiring, "build_relay", unreachable)
    monkeypatch.setattr(wiring, "record_failure", lambda s, summary: None)
    body, code, _ = main.relay(Request(headers={"traceparent": TRACEPARENT}))
    assert code == 500
    (summary,) = [e for e in lines(out) if e.get("run_summary")]
    assert summary["severity"] == "ERROR"
    assert summary[TRACE] == f"projects/proj/traces/{TRACE_ID}"
    assert summary[SPAN] == "00f067aa0ba902b7"
    assert summary["@type"].endswith("clouderrorreporting.v1beta1.ReportedErrorEvent")
    assert summary["serviceContext"]["service"] == "relayer-relay"
    assert summary["message"].startswith("run failed: ConnectionError: cannot reach eth.example")
    assert "SECRETKEY" not in out.getvalue() and "SECRETKEY" not in str(body)


def test_the_trace_project_is_where_the_function_runs_when_it_is_named(
    out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "runs-here")
    monkeypatch.setattr(app, "relay_once", _logging_relay)
    main.relay(Request(headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/10;o=1"}))
    (entry,) = lines(out)
    assert entry[TRACE] == f"projects/runs-here/traces/{TRACE_ID}"
    assert entry[SPAN] == "000000000000000a"


def test_a_relay_request_without_trace_headers_logs_no_trace(
    out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "relay_once", _logging_relay)
    main.relay(Request(headers={"traceparent": "00-garbage"}))
    (entry,) = lines(out)
    assert TRACE not in entry and SPAN not in entry


def _logging_relay(s: Settings, stop: StopSignal, *args: Any) -> Outcome:
    logging.getLogger("relayer").info("relaying %s", s.relayer_id)
    return Outcome(RunSummary("r", s.relayer_id, utcnow(), outcome=OK))


def test_the_relayers_of_a_fleet_log_in_the_requests_trace(
    out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several relayers run a thread each (function/ops/side_by_side.py): the trace goes along,
    # and each line keeps its own relayer's label.
    logs.setup("INFO", "json", {})
    monkeypatch.setattr(app, "relay_once", _logging_relay)
    fleet = [settings(relayer_id=f"r{n}") for n in range(3)]
    trace = logs.request_trace({"traceparent": TRACEPARENT}, "proj")
    with logs.traced(trace):
        app.run_relayers(Runtime(None, 0, 1), fleet, StopSignal())
    entries = [e for e in lines(out) if e["message"].startswith("relaying")]
    assert sorted(e["logging.googleapis.com/labels"]["relayer_id"] for e in entries) == [
        "r0",
        "r1",
        "r2",
    ]
    assert all(e[TRACE] == f"projects/proj/traces/{TRACE_ID}" for e in entries)


def test_the_request_deadline_is_logged_in_the_requests_trace(
    out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def until_stopped(s: Settings, stop: StopSignal, *args: Any) -> Outcome:
        assert stop.wait(30), "the request's deadline never stopped the run"
        return Outcome(RunSummary("r", s.relayer_id, utcnow(), outcome=OK))

    monkeypatch.setenv("RELAYER_REQUEST_TIMEOUT", "0.2")
    monkeypatch.setattr(app, "relay_once", until_stopped)
    main.relay(Request(headers={"traceparent": TRACEPARENT}))
    (deadline,) = [e for e in lines(out) if "stopping the runs" in e["message"]]
    assert deadline[TRACE] == f"projects/proj/traces/{TRACE_ID}"


def test_status_reads_log_in_the_requests_trace(
    out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def entry(s: Settings) -> dict[str, Any]:
        logging.getLogger("relayer").warning("status could not read the head of %s", s.relayer_id)
        return {"relayer_id": s.relayer_id, "healthy": True}

    monkeypatch.setattr(app, "_relayer_entry", entry)
    monkeypatch.setattr(app, "load_deployment", lambda env: (Runtime(None, 0, 1), fleet))
    fleet = [settings(relayer_id=f"r{n}") for n in range(3)]  # read side by side
    _, code, _ = main.status(Request("GET", "/status", {"traceparent": TRACEPARENT}))
    assert code == 200
    entries = [e for e in lines(out) if "could not read the head" in e["message"]]
    assert len(entries) == 3
    assert all(e[TRACE] == f"projects/proj/traces/{TRACE_ID}" for e in entries)
    before = len(lines(out))
    app.status_body(fleet)  # outside a request: no trace
    after = lines(out)[before:]
    assert len(after) == 3 and all(TRACE not in e for e in after)


def test_functions_frameworks_request_headers_are_read(
    out: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As deployed: flask's case-insensitive Headers, through functions-framework's app.
    from functions_framework import create_app

    monkeypatch.setattr(app, "relay_once", _logging_relay)
    client = create_app("relay", str(Path(main.__file__))).test_client()
    answer = client.post("/", headers={"TRACEPARENT": TRACEPARENT})
    assert answer.status_code == 200
    (entry,) = [e for e in lines(out) if e["message"].startswith("relaying")]
    assert entry[TRACE] == f"projects/proj/traces/{TRACE_ID}"
