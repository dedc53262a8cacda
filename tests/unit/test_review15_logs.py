"""Review of issue 15: what reaches Error Reporting, and where a secret can be printed.

README (Logs) and docs/RUNBOOK.md: "Errors that are not the relayer's own (a library raised
something unexpected) read `run failed: TypeName: ...` and are in Error Reporting with their
stack trace"; "a traceback, when there is one, in `stack_trace`". Issue 15: "tracebacks in the
field Error Reporting reads instead of in the message"."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import function.logs as logs
from devstack.sim.clock import FakeClock
from devstack.sim.events import catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.config import load_settings
from function.ops import app
from function.ops.cli_env import job_env
from function.run.relay import Relay
from function.stopping import StopSignal
from minimal_env import MINIMAL

KEY = "SECRETKEY123"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    stream = io.StringIO()
    logs.setup("INFO", "json", {}, service="relayer-job")
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:] = kept[0]
    root.setLevel(kept[1])


def errors(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["severity"] == "ERROR"]


def test_an_unexpected_error_while_wiring_reaches_error_reporting_with_its_traceback(
    out: io.StringIO,
) -> None:
    def build(_settings: Any, _stop: StopSignal) -> Relay:
        raise KeyError("a bug")  # a library's, or ours

    app.relay_once(load_settings(MINIMAL), StopSignal(), build)
    (line,) = errors(out)
    assert line["message"].startswith("run failed: KeyError")
    assert "stack_trace" in line, f"no traceback anywhere on the line: {sorted(line)}"


class BrokenChain(FakeChain):
    """A chain reader that hits a bug (an AttributeError) in the middle of a run."""

    def head_and_header(self, *args: Any, **kwargs: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'number'")


def test_an_unexpected_error_inside_a_run_reaches_error_reporting_with_its_traceback(
    out: io.StringIO,
) -> None:
    clock, state, sink = FakeClock(), FakeState(), FakeSink()
    relay = Relay(
        settings=settings(),
        specs=catalogue(),
        chain=BrokenChain(),
        state=state,
        records=state,
        sink=sink,
        stop=StopSignal(),
        clock=clock.utc,
    )
    relay_settings = settings()
    app.relay_once(relay_settings, StopSignal(), lambda _s, _t: relay)
    (line,) = errors(out)
    assert line["message"].startswith("run failed: AttributeError"), line["message"]
    assert "stack_trace" in line, f"no traceback anywhere on the line: {sorted(line)}"


def test_job_env_never_writes_an_rpc_url_found_in_plain_text() -> None:
    """README: `relayer job-env` writes a job's settings "secrets left out". A job whose RPC
    URL (or RPC_WS_URL, which neither deploy path can mount from Secret Manager by a
    variable of its own) is a plain variable still carries a key: it must not land in
    job.env, a file people keep beside their deploy.env."""
    described = {
        "spec": {
            "template": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "env": [
                                        {"name": "CHAIN_ID", "value": "1"},
                                        {
                                            "name": "RPC_URL",
                                            "value": f"https://eth.example/v2/{KEY}",
                                        },
                                        {
                                            "name": "RPC_WS_URL",
                                            "value": f"wss://eth.example/ws/{KEY}",
                                        },
                                    ]
                                }
                            ]
                        }
                    }
                }
            }
        }
    }
    text = job_env(described, "relayer").as_env_file("relayer")
    assert KEY not in text, text
