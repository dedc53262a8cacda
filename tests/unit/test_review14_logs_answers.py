"""Review 14 (guard, passes): the chain reader's "plain answer taken as it came" shortcut
(ccca3b1) returns exactly what the old reader returned (each log once, in chain order, of
the answer finally accepted), through the real JSON-RPC client: retries and failover after
a plain answer was checked, a batch the node makes the client cut, ids answered out of
order, repeats, mixed-case hashes, two blocks at one height, odd hex forms, empty answers.

The reference is the reader before the change: `in_chain_order(unique_logs(answer))`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from http_answers import Response

from function.adapters.chain import ChainReader
from function.adapters.jsonrpc.batch_caps import BatchCaps
from function.adapters.jsonrpc.client import Call, JsonRpc
from function.core.model import RawLog, in_chain_order, unique_logs
from function.core.planning import BlockRange
from function.errors import RpcError

ADDRESS = "0x" + "11" * 20
END = {"number": "0x9", "hash": "0x" + "cd" * 32, "timestamp": "0x1"}


def _log(number: str, block: str, index: str, data: str = "0x") -> dict[str, Any]:
    return {
        "address": ADDRESS,
        "topics": [],
        "data": data,
        "blockNumber": number,
        "blockHash": block,
        "transactionHash": "0x" + "ab" * 32,
        "transactionIndex": "0x0",
        "logIndex": index,
    }


def _reference(logs: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    kept = in_chain_order(unique_logs(json.loads(json.dumps(logs))))
    return [_key(e) for e in kept]


def _key(e: RawLog | dict[str, Any]) -> tuple[str, str, str, str]:
    return (e["blockNumber"], e["blockHash"], e["logIndex"], e["data"])


# What a scripted endpoint answers to one request: a call's answer (None: left out).
Answerer = Callable[[dict[str, Any]], dict[str, Any] | None]


def _answer(logs: list[dict[str, Any]], header: Any = END) -> Answerer:
    def answer(call: dict[str, Any]) -> dict[str, Any] | None:
        method = call["method"]
        if method == "eth_chainId":
            return {"jsonrpc": "2.0", "id": call["id"], "result": "0x7a69"}
        if method == "eth_getBlockByNumber":
            if header is None:
                return None
            if header == "error":
                return {"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32000,
                        "message": "header not found"}}  # fmt: skip
            return {"jsonrpc": "2.0", "id": call["id"], "result": header}
        return {"jsonrpc": "2.0", "id": call["id"], "result": logs}

    return answer


class Session:
    """Each endpoint (by URL) answers with its script; `cap`: batches longer than that are
    refused as geth refuses them; `reverse`: the answers come in reverse order."""

    def __init__(self, scripts: dict[str, Answerer], cap: int | None = None,
                 reverse: bool = False) -> None:  # fmt: skip
        self.scripts, self.cap, self.reverse = scripts, cap, reverse
        self.sizes: list[int] = []

    def post(
        self, url: str, data: str, headers: dict[str, str], timeout: float, stream: bool = False
    ) -> Response:
        body = json.loads(data)
        self.sizes.append(len(body))
        if self.cap is not None and len(body) > self.cap:
            refusal = [{"jsonrpc": "2.0", "id": body[0]["id"],
                        "error": {"code": -32600, "message": "batch too large"}}]  # fmt: skip
            return Response(200, json.dumps(refusal).encode())
        answers = [a for a in (self.scripts[url](c) for c in body) if a is not None]
        if self.reverse:
            answers.reverse()
        return Response(200, json.dumps(answers).encode())


def _read(session: Session, urls: list[str], queries: Any = None) -> list[RawLog]:
    rpc = JsonRpc(urls, 31337, session=session, sleep=lambda s: None, caps=BatchCaps())  # type: ignore[arg-type]
    _, logs = ChainReader(rpc).logs_with_headers(BlockRange(1, 9), [ADDRESS], None, [3], queries)
    return logs


PLAIN = [_log("0x5", "0xaa", "0x0"), _log("0x5", "0xaa", "0x1"), _log("0x7", "0xbb", "0x0")]
MESSY = [_log("0x7", "0xbb", "0x0"), _log("0x5", "0xaa", "0x1"), _log("0x5", "0xaa", "0x1"),
         _log("0x5", "0xaa", "0x0", "0x01")]  # fmt: skip  # other data than PLAIN's first


@pytest.mark.parametrize("broken", [None, "error"])  # a header left out, or refused
def test_a_plain_answer_checked_then_given_up_on_is_not_what_comes_back(broken: Any) -> None:
    # The first endpoint's logs pass the check (plain), but its batch fails on the header:
    # the client fails over; the second endpoint's messy answer is the one relayed.
    session = Session({"https://one/": _answer(PLAIN, broken), "https://two/": _answer(MESSY)})
    got = _read(session, ["https://one/", "https://two/"])
    assert [_key(e) for e in got] == _reference(MESSY)
    assert got[0]["data"] == "0x01"  # the second answer's log, not the first's


def test_a_messy_answer_given_up_on_then_a_plain_one() -> None:
    session = Session({"https://one/": _answer(MESSY, None), "https://two/": _answer(PLAIN)})
    got = _read(session, ["https://one/", "https://two/"])
    assert [_key(e) for e in got] == _reference(PLAIN)


@pytest.mark.parametrize("cap", [1, 2, 3])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("logs", [PLAIN, MESSY, []])
def test_a_batch_cut_or_answered_out_of_order(
    cap: int, reverse: bool, logs: list[dict[str, Any]]
) -> None:
    session = Session({"https://one/": _answer(logs)}, cap=cap, reverse=reverse)
    got = _read(session, ["https://one/"])
    assert [_key(e) for e in got] == _reference(logs)
    assert session.sizes[0] > cap  # the batch was refused, then cut


ODD = [
    # mixed-case hashes of one block, an exact copy in the other case is a different log
    [_log("0x5", "0xAA", "0x0"), _log("0x5", "0xaa", "0x1"), _log("0x5", "0xAa", "0x2")],
    # two blocks at one height (a node mid-reorg), indexes interleaved or equal
    [_log("0x5", "0xaa", "0x1"), _log("0x5", "0xbb", "0x0")],
    [_log("0x5", "0xaa", "0x0"), _log("0x5", "0xbb", "0x0")],
    [_log("0x5", "0xaa", "0x0"), _log("0x5", "0xbb", "0x1"), _log("0x5", "0xaa", "0x2")],
    # logIndex and blockNumber in odd hex forms
    [_log("0x05", "0xaa", "0x0a"), _log("0x5", "0xaa", "0XB"), _log("0x6", "0xcc", "0x00")],
    [_log("0x5", "0xaa", "0x10"), _log("0x5", "0xaa", "0x9")],  # "0x10" sorts before "0x9"
    [_log("0x5", "0xaa", "0x1"), _log("0x5", "0xaa", "0x01")],  # one index, two spellings
    [],
]


@pytest.mark.parametrize("logs", ODD)
@pytest.mark.parametrize("queries", [None, [None, None]])
def test_odd_answers_come_back_as_the_old_reader_made_them(
    logs: list[dict[str, Any]], queries: Any
) -> None:
    session = Session({"https://one/": _answer(logs)})
    try:
        got = [_key(e) for e in _read(session, ["https://one/"], queries)]
    except RpcError:  # refused now (after every retry): it was refused before too
        with pytest.raises(ValueError):
            _old_check(logs)
        return
    assert got == _reference(logs)


def _old_check(logs: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, int], Any] = {}
    for entry in logs:
        key = (entry["blockHash"].lower(), int(entry["logIndex"], 16))
        first = seen.setdefault(key, entry)
        if first is not entry and first != entry:
            raise ValueError("two different logs")


class _SameObjects:
    """A client whose answer holds one log object twice (no JSON parser makes that, a
    caching layer could), checked as the real client checks it."""

    host = "node.example"

    def __init__(self, logs: list[dict[str, Any]]) -> None:
        self.logs = logs

    def batch(self, calls: list[Call]) -> list[Any]:
        answers = [END if c.method == "eth_getBlockByNumber" else self.logs for c in calls]
        for call, answer in zip(calls, answers, strict=True):
            if call.check is not None:
                call.check(answer)
        return answers


@pytest.mark.parametrize("shape", ["adjacent", "apart"])
def test_one_log_object_twice_in_an_answer_is_relayed_once(shape: str) -> None:
    a, b = _log("0x5", "0xaa", "0x0"), _log("0x5", "0xaa", "0x1")
    logs = [a, a, b] if shape == "adjacent" else [a, b, a]
    _, got = ChainReader(_SameObjects(logs)).logs_with_headers(  # type: ignore[arg-type]
        BlockRange(1, 9), None, None, []
    )
    assert got == [a, b]
