"""Several eth_getLogs queries in one read (RELAYER_ARG_FILTERS) against anvil behind the
recording proxy: their logs merged once each in chain order, each query kept with a copy of
the range end's header when the node caps batches, and copies that disagree refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3 import Web3

from devstack.chain.escrow import deploy_escrow, make_activity
from devstack.rpcproxy import RpcProxy
from devstack.stack.services import Anvil
from function.adapters.chain import ChainReader
from function.adapters.jsonrpc.batch_caps import BatchCaps
from function.adapters.jsonrpc.client import Call, JsonRpc
from function.core.catalogue import TopicQuery
from function.core.planning import BlockRange
from function.errors import RpcError

CREATED = (
    "0x"
    + keccak(text="EscrowCreated(uint256,address,address,uint256,string,bytes32,address[])").hex()
)
FUNDED = "0x" + keccak(text="EscrowFunded(uint256,address,uint256,uint256)").hex()


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RpcProxy]:
    started = RpcProxy(anvil.rpc_url)
    yield started
    started.stop()


def _world(anvil: Anvil) -> tuple[str, BlockRange, list[Any]]:
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
    escrow = deploy_escrow(w3)
    truth = make_activity(w3, escrow, 50, blocks=6, seed=5)
    return escrow, BlockRange(1, int(w3.eth.block_number)), truth


def test_several_queries_are_merged_once_each_in_chain_order(anvil: Anvil, proxy: RpcProxy) -> None:
    escrow, blocks, truth = _world(anvil)
    buyer = next(e["args"]["buyer"] for e in truth if e["event"] == "EscrowCreated")
    by_buyer: TopicQuery = ((CREATED,), None, ("0x" + "00" * 12 + buyer[2:].lower(),))
    queries: Sequence[TopicQuery | None] = [((FUNDED,),), by_buyer, ((CREATED,),)]  # overlap
    chain = ChainReader(JsonRpc([proxy.url()], 31337, caps=BatchCaps()))

    headers, logs = chain.logs_with_headers(blocks, [escrow], None, [2], queries)

    wanted = [e for e in truth if e["event"] in ("EscrowCreated", "EscrowFunded")]
    assert [e["blockHash"] for e in logs] == [e["block_hash"] for e in wanted]
    assert [int(e["logIndex"], 16) for e in logs] == [e["log_index"] for e in wanted]
    assert sorted(headers) == [2, blocks.end]
    sent = [c for c in proxy.calls if c.method != "eth_chainId"]
    assert len({c.request for c in sent}) == 1  # one round trip
    assert [c.method for c in sent] == ["eth_getBlockByNumber"] + [
        "eth_getBlockByNumber",
        "eth_getLogs",
    ] * 3


def test_a_capped_batch_keeps_each_query_with_the_range_end(anvil: Anvil, proxy: RpcProxy) -> None:
    escrow, blocks, truth = _world(anvil)
    proxy.cap_batches(2, "geth")
    chain = ChainReader(JsonRpc([proxy.url()], 31337, caps=BatchCaps()))
    chain.headers([0, 1, 2])  # verified, and the cap learned
    proxy.reset_counts()

    _, logs = chain.logs_with_headers(blocks, [escrow], None, [], [((FUNDED,),), ((CREATED,),)])

    assert len(logs) == sum(e["event"] in ("EscrowCreated", "EscrowFunded") for e in truth)
    by_request: dict[int, list[tuple[str, Any]]] = {}
    for c in proxy.calls:
        by_request.setdefault(c.request, []).append((c.method, c.params[0]))
    assert list(by_request.values()) == [
        [("eth_getBlockByNumber", hex(blocks.end)), ("eth_getLogs", q)]
        for q in [c.params[0] for c in proxy.calls if c.method == "eth_getLogs"]
    ]
    assert Counter(len(v) for v in by_request.values()) == {2: 2}


class _Answers(JsonRpc):
    """A client that answers from a list, for a node whose answers came from two forks."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(["http://fork.example/"], 31337)
        self.answers = answers

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        assert len(calls) == len(self.answers)
        return self.answers


def _block(number: int, block_hash: str) -> dict[str, str]:
    return {"number": hex(number), "hash": block_hash, "timestamp": "0x1"}


def test_range_end_copies_from_two_forks_are_refused() -> None:
    answers = [_block(9, "0x" + "aa" * 32), [], _block(9, "0x" + "bb" * 32), []]
    chain = ChainReader(_Answers(answers))
    with pytest.raises(RpcError, match="from different chains"):
        chain.logs_with_headers(BlockRange(5, 9), ["0x" + "11" * 20], None, [], [None, None])
    same = [_block(9, "0x" + "aa" * 32), [], _block(9, "0x" + "aa" * 32), []]
    headers, logs = ChainReader(_Answers(same)).logs_with_headers(
        BlockRange(5, 9), ["0x" + "11" * 20], None, [], [None, None]
    )
    assert headers[9].hash == "0x" + "aa" * 32 and logs == []
