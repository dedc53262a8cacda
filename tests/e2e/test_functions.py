"""The `relay` and `status` HTTP functions through functions-framework's own test client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from functions_framework import create_app
from prometheus_client.parser import text_string_to_metric_families

from devstack.chain.escrow import ExpectedEvent
from function.ops import app
from harness import (
    ROOT,
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    relayer_doc_or_none,
    run_main,
)


@pytest.fixture
def environ(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The deployment's settings in this process's environment, as Cloud Functions sets them."""
    env = deployment.env(RELAYER_BATCH_SIZE="1000", LOG_FORMAT="text")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app.clear_cache()
    yield env
    app.clear_cache()


def client(target: str) -> Any:
    return create_app(target, str(ROOT / "main.py")).test_client()


def test_relay_function_runs_once_per_request(
    deployment: Deployment, environ: dict[str, str]
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=5)
    relay = client("relay")

    first = relay.post("/")
    second = relay.post("/")

    assert first.status_code == 200
    assert first.get_json()["outcome"] == "ok"
    assert first.get_json()["events_published"] == 30
    assert second.status_code == 200 and second.get_json()["outcome"] == "idle"
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


def test_relay_function_answers_500_when_the_run_fails(
    deployment: Deployment, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_TOPIC", "no-such-topic")
    app.clear_cache()
    answer = client("relay").post("/")
    assert answer.status_code == 500
    assert "PUBSUB_TOPIC" in answer.get_json()["error"]


def test_status_function(deployment: Deployment, environ: dict[str, str]) -> None:
    status = client("status")
    before = status.get("/status")
    assert before.status_code == 503  # nothing has run yet
    assert before.get_json()["relayers"][0]["reasons"] == ["no run has recorded state yet"]

    deployment.expected = deployment.make_activity(20, blocks=4)
    deployment.mine(3)
    assert run_main(environ).code == 0

    health = status.get("/health")
    assert health.status_code == 200 and health.get_json() == {"status": "ok"}

    answer = status.get("/status")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["healthy"] is True
    (entry,) = body["relayers"]
    head = deployment.head()
    assert entry["relayer_id"] == deployment.relayer_id
    assert entry["chain_id"] == 31337 and entry["contracts"] == [deployment.contract]
    assert entry["next_block"] == head + 1 and entry["head_block"] == head
    assert entry["lag_blocks"] == 0
    assert entry["last_run"]["outcome"] == "ok"
    assert entry["totals"]["events_published"] == 20
    assert entry["healthy"] is True and entry["reasons"] == []
    assert environ["RPC_URL"] not in json.dumps(body)  # endpoints by host only, never a URL

    deployment.mine(5)
    lagging = status.get("/status").get_json()["relayers"][0]
    assert lagging["lag_blocks"] == 5

    metrics = status.get("/metrics")
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.get_data(as_text=True))}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    rid = ("relayer_id", deployment.relayer_id)
    assert samples[("relayer_next_block", (rid,))] == head + 1
    assert samples[("relayer_head_block", (rid,))] == head + 5
    assert samples[("relayer_lag_blocks", (rid,))] == 5
    assert samples[("relayer_events_published_total", (rid,))] == 20
    assert samples[("relayer_runs_total", (("outcome", "ok"), rid))] == 1
    assert samples[("relayer_healthy", (rid,))] == 1
    assert samples[("relayer_last_success_timestamp_seconds", (rid,))] > 1.7e9

    page = status.get("/")
    assert page.status_code == 200 and "text/html" in page.content_type
    assert deployment.relayer_id in page.get_data(as_text=True)
    assert status.get("/nope").status_code == 404


def test_status_turns_unhealthy_after_a_failed_run(
    deployment: Deployment, environ: dict[str, str]
) -> None:
    # The same relayer (its id pinned), pointed at a node of another chain.
    failed = run_main({**environ, "CHAIN_ID": "5", "RELAYER_ID": deployment.relayer_id})
    assert failed.code == 2
    answer = client("status").get("/status")
    assert answer.status_code == 503
    (entry,) = answer.get_json()["relayers"]
    assert entry["healthy"] is False
    assert any(r.startswith("last run failed: CHAIN_ID=5") for r in entry["reasons"])
    metrics = client("status").get("/metrics").get_data(as_text=True)
    assert f'relayer_healthy{{relayer_id="{deployment.relayer_id}"}} 0.0' in metrics


def test_relay_function_follows_for_a_window_inside_the_request(
    deployment: Deployment, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Follow mode through the function: one request looks every poll interval for its
    window, relays what is mined meanwhile, and answers one summary inside its timeout."""
    monkeypatch.setenv("RELAYER_RUN_SECONDS", "4")
    monkeypatch.setenv("RELAYER_POLL_INTERVAL", "1")
    monkeypatch.setenv("RELAYER_REQUEST_TIMEOUT", "60")
    app.clear_cache()
    before = deployment.make_activity(12, blocks=3, seed=5)
    during: list[ExpectedEvent] = []

    def mine_while_it_follows() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (relayer_doc_or_none(deployment.relayer_id) or {}).get("last_look_at"):
                break
            time.sleep(0.1)
        during.extend(deployment.make_activity(8, blocks=2, seed=6))

    miner = threading.Thread(target=mine_while_it_follows, daemon=True)
    miner.start()
    answer = client("relay").post("/")
    miner.join(30)

    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["outcome"] == "ok" and not body["interrupted"]
    assert body["looks"] >= 3 and body["to_block"] == deployment.head()
    assert body["events_published"] == 20 and len(during) == 8
    assert relayer_doc(deployment.relayer_id)["lease"]["owner"] is None
    assert_exactly_once(payloads(deployment.topic.pull_all()), [*before, *during])


def test_relay_function_refuses_a_window_longer_than_its_request(
    deployment: Deployment, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYER_RUN_SECONDS", "55")
    monkeypatch.setenv("RELAYER_POLL_INTERVAL", "5")
    app.clear_cache()  # RELAYER_REQUEST_TIMEOUT unset: 60 s, Cloud Run functions' default
    deployment.make_activity(5, blocks=1)
    answer = client("relay").post("/")
    assert answer.status_code == 500
    error = answer.get_json()["error"]
    assert "RELAYER_RUN_SECONDS=55" in error and "RELAYER_REQUEST_TIMEOUT=60" in error
    assert "at most 45" in error
    with pytest.raises(AssertionError, match="no state"):
        relayer_doc(deployment.relayer_id)  # refused before any lease or write
    assert payloads(deployment.topic.pull_all()) == []
