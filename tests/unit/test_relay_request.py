"""The `relay` HTTP function in follow mode (docs/CONTRACT.md §2): a window must end, commit
and answer inside the request timeout (RELAYER_REQUEST_TIMEOUT), or the request is refused;
each request has its own stop, set shortly before that timeout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from function.ops import app
from function.ops.request_window import request_stop_after
from function.stopping import StopSignal

ENV = {
    "CHAIN_ID": "31337",
    "RPC_URL": "https://eth.example/v2/SECRETKEY",
    "CONTRACT_ADDRESS": "0x" + "a" * 40,
    "ABI_URI": "/abi.json",
    "PUBSUB_PROJECT_ID": "proj",
    "PUBSUB_TOPIC": "events",
    "START_BLOCK": "0",
}


def answer(**env: str) -> tuple[int, dict[str, Any]]:
    app.clear_cache()
    body, code, _ = app.relay_http({**ENV, **env})
    return code, json.loads(body)


def test_a_window_that_cannot_end_inside_the_request_is_refused(
    relay_requests: list[StopSignal], capsys: pytest.CaptureFixture[str]
) -> None:
    # 55 s of window + 1 s for its last look + 10 s to commit and answer > 60 s (the default)
    code, body = answer(RELAYER_RUN_SECONDS="55", RELAYER_POLL_INTERVAL="1")
    assert code == 500 and body["outcome"] == "failed"
    error = body["error"]
    assert "RELAYER_RUN_SECONDS=55" in error and "RELAYER_REQUEST_TIMEOUT=60" in error
    assert "RELAYER_POLL_INTERVAL=1" in error and "at most 49" in error
    assert "SECRETKEY" not in error
    assert relay_requests == []  # nothing ran: no lease taken, no state written
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"severity": "ERROR", "message": error} in [
        {k: r[k] for k in ("severity", "message")} for r in logged
    ]


def test_a_poll_interval_longer_than_the_request_leaves_no_window(
    relay_requests: list[StopSignal],
) -> None:
    code, body = answer(RELAYER_RUN_SECONDS="5", RELAYER_POLL_INTERVAL="60")
    assert code == 500 and "no window fits" in body["error"] and relay_requests == []


def test_a_window_that_fits_runs(relay_requests: list[StopSignal]) -> None:
    assert answer(RELAYER_RUN_SECONDS="45", RELAYER_POLL_INTERVAL="5")[0] == 200  # 60 exactly
    code, _ = answer(
        RELAYER_RUN_SECONDS="300", RELAYER_POLL_INTERVAL="5", RELAYER_REQUEST_TIMEOUT="900"
    )
    assert code == 200
    assert answer()[0] == 200  # one-batch mode: no window to fit
    assert len(relay_requests) == 3


def test_each_request_has_its_own_stop(relay_requests: list[StopSignal]) -> None:
    answer()
    answer()
    first, second = relay_requests
    assert first is not second  # a stop that ended one request never ends the next
    assert not first.is_set() and not second.is_set()  # the deadline was called off


@pytest.mark.parametrize(
    ("timeout", "stop_after"), [(60.0, 50.0), (3600.0, 3590.0), (20.0, 10.0), (4.0, 2.0)]
)
def test_the_runs_are_stopped_shortly_before_the_request_timeout(
    timeout: float, stop_after: float
) -> None:
    assert request_stop_after(timeout) == stop_after
