"""The fault-injecting proxy, proven against a real anvil: it must behave like what it mimics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.rpcproxy import RpcProxy
from devstack.rpcproxy.bodies import (
    BATCH_BODIES,
    FAILURES,
    RANGE_BODIES,
    RATE_BODIES,
    RESULT_BODIES,
)
from devstack.stack.services import Anvil
from function.adapters.jsonrpc.batch_caps import refused_batch
from function.core.provider_errors import FailureKind, classify, error_text, next_range

EMIT_ONE_LOG = "0x60006000a000"  # creation code: LOG0 of nothing, then stop


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RpcProxy]:
    started = RpcProxy(anvil.rpc_url)
    yield started
    started.stop()


def post(url: str, body: Any, timeout: float = 10) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    return requests.post(url, data=json.dumps(body), headers=headers, timeout=timeout)


def call(method: str, params: list[Any] | None = None, id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params or []}


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    answer = post(url, call(method, params)).json()
    assert "error" not in answer, answer
    return answer["result"]


def logs_query(low: int, high: int) -> list[Any]:
    return [{"fromBlock": hex(low), "toBlock": hex(high)}]


def mine(anvil: Anvil, blocks: int) -> int:
    rpc(anvil.rpc_url, "anvil_mine", [hex(blocks)])
    return int(rpc(anvil.rpc_url, "eth_blockNumber"), 16)


def emit_logs(anvil: Anvil, blocks: int) -> list[int]:
    """One log in each of the next `blocks` blocks (anvil mines a block per transaction)."""
    sender = rpc(anvil.rpc_url, "eth_accounts")[0]
    sent = [
        rpc(anvil.rpc_url, "eth_sendTransaction", [{"from": sender, "data": EMIT_ONE_LOG}])
        for _ in range(blocks)
    ]
    # anvil answers a send before its block is indexed: wait for every receipt.
    deadline = time.monotonic() + 10
    while True:
        receipts = [rpc(anvil.rpc_url, "eth_getTransactionReceipt", [h]) for h in sent]
        if all(receipts) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    numbers = sorted(int(r["blockNumber"], 16) for r in receipts)
    assert numbers == list(range(numbers[0], numbers[0] + blocks)), numbers
    return numbers


def test_forwards_any_path_unchanged(anvil: Anvil, proxy: RpcProxy) -> None:
    mine(anvil, 3)
    body = [call("eth_chainId", id=7), call("eth_blockNumber", id=8)]

    through = post(proxy.url("/v2/SECRET?apikey=K"), body)

    assert through.status_code == 200
    assert through.json() == post(anvil.rpc_url, body).json()
    assert proxy.requests_seen == ["/v2/SECRET?apikey=K"]
    assert [(c.method, c.in_batch, c.answer) for c in proxy.calls] == [
        ("eth_chainId", True, "upstream"),
        ("eth_blockNumber", True, "upstream"),
    ]


@pytest.mark.parametrize("provider", list(RANGE_BODIES))
def test_range_limit_answers_like_the_provider(
    anvil: Anvil, proxy: RpcProxy, provider: str
) -> None:
    mine(anvil, 120)
    proxy.limit_log_range(50, provider)

    wide = post(proxy.url(), call("eth_getLogs", logs_query(10, 109)))
    fits = post(proxy.url(), call("eth_getLogs", logs_query(10, 59)))

    status, code, _ = RANGE_BODIES[provider]
    error = wide.json()["error"]
    assert (wide.status_code, error["code"], wide.json()["id"]) == (status, code, 1)
    assert fits.status_code == 200 and fits.json()["result"] == []
    failure = classify(wide.status_code, error["code"], error_text(error))
    assert failure.kind is FailureKind.RANGE_TOO_LARGE
    assert 10 <= next_range(10, 109, failure) <= 59  # what the relayer tries next fits
    assert proxy.log_ranges() == [(10, 109), (10, 59)]
    assert [c.answer for c in proxy.calls] == ["range", "upstream"]


def test_alchemy_suggests_the_range_alchemy_would(anvil: Anvil, proxy: RpcProxy) -> None:
    mine(anvil, 300)
    proxy.limit_log_range(100, "alchemy")

    error = post(proxy.url(), call("eth_getLogs", logs_query(0x20, 0x120))).json()["error"]

    assert error == {
        "code": -32600,
        "message": "You can make eth_getLogs requests with up to a 100 block range. Based on "
        "your parameters, this block range should work: [0x20, 0x83]",
    }


def test_quicknode_refuses_with_413_and_a_thousands_separator(
    anvil: Anvil, proxy: RpcProxy
) -> None:
    mine(anvil, 3)
    proxy.limit_log_range(2, "quicknode")

    answer = post(proxy.url(), call("eth_getLogs", logs_query(1, 3)))

    assert answer.status_code == 413  # eternalsafe/wallet#57: "bad response (status=413 ..."
    assert answer.json()["error"]["message"] == "eth_getLogs is limited to a 2 range"
    assert RANGE_BODIES["quicknode"].text.format(n=10_000).endswith("a 10,000 range")


def test_a_batch_refuses_only_its_wide_get_logs(anvil: Anvil, proxy: RpcProxy) -> None:
    mine(anvil, 100)
    proxy.limit_log_range(10, "quicknode")
    body = [
        call("eth_blockNumber", id=1),
        call("eth_getLogs", logs_query(1, 50), id=2),
        call("eth_getLogs", logs_query(1, 5), id=3),
    ]

    answer = post(proxy.url(), body)

    assert answer.status_code == 200  # a batch answer, whatever its entries say
    head, wide, narrow = answer.json()
    assert (head["id"], head["result"]) == (1, hex(100))
    assert (wide["id"], wide["error"]["code"]) == (2, -32614)
    assert (narrow["id"], narrow["result"]) == (3, [])


@pytest.mark.parametrize("provider", list(RESULT_BODIES))
def test_result_cap_answers_like_the_provider(anvil: Anvil, proxy: RpcProxy, provider: str) -> None:
    blocks = emit_logs(anvil, 5)
    proxy.limit_log_results(2, provider)

    refused = post(proxy.url(), call("eth_getLogs", logs_query(blocks[0], blocks[-1])))

    status, code, _ = RESULT_BODIES[provider]
    error = refused.json()["error"]
    assert (refused.status_code, error["code"]) == (status, code)
    end = blocks[-1]
    for _ in range(len(blocks)):  # refused, shrink as the relayer would, ask again
        answer = post(proxy.url(), call("eth_getLogs", logs_query(blocks[0], end))).json()
        if "result" in answer:
            break
        failure = classify(None, answer["error"]["code"], error_text(answer["error"]))
        assert failure.kind is FailureKind.RANGE_TOO_LARGE
        end = next_range(blocks[0], end, failure)
    assert 0 < len(answer["result"]) <= 2


def test_infura_result_cap_suggests_the_blocks_that_fit(anvil: Anvil, proxy: RpcProxy) -> None:
    blocks = emit_logs(anvil, 4)
    proxy.limit_log_results(2, "infura")
    low, high = blocks[0], blocks[-1]

    error = post(proxy.url(), call("eth_getLogs", logs_query(low, high))).json()["error"]

    fit = blocks[1]  # the third log is in blocks[2]
    assert error == {
        "code": -32005,
        "message": f"query returned more than 2 results. Try with this block range "
        f"[0x{low:X}, 0x{fit:X}].",
        "data": {"from": f"0x{low:X}", "limit": 2, "to": f"0x{fit:X}"},
    }


@pytest.mark.parametrize("provider", [p for p in RATE_BODIES if p != "base"])
def test_rate_limit_for_the_next_requests(anvil: Anvil, proxy: RpcProxy, provider: str) -> None:
    proxy.rate_limit(2, retry_after=3, provider=provider)

    first = post(proxy.url(), call("eth_chainId"))
    second = post(proxy.url(), [call("eth_chainId"), call("eth_blockNumber", id=2)])
    third = post(proxy.url(), call("eth_chainId"))

    for limited in (first, second):
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
        body = limited.json()
        error = body.get("error", body)  # QuickNode's 429 is the bare error object
        failure = classify(limited.status_code, error["code"], error_text(error), "3")
        assert (failure.kind, failure.retry_after_s) == (FailureKind.RATE_LIMITED, 3.0)
    assert third.status_code == 200 and third.json()["result"] == hex(31337)
    assert [c.answer for c in proxy.calls] == ["rate_limit"] * 3 + ["upstream"]


def test_rate_limit_inside_a_normal_answer_like_base(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.rate_limit(1, retry_after=None, provider="base")

    answer = post(proxy.url(), [call("eth_chainId", id=4), call("eth_blockNumber", id=5)])

    assert answer.status_code == 200 and "Retry-After" not in answer.headers
    assert [(a["id"], a["error"]["code"]) for a in answer.json()] == [(4, -32007), (5, -32007)]


def test_ankr_and_infura_say_how_long_to_wait(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.rate_limit(1, retry_after=600, provider="ankr")
    proxy.rate_limit(1, retry_after=2, provider="infura")

    ankr = post(proxy.url(), call("eth_chainId")).json()["error"]
    infura = post(proxy.url(), call("eth_chainId")).json()["error"]

    assert ankr["message"].endswith("retry in 10m0s")
    assert classify(429, ankr["code"], ankr["message"]).retry_after_s == 600.0
    assert classify(429, infura["code"], error_text(infura)).retry_after_s == 2.0


def test_faults_can_wait_for_a_method(anvil: Anvil, proxy: RpcProxy) -> None:
    mine(anvil, 2)
    proxy.rate_limit(1, method="eth_getLogs")

    head = post(proxy.url(), call("eth_blockNumber"))
    logs = post(proxy.url(), call("eth_getLogs", logs_query(1, 2)))

    assert (head.status_code, logs.status_code) == (200, 429)


@pytest.mark.parametrize(
    ("kind", "status", "marker"),
    [
        ("http_500", 500, b"Internal Server Error"),
        ("http_502", 502, b"502 Bad Gateway"),
        ("http_503", 503, b"Service Unavailable"),
        ("http_504", 504, b"504 Gateway Time-out"),
    ],
)
def test_server_errors(
    anvil: Anvil, proxy: RpcProxy, kind: str, status: int, marker: bytes
) -> None:
    proxy.fail(1, kind=kind)

    failed = post(proxy.url(), call("eth_chainId"))
    recovered = post(proxy.url(), call("eth_chainId"))

    assert failed.status_code == status and marker in failed.content
    assert classify(status, None, failed.text).kind is FailureKind.TRANSIENT
    assert recovered.json()["result"] == hex(31337)


def test_empty_and_truncated_bodies(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.fail(1, kind="empty")
    proxy.fail(1, kind="truncated")
    whole = post(anvil.rpc_url, call("eth_getBlockByNumber", ["0x0", False])).content

    empty = post(proxy.url(), call("eth_getBlockByNumber", ["0x0", False]))
    truncated = post(proxy.url(), call("eth_getBlockByNumber", ["0x0", False]))

    assert (empty.status_code, empty.content) == (200, b"")
    assert truncated.status_code == 200 and whole.startswith(truncated.content)
    assert 0 < len(truncated.content) < len(whole)
    with pytest.raises(ValueError):
        truncated.json()


@pytest.mark.parametrize(
    ("kind", "raised"),
    [
        ("incomplete", requests.exceptions.ChunkedEncodingError),
        ("drop", requests.exceptions.ConnectionError),
        ("reset", requests.exceptions.ConnectionError),
    ],
)
def test_broken_connections(
    anvil: Anvil, proxy: RpcProxy, kind: str, raised: type[Exception]
) -> None:
    proxy.fail(1, kind=kind)

    with pytest.raises(raised):
        post(proxy.url(), call("eth_chainId"))
    assert post(proxy.url(), call("eth_chainId")).json()["result"] == hex(31337)


def test_unknown_fault_or_provider_is_refused(proxy: RpcProxy) -> None:
    with pytest.raises(ValueError, match="unknown failure"):
        proxy.fail(kind="http_418")
    with pytest.raises(ValueError, match="unknown provider"):
        proxy.limit_log_range(10, "nobody")
    assert "reset" in FAILURES


def test_delay_then_timeout(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.delay(0.3, count=1)
    started = time.monotonic()
    post(proxy.url(), call("eth_chainId"))
    slow = time.monotonic() - started
    started = time.monotonic()
    post(proxy.url(), call("eth_chainId"))
    fast = time.monotonic() - started

    proxy.delay(1.0, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(proxy.url(), call("eth_chainId"), timeout=0.2)

    assert slow >= 0.3 > fast


def test_lagging_node_hides_the_newest_blocks(anvil: Anvil, proxy: RpcProxy) -> None:
    head = mine(anvil, 20)
    newest = rpc(anvil.rpc_url, "eth_getBlockByNumber", [hex(head), False])
    proxy.lag(5)

    number = rpc(proxy.url(), "eth_blockNumber")
    latest = rpc(proxy.url(), "eth_getBlockByNumber", ["latest", False])
    missing = rpc(proxy.url(), "eth_getBlockByNumber", [hex(head), False])
    by_hash = rpc(proxy.url(), "eth_getBlockByHash", [newest["hash"], False])
    past_head = post(proxy.url(), call("eth_getLogs", logs_query(1, head))).json()
    within = rpc(proxy.url(), "eth_getLogs", logs_query(1, head - 5))

    assert number == hex(head - 5) and latest["number"] == hex(head - 5)
    assert missing is None and by_hash is None
    assert past_head["error"] == {
        "code": -32602,
        "message": "block range extends beyond current head block",
    }
    assert classify(200, -32602, past_head["error"]["message"]).kind is FailureKind.TRANSIENT
    assert within == []


def test_lagging_older_node_silently_stops_at_its_head(anvil: Anvil, proxy: RpcProxy) -> None:
    blocks = emit_logs(anvil, 6)
    proxy.lag(2, logs="truncate")

    logs = rpc(proxy.url(), "eth_getLogs", logs_query(blocks[0], blocks[-1]))
    beyond = rpc(proxy.url(), "eth_getLogs", logs_query(blocks[-1], blocks[-1]))

    assert [int(log["blockNumber"], 16) for log in logs] == blocks[:-2]
    assert beyond == []
    proxy.clear()
    assert len(rpc(proxy.url(), "eth_getLogs", logs_query(blocks[0], blocks[-1]))) == 6


def test_counts_calls_per_method(anvil: Anvil, proxy: RpcProxy) -> None:
    mine(anvil, 10)
    proxy.limit_log_range(4)
    post(proxy.url(), [call("eth_chainId"), call("eth_getLogs", logs_query(1, 10), id=2)])
    post(proxy.url(), call("eth_getLogs", logs_query(1, 4)))
    post(proxy.url(), call("eth_getLogs", [{"fromBlock": "0x5", "toBlock": "latest"}]))

    assert (proxy.count(), proxy.count("eth_getLogs"), proxy.count("eth_chainId")) == (4, 3, 1)
    assert proxy.log_ranges() == [(1, 10), (1, 4)]  # tags are not numbers
    proxy.reset_counts()
    assert (proxy.count(), proxy.requests_seen) == (0, [])


def test_faults_are_taken_once_under_concurrency(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.rate_limit(5, retry_after=None)
    statuses: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        status = post(proxy.url(), call("eth_chainId")).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] * 15 + [429] * 5
    assert proxy.count("eth_chainId") == 20


def test_the_older_fault_hook_still_answers(anvil: Anvil) -> None:
    hooked = RpcProxy(
        anvil.rpc_url, faults=lambda body: (418, b"teapot") if b"chainId" in body else None
    )
    try:
        assert post(hooked.url(), call("eth_chainId")).status_code == 418
        assert post(hooked.url(), call("eth_blockNumber")).status_code == 200
    finally:
        hooked.stop()


@pytest.mark.parametrize("provider", list(BATCH_BODIES))
def test_batch_cap_refuses_a_longer_batch_as_a_whole(
    anvil: Anvil, proxy: RpcProxy, provider: str
) -> None:
    proxy.cap_batches(3, provider)
    short = post(proxy.url(), [call("eth_chainId", id=i) for i in (5, 6, 7)])
    long = post(proxy.url(), [call("eth_chainId", id=i) for i in (8, 9, 10, 11)])

    assert short.status_code == 200 and [a["id"] for a in short.json()] == [5, 6, 7]
    assert long.status_code == 200  # every node of the catalogue answers 200
    body = long.json()
    if BATCH_BODIES[provider].shape == "array":  # geth: one item, the first call's id
        assert body == [
            {"jsonrpc": "2.0", "id": 8, "error": {"code": -32600, "message": "batch too large"}}
        ]
    else:
        assert isinstance(body, dict) and body["id"] is None
    too_large, stated = refused_batch(body, 4)
    assert too_large and stated == (None if provider in ("geth", "bor") else 3)
    assert refused_batch(short.json(), 3) == (False, None)
    assert [c.answer for c in proxy.calls] == ["upstream"] * 3 + ["batch"] * 4
    single = post(proxy.url(), call("eth_chainId"))  # a lone call is no batch
    assert single.json()["result"] == hex(31337)


def test_strip_timestamps_like_an_older_node(anvil: Anvil, proxy: RpcProxy) -> None:
    blocks = emit_logs(anvil, 2)
    assert all("blockTimestamp" in e for e in rpc(proxy.url(), "eth_getLogs", logs_query(1, 9)))
    proxy.strip_timestamps()

    logs = rpc(proxy.url(), "eth_getLogs", logs_query(blocks[0], blocks[-1]))

    assert len(logs) == 2 and not any("blockTimestamp" in e for e in logs)
    assert all(e["blockHash"] and e["logIndex"] for e in logs)  # the rest untouched


@pytest.mark.parametrize("kind", ["copy", "shared_index"])
def test_repeat_a_log_in_one_answer(anvil: Anvil, proxy: RpcProxy, kind: str) -> None:
    blocks = emit_logs(anvil, 3)
    truth = rpc(anvil.rpc_url, "eth_getLogs", logs_query(blocks[0], blocks[-1]))
    proxy.repeat_logs(kind, count=1)

    repeated = rpc(proxy.url(), "eth_getLogs", logs_query(blocks[0], blocks[-1]))
    after = rpc(proxy.url(), "eth_getLogs", logs_query(blocks[0], blocks[-1]))

    assert repeated[:3] == truth and after == truth
    extra = repeated[3]
    assert (extra["blockHash"], extra["logIndex"]) == (truth[0]["blockHash"], truth[0]["logIndex"])
    assert (extra == truth[0]) is (kind == "copy")
    assert [c.answer for c in proxy.calls] == ["repeat", "upstream"]
    with pytest.raises(ValueError, match="unknown repeat"):
        proxy.repeat_logs("twice")


def test_stall_holds_one_request_of_a_method(anvil: Anvil, proxy: RpcProxy) -> None:
    mine(anvil, 2)
    proxy.stall(0.6, method="eth_getLogs")
    started = time.monotonic()
    head = post(proxy.url(), call("eth_blockNumber"))
    fast = time.monotonic() - started
    got: list[requests.Response] = []
    slow = threading.Thread(
        target=lambda: got.append(post(proxy.url(), call("eth_getLogs", logs_query(1, 2))))
    )
    slow.start()
    deadline = time.monotonic() + 5
    while proxy.count("eth_getLogs") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    arrived = time.monotonic()  # recorded on arrival, before the stall ends
    slow.join()
    stalled = time.monotonic() - arrived

    assert head.json()["result"] == hex(2) and fast < 0.3
    assert got[0].json()["result"] == [] and stalled >= 0.4
    assert [c.answer for c in proxy.calls] == ["upstream", "stall"]
    with pytest.raises(requests.exceptions.ReadTimeout):  # a client gives up; the proxy lives
        proxy.stall(5)
        post(proxy.url(), call("eth_chainId"), timeout=0.2)
