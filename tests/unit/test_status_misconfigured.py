"""A RELAYER_CONFIG entry that cannot run is one unhealthy relayer on the status page, the
JSON and the metrics, beside the others; the job still refuses the whole deployment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import function.ops.wiring as wiring
from function.errors import ConfigError
from function.ops import app, status, status_page
from function.ops.fleet import Misconfigured, fleet_entries, load_fleet
from minimal_env import MINIMAL

FILE = {
    "relayers": [
        {"RELAYER_ID": "good", "CONTRACT_ADDRESS": "0x" + "11" * 20},
        {"CONTRACT_ADDRESS": "0x" + "22" * 20, "RPC_URL_ENV": "SECOND_RPC_URL"},
        {"RELAYER_ID": "third", "CONTRACT_ADDRESS": "0x" + "33" * 20, "RELAYER_BATCH_SIZE": "0"},
    ]
}


class Head:
    number, timestamp = 9, 0


class Chain:
    def latest_and_header(self, _number: int) -> tuple[Head, None]:
        return Head(), None


class State:
    def read(self, timeout_s: float | None = None) -> dict[str, Any]:
        return {"next_block": 5}

    def backfills(self, now: datetime, timeout_s: float) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setattr(wiring, "state_store", lambda *_a, **_k: State())
    monkeypatch.setattr(wiring, "firestore_client", lambda *_a, **_k: None)
    monkeypatch.setattr(wiring, "chain_reader", lambda *_a, **_k: Chain())
    config = tmp_path / "relayers.json"
    config.write_text(json.dumps(FILE))
    app.clear_cache()
    yield {**MINIMAL, "RPC_URL": "https://eth.example/v2/SECRETKEY", "RELAYER_CONFIG": str(config)}
    app.clear_cache()


def test_entries_that_cannot_run_are_named_by_id_else_by_place() -> None:
    entries = fleet_entries(MINIMAL, "relayers.json", lambda _: json.dumps(FILE).encode())
    assert [type(e).__name__ for e in entries] == ["Settings", "Misconfigured", "Misconfigured"]
    broken = [e for e in entries if isinstance(e, Misconfigured)]
    assert [e.label for e in broken] == ["relayers[1]", "third"]
    assert "SECOND_RPC_URL, which is not set" in broken[0].problems[0]
    assert "RELAYER_BATCH_SIZE" in broken[1].problems[0]


def test_the_job_still_refuses_the_whole_deployment_for_one_broken_entry() -> None:
    with pytest.raises(ConfigError) as raised:
        load_fleet(MINIMAL, "relayers.json", lambda _: json.dumps(FILE).encode())
    assert raised.value.exit_code == 2
    assert len(raised.value.problems) == 2


def test_status_shows_the_broken_entries_as_unhealthy_and_the_others_read(
    env: dict[str, str],
) -> None:
    body, code, _ = app.status_http(env, "/status")
    assert code == 503
    shown = {r["relayer_id"]: r for r in json.loads(body)["relayers"]}
    assert list(shown) == ["good", "relayers[1]", "third"]
    assert shown["good"]["head_block"] == 9 and shown["good"]["next_block"] == 5
    second = shown["relayers[1]"]
    assert second["healthy"] is False and second["configured"] is False
    assert second["reasons"] == [
        "misconfigured: RELAYER_CONFIG relayers[1] takes its RPC URL from SECOND_RPC_URL, "
        "which is not set: set it (e.g. from Secret Manager) or fix RPC_URL_ENV"
    ]
    assert shown["third"]["reasons"][0].startswith("misconfigured: ")
    assert "SECRETKEY" not in str(body)


def test_metrics_give_a_broken_entry_its_health_and_no_figures(env: dict[str, str]) -> None:
    text, code, _ = app.status_http(env, "/metrics")
    lines = str(text if isinstance(text, str) else text.decode()).splitlines()
    assert code == 200
    assert 'relayer_healthy{relayer_id="relayers[1]"} 0.0' in lines
    assert not any('next_block{relayer_id="relayers[1]"}' in line for line in lines)
    assert any('relayer_next_block{relayer_id="good"}' in line for line in lines)


def test_the_page_says_what_is_wrong_with_the_entry() -> None:
    entry = status.misconfigured("relayers[1]", ["RELAYER_CONFIG relayers[1] takes ... <X>"])
    html = status_page.render(status.report([entry]), datetime(2025, 1, 1, tzinfo=UTC))
    assert "relayers[1]" in html and "not running" in html
    assert "&lt;X&gt;" in html and "<X>" not in html
