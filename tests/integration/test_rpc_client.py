"""The JSON-RPC client and chain reader against anvil behind the fault proxy: batch caps,
repeated logs, stops that cut waits short, and every endpoint's chain checked at start."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_rpcproxy import emit_logs, mine

from devstack.rpcproxy import RpcProxy
from devstack.rpcproxy.bodies import BATCH_BODIES, batch_refusal
from devstack.stack.services import Anvil, start_anvil
from function.adapters.chain import ChainReader, _LogsCheck
from function.adapters.jsonrpc.batch_caps import (
    BatchCaps,
    first_part,
    parts,
    refused_batch,
    shrunk,
    stated_cap,
)
from function.adapters.jsonrpc.client import Call, JsonRpc
from function.core.model import unique_logs
from function.core.planning import BlockRange
from function.errors import ChainMismatchError, RpcError, StoppedError
from function.stopping import StopSignal


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RpcProxy]:
    started = RpcProxy(anvil.rpc_url)
    yield started
    started.stop()


def client(*urls: str, **kwargs: Any) -> JsonRpc:
    return JsonRpc(list(urls), 31337, caps=kwargs.pop("caps", BatchCaps()), **kwargs)


# Pure decisions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answers", "sent", "expected"),
    [
        (batch_refusal("geth", 7, 3, 4), 4, (True, None)),
        (batch_refusal("erigon", 7, 100, 401), 401, (True, 100)),
        (batch_refusal("nodereal", 7, 500, 600), 600, (True, 500)),
        (batch_refusal("jsonrpsee", 7, 50, 60), 60, (True, 50)),
        # Moralis-like and TRON-like wordings, no number: halve
        ({"error": {"code": -32007, "message": "batch limit exceeded"}}, 30, (True, None)),
        # a lone call's -32600 is the call's refusal, not the batch's
        ([{"id": 1, "error": {"code": -32600, "message": "batch too large"}}], 1, (False, None)),
        # every call answered: whatever an answer says, the batch went through
        ([{"id": i, "error": {"message": "batch too large"}} for i in (1, 2)], 2, (False, None)),
        # one answer missing without the words: not a batch refusal (the client retries)
        ([{"id": 1, "result": "0x1"}], 2, (False, None)),
        ({"error": {"code": -32005, "message": "request rate limited"}}, 5, (False, None)),
        (None, 5, (False, None)),
    ],
)
def test_batch_refusals_are_read_from_their_words(
    answers: Any, sent: int, expected: tuple[bool, int | None]
) -> None:
    assert refused_batch(answers, sent) == expected


@pytest.mark.parametrize(
    ("text", "cap"),
    [
        ("batch too large", None),
        (
            "batch limit 100 exceeded (can increase by --rpc.batch.limit). Requested batch of "
            "size: 401",
            100,
        ),
        ("batch size exceed limit 500", 500),
        ("The batch request was too large Exceeded max limit of 50", 50),
    ],
)
def test_stated_caps(text: str, cap: int | None) -> None:
    assert stated_cap(text) == cap


@pytest.mark.parametrize(
    ("sent", "stated", "new"),
    [(128, None, 64), (128, 100, 100), (3, 20, 1), (2, None, 1), (1, None, 1)],
)
def test_the_cap_after_a_refusal(sent: int, stated: int | None, new: int) -> None:
    assert shrunk(sent, stated) == new


@pytest.mark.parametrize(
    ("calls", "cap", "sizes"),
    [
        (5, None, [5]),
        (5, 5, [5]),
        (7, 3, [1, 3, 3]),
        (6, 3, [3, 3]),
        (129, 100, [29, 100]),
        (3, 1, [1, 1, 1]),
    ],
)
def test_parts_are_cut_from_the_end(calls: int, cap: int | None, sizes: list[int]) -> None:
    assert parts(calls, cap) == sizes
    assert first_part(calls, cap) == sizes[0]


def test_caps_only_shrink() -> None:
    caps = BatchCaps()
    assert caps.cap("a") is None
    assert caps.refused("a", 10, None) == 5
    assert caps.refused("a", 10, 8) == 5  # a later refusal of a longer batch: keep the lower
    assert caps.snapshot() == {"a": 5}


def _log(block: str, index: str, data: str = "0x") -> dict[str, Any]:
    return {
        "address": "0x" + "11" * 20,
        "topics": [],
        "data": data,
        "blockNumber": "0x5",
        "blockHash": block,
        "transactionHash": "0x" + "ab" * 32,
        "transactionIndex": "0x0",
        "logIndex": index,
    }


@pytest.mark.parametrize(
    ("logs", "kept", "refused"),
    [
        ([_log("0xaa", "0x0"), _log("0xaa", "0x1")], 2, False),
        ([_log("0xaa", "0x0"), _log("0xaa", "0x0")], 1, False),  # exact copy: dropped
        ([_log("0xaa", "0x0"), _log("0xbb", "0x0")], 2, False),  # same index, other block
        ([_log("0xaa", "0x0"), _log("0xaa", "0x0", "0x01")], 0, True),  # two logs, one index
    ],
)
def test_repeated_logs(logs: list[dict[str, Any]], kept: int, refused: bool) -> None:
    check = _LogsCheck(BlockRange(1, 9), ["0x" + "11" * 20])
    if refused:
        with pytest.raises(ValueError, match="two different logs at index 0 of block 5"):
            check(logs)
    else:
        check(logs)
        assert len(unique_logs(logs)) == kept  # type: ignore[arg-type]


class _Answers:
    """A JSON-RPC client that answers a batch as told (a header, then the logs, each a
    copy), each answer checked as the real client checks it (`checked`: not)."""

    host = "node.example"

    def __init__(self, logs: list[dict[str, Any]], checked: bool = True) -> None:
        self.logs = logs
        self.checked = checked

    def batch(self, calls: list[Call]) -> list[Any]:
        header = {"number": "0x9", "hash": "0x" + "cd" * 32, "timestamp": "0x1"}
        answers = [header if c.method == "eth_getBlockByNumber" else list(self.logs) for c in calls]
        for call, answer in zip(calls, answers, strict=True):
            if call.check is not None and self.checked:
                call.check(answer)
        return answers


LATER = {**_log("0xbb", "0x0"), "blockNumber": "0x7"}


@pytest.mark.parametrize("queries", [None, [None, None]])  # one eth_getLogs, or two merged
@pytest.mark.parametrize("checked", [True, False])
@pytest.mark.parametrize(
    "logs",
    [
        [LATER, _log("0xaa", "0x2"), _log("0xaa", "0x10"), _log("0xaa", "0x2")],  # both
        [_log("0xaa", "0x2"), _log("0xaa", "0x10"), LATER, _log("0xaa", "0x2")],  # a copy
        [_log("0xaa", "0x10"), _log("0xaa", "0x2"), LATER],  # out of order
        [_log("0xaa", "0x2"), _log("0xaa", "0x10"), LATER],  # plain: as it came
    ],
)
def test_an_answer_is_relayed_in_chain_order_each_log_once(
    queries: list[None] | None, checked: bool, logs: list[dict[str, Any]]
) -> None:
    chain = ChainReader(_Answers(logs, checked))  # type: ignore[arg-type]

    _, got = chain.logs_with_headers(BlockRange(1, 9), None, None, [], queries)

    assert [(e["blockNumber"], e["logIndex"]) for e in got] == [
        ("0x5", "0x2"), ("0x5", "0x10"), ("0x7", "0x0")
    ]  # fmt: skip


def test_what_the_check_learnt_of_one_answer_is_not_taken_for_another() -> None:
    plain = [_log("0xaa", "0x2"), LATER]
    check = _LogsCheck(BlockRange(1, 9), None)
    check(plain)
    assert check.plain and check.passed is plain
    check([LATER, _log("0xaa", "0x2")])
    assert not check.plain
    with pytest.raises(ValueError, match="two different logs"):
        check([_log("0xaa", "0x0"), _log("0xaa", "0x0", "0x01")])
    assert check.passed is None and not check.plain


# Against anvil ----------------------------------------------------------------------------
@pytest.mark.parametrize("provider", list(BATCH_BODIES))
def test_batches_are_split_to_the_learned_cap(anvil: Anvil, proxy: RpcProxy, provider: str) -> None:
    mine(anvil, 12)
    proxy.cap_batches(3, provider)
    caps = BatchCaps()
    rpc = client(proxy.url("/v2/KEY"), caps=caps)
    calls = [Call("eth_getBlockByNumber", [hex(n), False]) for n in range(12)]

    blocks = rpc.batch(calls)

    assert [int(b["number"], 16) for b in blocks] == list(range(12))
    cap = caps.cap(f"127.0.0.1:{proxy.port}")
    assert cap is not None and cap <= 3
    assert cap == (3 if provider in ("erigon", "nodereal", "jsonrpsee") else cap)
    proxy.reset_counts()
    again = client(proxy.url(), caps=caps).batch(calls)  # the next client starts at the cap
    assert again == blocks
    assert all(c.answer == "upstream" for c in proxy.calls)


def test_a_cap_of_one_sends_calls_one_by_one(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.cap_batches(1, "geth")  # refuses every batch of two or more
    rpc = client(proxy.url(), attempts=1, sleep=lambda s: None)
    assert len(rpc.batch([Call("eth_blockNumber", []), Call("eth_blockNumber", [])])) == 2


def test_an_exact_copy_of_a_log_is_dropped(
    anvil: Anvil, proxy: RpcProxy, caplog: pytest.LogCaptureFixture
) -> None:
    blocks = emit_logs(anvil, 3)
    address = _creations(anvil, blocks)
    proxy.repeat_logs("copy")
    chain = ChainReader(client(proxy.url()))

    with caplog.at_level(logging.WARNING):
        _, logs = chain.logs_with_headers(BlockRange(blocks[0], blocks[-1]), address, [], [])

    assert len(logs) == 3
    assert len({(e["blockHash"], e["logIndex"]) for e in logs}) == 3
    assert "repeated 1 logs" in caplog.text


def test_two_logs_at_one_index_fail_over(anvil: Anvil, proxy: RpcProxy) -> None:
    blocks = emit_logs(anvil, 3)
    address = _creations(anvil, blocks)
    honest = RpcProxy(anvil.rpc_url)
    try:
        proxy.repeat_logs("shared_index")
        window = BlockRange(blocks[0], blocks[-1])
        alone = ChainReader(client(proxy.url(), attempts=1, sleep=lambda s: None))
        with pytest.raises(RpcError, match="two different logs at index"):
            alone.logs_with_headers(window, address, [], [])
        both = ChainReader(client(proxy.url(), honest.url(), sleep=lambda s: None))
        _, logs = both.logs_with_headers(window, address, [], [])
        assert len(logs) == 3 and honest.count("eth_getLogs") == 1
    finally:
        honest.stop()


def _creations(anvil: Anvil, blocks: list[int]) -> list[str]:
    """The addresses emit_logs' contract creations logged from."""
    rpc = JsonRpc([anvil.rpc_url], 31337)
    logs = rpc.call("eth_getLogs", [{"fromBlock": hex(blocks[0]), "toBlock": hex(blocks[-1])}])
    return sorted({e["address"] for e in logs})


def _stop_in(seconds: float) -> StopSignal:
    stop = StopSignal()
    threading.Timer(seconds, stop.set).start()
    return stop


def test_a_stop_ends_a_stalled_request(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.stall(30, method="eth_blockNumber")
    rpc = client(proxy.url(), stop=_stop_in(0.3))
    started = time.monotonic()
    with pytest.raises(StoppedError, match="eth_blockNumber"):
        rpc.call("eth_blockNumber", [])
    assert time.monotonic() - started < 1.5
    with pytest.raises(StoppedError):  # stopped: no new request goes out
        rpc.call("eth_chainId", [])


def test_a_stop_ends_the_backoff(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.fail(100, kind="http_503")
    rpc = client(proxy.url(), attempts=10, stop=_stop_in(0.5))
    started = time.monotonic()
    with pytest.raises(StoppedError):
        rpc.call("eth_blockNumber", [])
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("kind", ["truncated", "incomplete", "drop", "reset", "empty"])
def test_a_body_cut_short_is_read_again(
    anvil: Anvil, proxy: RpcProxy, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The client reads a body in one read (not through `response.content`): a connection
    # cut while it reads must still be a retry, with the pool's connection given up, and
    # named as requests names it.
    proxy.fail(2, kind=kind)
    rpc = client(proxy.url(), attempts=4)
    with caplog.at_level(logging.WARNING):
        assert rpc.call("eth_blockNumber", []) == hex(0)
    assert rpc.call("eth_chainId", []) == hex(anvil.chain_id)  # the pool still serves
    if kind == "incomplete":
        assert "ChunkedEncodingError" in caplog.text, caplog.text


def test_without_a_stop_the_client_still_works(anvil: Anvil, proxy: RpcProxy) -> None:
    proxy.stall(0.3, method="eth_blockNumber")  # the status function's reader has no stop
    assert client(proxy.url()).call("eth_blockNumber", []) == hex(0)


@pytest.fixture
def other_chain() -> Iterator[Anvil]:
    with start_anvil(chain_id=11155111) as chain:
        yield chain


def test_a_failover_url_on_another_chain_is_found_at_start(
    anvil: Anvil, proxy: RpcProxy, other_chain: Anvil
) -> None:
    wrong = RpcProxy(other_chain.rpc_url)
    try:
        rpc = client(proxy.url("/v2/KEY"), wrong.url("/v3/OTHERKEY"))
        with pytest.raises(ChainMismatchError) as raised:
            rpc.check_endpoints()
    finally:
        wrong.stop()
    message = str(raised.value)
    assert f"127.0.0.1:{wrong.port} serves chain 11155111" in message
    assert "KEY" not in message


def test_a_silent_endpoint_at_start_is_a_warning(
    anvil: Anvil, proxy: RpcProxy, caplog: pytest.LogCaptureFixture
) -> None:
    silent = RpcProxy(anvil.rpc_url)
    silent.stall(30)
    try:
        rpc = client(proxy.url(), silent.url("/v3/SILENTKEY"))
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            rpc.check_endpoints(timeout_s=0.5)
        assert time.monotonic() - started < 1.5
        assert f"127.0.0.1:{silent.port} did not tell its chain id" in caplog.text
        assert "SILENTKEY" not in caplog.text
        proxy.reset_counts()
        rpc.call("eth_blockNumber", [])  # the checked endpoint is not asked again
        assert [c.method for c in proxy.calls] == ["eth_blockNumber"]
    finally:
        silent.stop()


def test_a_split_keeps_the_range_end_with_its_logs(anvil: Anvil, proxy: RpcProxy) -> None:
    blocks = emit_logs(anvil, 4)
    address = _creations(anvil, blocks)
    proxy.cap_batches(2, "erigon")
    chain = ChainReader(client(proxy.url()))
    chain.headers([0, 1, 2])  # the endpoint is verified and its cap learned (refused 4 calls)
    proxy.reset_counts()

    headers, logs = chain.logs_with_headers(
        BlockRange(blocks[0], blocks[-1]), address, [], blocks[:3]
    )

    assert sorted(headers) == blocks and len(logs) == 4
    sent = [(c.request, c.method, c.params[0]) for c in proxy.calls]
    assert all(c.answer == "upstream" for c in proxy.calls)
    # four headers and the logs in parts of 2 cut from the end: [h0], [h1, h2], [end, logs]
    assert [r for r, _, _ in sent] == [0, 1, 1, 2, 2]
    assert sent[-2][1:] == ("eth_getBlockByNumber", hex(blocks[-1]))
    assert sent[-1][1] == "eth_getLogs"


def test_the_start_check_opens_the_connection_the_run_then_reads_on(anvil: Anvil) -> None:
    # The chain id asked at start goes over the client's own connection to the endpoint
    # the run reads first: the run's first read needs no new connection (in Google Cloud,
    # TCP's and TLS's handshakes: two round trips off every run's start).
    from devstack.stack.delayproxy import DelayProxy

    with DelayProxy(anvil.rpc_url.split("://", 1)[1], rtt_s=0.0) as counted:
        rpc = client(f"http://{counted.address}")
        rpc.check_endpoints()
        rpc.call("eth_blockNumber", [])
        rpc.call("eth_blockNumber", [])
        assert counted.traffic.connections == 1
