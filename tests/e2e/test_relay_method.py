"""The `relay` HTTP function starts a run on POST only (through functions-framework's client).

An uptime check's or a crawler's GET must not start a run: anything but POST is answered 405
before any work, and never reaches `relay_http`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from functions_framework import create_app

from function.ops import app
from harness import ROOT


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[Mapping[str, str]]:
    """Every call of app.relay_http, which answers like a successful run."""
    calls: list[Mapping[str, str]] = []

    def relay_http(env: Mapping[str, str], headers: Any = None) -> app.Response:
        calls.append(env)  # `headers`: the request's, for its trace (function/logs.py)
        return '{"outcome": "idle"}', 200, {"Content-Type": "application/json"}

    monkeypatch.setattr(app, "relay_http", relay_http)
    return calls


def client() -> Any:
    return create_app("relay", str(ROOT / "main.py")).test_client()


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_anything_but_post_is_refused_without_a_run(
    runs: list[Mapping[str, str]], method: str
) -> None:
    answer = client().open("/", method=method)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert runs == []


@pytest.mark.parametrize("path", ["/", "/health", "/anything"])
def test_a_post_starts_one_run_whatever_the_path(runs: list[Mapping[str, str]], path: str) -> None:
    answer = client().post(path)
    assert answer.status_code == 200
    assert answer.get_json() == {"outcome": "idle"}
    assert len(runs) == 1
