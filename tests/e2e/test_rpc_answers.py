"""`python main.py` against nodes that repeat logs, cap batches, send logs without
`blockTimestamp`, or serve another chain behind a failover URL (the fault proxy in front of
anvil), with the chain and a subscriber as ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from test_reorg import _check

from devstack.rpcproxy import RpcProxy
from devstack.stack.services import Anvil, start_anvil
from harness import Deployment, assert_exactly_once, payloads, relayer_doc, run_main, run_until_idle

KEY = "/v2/SECRETKEY"


@pytest.fixture
def proxy(deployment: Deployment) -> Iterator[RpcProxy]:
    p = RpcProxy(deployment.anvil.rpc_url)
    yield p
    p.stop()


# Item 8: one message per event_id, whatever the node repeats --------------------------------
def test_an_exact_copy_of_a_log_makes_one_message(deployment: Deployment, proxy: RpcProxy) -> None:
    deployment.expected = deployment.make_activity(40, blocks=6)
    proxy.repeat_logs("copy")  # every answer with logs repeats its first one

    run = run_main(deployment.env(RPC_URL=proxy.url(KEY)))

    assert run.code == 0, run.stdout + run.stderr
    assert any(c.answer == "repeat" for c in proxy.calls)
    got = payloads(deployment.topic.pull_all())
    assert max(Counter(p["event_id"] for p in got).values()) == 1
    assert_exactly_once(got, deployment.expected)
    assert run.summary["events_published"] == 40
    assert any("repeated 1 logs" in r.get("message", "") for r in run.records)


def test_two_logs_at_one_index_fail_over(deployment: Deployment, proxy: RpcProxy) -> None:
    deployment.expected = deployment.make_activity(40, blocks=6)
    honest = RpcProxy(deployment.anvil.rpc_url)
    try:
        proxy.repeat_logs("shared_index")
        run = run_main(deployment.env(RPC_URL=f"{proxy.url(KEY)},{honest.url(KEY)}"))
    finally:
        honest.stop()
    assert run.code == 0, run.stdout + run.stderr
    assert any("two different logs at index" in r.get("message", "") for r in run.records)
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


def test_two_logs_at_one_index_on_the_only_endpoint_fail_the_run(
    deployment: Deployment, proxy: RpcProxy
) -> None:
    deployment.expected = deployment.make_activity(20, blocks=4)
    proxy.repeat_logs("shared_index")
    env = deployment.env(RPC_URL=proxy.url(KEY))

    run = run_main(env)

    assert run.code == 1 and run.summary["outcome"] == "failed"
    assert "two different logs at index" in run.summary["message"]
    assert payloads(deployment.topic.pull_all()) == []  # nothing relayed from that answer
    proxy.repeat_logs(None)  # the node is fixed: the next run relays everything once
    run_until_idle(env)
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


# Item 9: batches split to the node's cap, headers needed for every block -------------------
@pytest.mark.parametrize("provider", ["geth", "erigon"])
def test_batch_caps_with_logs_without_timestamps(
    deployment: Deployment, proxy: RpcProxy, provider: str
) -> None:
    deployment.expected = deployment.make_activity(90, blocks=30)
    proxy.cap_batches(3, provider)
    proxy.strip_timestamps()  # an older node: every event's block header is needed
    env = deployment.env(RPC_URL=proxy.url(KEY), RELAYER_CHECKPOINT_INTERVAL="4")

    run = run_main(env)

    assert run.code == 0, run.stdout + run.stderr
    assert any(c.answer == "batch" for c in proxy.calls), "the cap was never hit"
    headers = [c for c in proxy.calls if c.method == "eth_getBlockByNumber"]
    assert len(headers) > 3 * 3  # many headers, so several requests under the cap
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
    assert "SECRETKEY" not in run.stdout + run.stderr


def test_a_reorganisation_rewinds_under_a_batch_cap(
    deployment: Deployment, proxy: RpcProxy
) -> None:
    deployment.expected = deployment.make_activity(80, blocks=14)
    proxy.cap_batches(3, "geth")
    proxy.strip_timestamps()
    env = deployment.env(RPC_URL=proxy.url(KEY), RELAYER_CHECKPOINT_INTERVAL="3")
    run_until_idle(env)
    first = payloads(deployment.topic.pull_all())
    head = deployment.head()
    depth = 10

    answer = deployment.w3.provider.make_request("anvil_reorg", [depth, []])  # type: ignore[arg-type]
    assert "error" not in answer, answer
    runs = run_until_idle(env)

    orphaned = [e for e in deployment.expected if e["block_number"] > head - depth]
    kept = [e for e in deployment.expected if e["block_number"] <= head - depth]
    assert orphaned and runs[0].summary["reorg"]["retracted"] == len(orphaned)
    assert any(c.answer == "batch" for c in proxy.calls)
    _check(deployment, first + payloads(deployment.topic.pull_all()), orphaned, kept)


# Item 10: every URL of RPC_URL checked at start ------------------------------------------
@pytest.fixture
def other_chain() -> Iterator[Anvil]:
    with start_anvil(chain_id=11155111) as chain:
        yield chain


def test_a_failover_url_on_another_chain_stops_the_start(
    deployment: Deployment, proxy: RpcProxy, other_chain: Anvil
) -> None:
    deployment.expected = deployment.make_activity(10, blocks=3)
    wrong = RpcProxy(other_chain.rpc_url)
    try:
        run = run_main(deployment.env(RPC_URL=f"{proxy.url(KEY)},{wrong.url('/v3/OTHERKEY')}"))
    finally:
        wrong.stop()

    assert run.code == 2, run.stdout + run.stderr
    error = run.summary["message"]
    assert f"RPC endpoint 127.0.0.1:{wrong.port} serves chain 11155111" in error
    assert "CHAIN_ID=31337" in error and "RPC_URL" in error
    assert "SECRETKEY" not in run.stdout + run.stderr and "OTHERKEY" not in run.stdout + run.stderr
    assert proxy.count("eth_getLogs") == 0  # found before anything was read or relayed
    assert payloads(deployment.topic.pull_all()) == []
    assert relayer_doc(deployment.relayer_id).get("checkpoint_block_hash") is None


def test_a_failover_url_that_does_not_answer_is_a_warning(
    deployment: Deployment, proxy: RpcProxy
) -> None:
    deployment.expected = deployment.make_activity(10, blocks=3)
    silent = RpcProxy(deployment.anvil.rpc_url)
    silent.stall(30)
    try:
        run = run_main(deployment.env(RPC_URL=f"{proxy.url(KEY)},{silent.url('/v3/OTHERKEY')}"))
    finally:
        silent.stop()

    assert run.code == 0, run.stdout + run.stderr
    warned = [
        r["message"] for r in run.records if "did not tell its chain id" in r.get("message", "")
    ]
    assert warned and f"127.0.0.1:{silent.port}" in warned[0]
    assert "OTHERKEY" not in run.stdout + run.stderr
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
