"""The relay job against providers that refuse, throttle, fail and lag (the fault proxy in
front of anvil), with the chain and a subscriber as ground truth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.rpcproxy import RpcProxy
from harness import (
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    run_main,
    run_until_idle,
)

KEY = "/v2/SECRETKEY"


@pytest.fixture
def proxy(deployment: Deployment) -> Iterator[RpcProxy]:
    p = RpcProxy(deployment.anvil.rpc_url)
    yield p
    p.stop()


def _refused(proxy: RpcProxy) -> list[str]:
    return [c.answer for c in proxy.calls if c.method == "eth_getLogs" and c.answer != "upstream"]


@pytest.mark.parametrize("provider", ["alchemy", "quicknode", "infura", "ankr", "reth", "blockpi"])
def test_range_limits_are_learned_and_remembered(
    deployment: Deployment, proxy: RpcProxy, provider: str
) -> None:
    deployment.expected = deployment.make_activity(90, blocks=30)
    proxy.limit_log_range(6, provider=provider)
    env = deployment.env(RPC_URL=proxy.url(KEY), RELAYER_BATCH_SIZE="40")

    first = run_main(env)

    assert first.code == 0, first.stdout
    assert _refused(proxy), "the provider limit was never hit"
    calls = [c for c in proxy.calls if c.method == "eth_getLogs"]
    accepted = [r for r, c in zip(proxy.log_ranges(), calls, strict=True) if c.answer == "upstream"]
    assert all(hi - lo + 1 <= 6 for lo, hi in accepted)
    covered = sorted(b for lo, hi in accepted for b in range(lo, hi + 1))
    assert covered == list(range(0, deployment.head() + 1))  # every block read exactly once
    limits = relayer_doc(deployment.relayer_id)["rpc_limits"]
    assert limits == [{"host": f"127.0.0.1:{proxy.port}", "blocks": limits[0]["blocks"]}]
    assert limits[0]["blocks"] <= 6
    assert "SECRETKEY" not in json.dumps(limits) + first.stdout

    # The next run starts at the learned span: no refusal at all.
    deployment.expected += deployment.make_activity(20, blocks=5, seed=2)
    proxy.reset_counts()
    assert run_main(env).code == 0
    assert _refused(proxy) == []
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


def test_result_caps_follow_the_suggested_range(deployment: Deployment, proxy: RpcProxy) -> None:
    deployment.expected = deployment.make_activity(120, blocks=12)
    proxy.limit_log_results(25, provider="infura")
    run = run_main(deployment.env(RPC_URL=proxy.url(KEY), RELAYER_BATCH_SIZE="1000"))
    assert run.code == 0, run.stdout
    assert _refused(proxy)
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


def test_spans_grow_back_when_answers_are_small(deployment: Deployment, proxy: RpcProxy) -> None:
    deployment.expected = deployment.make_activity(10, blocks=3)
    deployment.mine(120)
    env = deployment.env(RPC_URL=proxy.url(KEY), RELAYER_BATCH_SIZE="200")
    # A span learned under an old, stricter plan: 4 blocks.
    from google.cloud import firestore

    firestore.Client(project="relayer-test").collection("relayers").document(
        deployment.relayer_id
    ).set({"rpc_limits": [{"host": f"127.0.0.1:{proxy.port}", "blocks": 4}]})

    assert run_main(env).code == 0

    spans = [hi - lo + 1 for lo, hi in proxy.log_ranges()]
    assert spans[0] == 4 and max(spans) > 4  # it started where it was and grew
    assert spans == sorted(spans) or spans[-1] < max(spans)  # only the range's end is cut
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


@pytest.mark.parametrize("provider", ["alchemy", "infura", "quicknode", "base"])
def test_rate_limits_back_off_and_succeed(
    deployment: Deployment, proxy: RpcProxy, provider: str
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=5)
    proxy.rate_limit(3, retry_after=0.2, provider=provider)
    run = run_main(deployment.env(RPC_URL=proxy.url(KEY)))
    assert run.code == 0, run.stdout
    assert sum(1 for c in proxy.calls if c.answer == "rate_limit") >= 3
    assert any("rate limited" in r.get("message", "") for r in run.records)
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


@pytest.mark.parametrize(
    "kind", ["http_502", "http_503", "empty", "truncated", "incomplete", "drop", "reset"]
)
def test_transient_failures_fail_over_to_the_next_endpoint(
    deployment: Deployment, proxy: RpcProxy, kind: str
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=5)
    backup = RpcProxy(deployment.anvil.rpc_url)
    try:
        proxy.fail(1000, kind=kind)  # the first endpoint is down for good
        env = deployment.env(RPC_URL=f"{proxy.url(KEY)},{backup.url('/v3/OTHERSECRET')}")
        run = run_main(env)
        assert run.code == 0, run.stdout
        assert backup.count("eth_getLogs") >= 1
        assert "SECRETKEY" not in run.stdout and "OTHERSECRET" not in run.stdout
        assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
    finally:
        backup.stop()


def test_a_refused_key_stops_with_a_clear_error(deployment: Deployment) -> None:
    refuse = RpcProxy(
        deployment.anvil.rpc_url,
        faults=lambda body: (
            401,
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"invalid project id"}}',
        ),
    )
    try:
        run = run_main(deployment.env(RPC_URL=refuse.url(KEY)))
    finally:
        refuse.stop()
    assert run.code == 1
    assert f"127.0.0.1:{refuse.port}" in run.summary["message"]
    assert "HTTP 401" in run.summary["message"] and "API key" in run.summary["message"]
    assert "SECRETKEY" not in run.stdout + run.stderr


def _tampering(upstream: str) -> Any:
    """An endpoint whose eth_getLogs answers carry a log from outside the requested range."""
    session = requests.Session()

    def fault(body: bytes) -> tuple[int, bytes] | None:
        calls = json.loads(body)
        if not isinstance(calls, list) or not any(c["method"] == "eth_getLogs" for c in calls):
            return None
        answers = session.post(
            upstream, data=body, headers={"Content-Type": "application/json"}
        ).json()
        for call, answer in zip(calls, answers, strict=True):
            if call["method"] == "eth_getLogs" and answer.get("result"):
                answer["result"][0]["blockNumber"] = hex(10**9)
        return 200, json.dumps(answers).encode()

    return fault


def test_an_answer_that_cannot_be_right_is_the_endpoints_failure(
    deployment: Deployment,
) -> None:
    deployment.expected = deployment.make_activity(20, blocks=4)
    liar = RpcProxy(deployment.anvil.rpc_url, faults=_tampering(deployment.anvil.rpc_url))
    honest = RpcProxy(deployment.anvil.rpc_url)
    try:
        run = run_main(deployment.env(RPC_URL=f"{liar.url(KEY)},{honest.url(KEY)}"))
    finally:
        liar.stop()
        honest.stop()
    assert run.code == 0, run.stdout
    assert any("cannot be right" in r.get("message", "") for r in run.records)
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


@pytest.mark.parametrize("logs", ["error", "truncate"])
def test_a_lagging_node_is_not_a_reorganisation(
    deployment: Deployment, proxy: RpcProxy, logs: str
) -> None:
    deployment.expected = deployment.make_activity(30, blocks=6)
    env = deployment.env(RPC_URL=proxy.url(KEY))
    run_until_idle(env)
    checkpoint = relayer_doc(deployment.relayer_id)["next_block"]
    deployment.expected += deployment.make_activity(20, blocks=4, seed=3)

    proxy.lag(8, logs=logs)  # behind the checkpoint now
    behind = run_main(env)
    assert behind.code == 0 and behind.summary["outcome"] == "idle"
    assert relayer_doc(deployment.relayer_id)["next_block"] == checkpoint  # no rewind
    assert "reorg" not in behind.summary

    proxy.lag(2, logs=logs)  # ahead of the checkpoint, behind the chain
    run_until_idle(env)
    proxy.lag(0)
    run_until_idle(env)
    got = payloads(deployment.topic.pull_all())
    assert not [p for p in got if p["removed"]]
    assert_exactly_once(got, deployment.expected)
