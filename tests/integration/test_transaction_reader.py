"""The transactions port (RELAYER_INCLUDE=transaction) against anvil behind the recording
proxy: the facts are the chain's (web3 is the ground truth), read with the calls the plan
says, in one batch, within the endpoint's batch cap; a node without eth_getBlockReceipts is
read receipt by receipt, and remembered."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from web3 import Web3

from devstack.chain.escrow import deploy_escrow, make_activity
from devstack.chain.payable import creation_address, install, pay
from devstack.rpcproxy import RpcProxy
from devstack.stack.services import Anvil
from function.adapters.jsonrpc.batch_caps import BatchCaps
from function.adapters.jsonrpc.client import JsonRpc
from function.adapters.transactions import BlockReceipts, TransactionReader
from function.core.txfacts import TxFacts
from function.redact import host_of

LOGGER = "0x" + "ca" * 20


@pytest.fixture
def w3(anvil: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RpcProxy]:
    started = RpcProxy(anvil.rpc_url)
    yield started
    started.stop()


def _activity(w3: Web3) -> dict[int, set[str]]:
    """Blocks with several escrow transactions, a payment alone in its block, and a
    creation that logs: every transaction with logs, by block."""
    escrow = deploy_escrow(w3)
    make_activity(w3, escrow, 40, blocks=3, seed=3)
    accounts = w3.eth.accounts

    pay(w3, accounts[1], install(w3, LOGGER), 10**21 + 3)
    nonce = w3.eth.get_transaction_count(accounts[2])
    pay(w3, accounts[2], None, 7)
    assert w3.eth.get_code(creation_address(accounts[2], nonce)) == b""  # init code only
    by_block: dict[int, set[str]] = {}
    for n in range(1, w3.eth.block_number + 1):
        for r in w3.eth.get_block_receipts(n):
            if r["logs"]:
                by_block.setdefault(n, set()).add(r["transactionHash"].to_0x_hex())
    return by_block


def _truth(w3: Web3, tx_hash: str) -> TxFacts:
    tx = w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return TxFacts(
        tx_hash,
        receipt["blockHash"].to_0x_hex(),
        receipt["from"],
        receipt["to"],
        tx["value"],
        receipt["status"],
    )


def _reader(url: str, caps: BatchCaps | None = None, **kw: Any) -> TransactionReader:
    return TransactionReader(JsonRpc([url], 31337, caps=caps or BatchCaps()), **kw)


def test_the_facts_are_the_chains_read_with_the_fewest_calls_in_one_batch(
    w3: Web3, proxy: RpcProxy
) -> None:
    by_block = _activity(w3)
    single = [n for n, txs in by_block.items() if len(txs) == 1]
    several = [n for n, txs in by_block.items() if len(txs) > 1]
    assert len(single) >= 2 and len(several) >= 2  # the payment and the creation alone
    reader = _reader(proxy.url(), support=BlockReceipts())

    facts = reader.read(by_block)

    every = sorted(h for txs in by_block.values() for h in txs)
    assert sorted(facts) == every
    assert all(facts[h] == _truth(w3, h) for h in every)
    assert facts[next(iter(by_block[single[-2]]))].value == 10**21 + 3
    created = facts[next(iter(by_block[single[-1]]))]
    assert created.to is None and created.as_json()["value"] == "7"
    calls = [c for c in proxy.calls if c.method != "eth_chainId"]
    assert Counter(c.method for c in calls) == {
        "eth_getTransactionReceipt": len(single),
        "eth_getTransactionByHash": len(single),
        "eth_getBlockByNumber": len(several),
        "eth_getBlockReceipts": len(several),
    }
    assert all(c.params[1] is True for c in calls if c.method == "eth_getBlockByNumber")
    assert len({c.request for c in calls}) == 1  # one round trip


def test_a_batch_cap_splits_the_reads_and_nothing_is_lost(w3: Web3, proxy: RpcProxy) -> None:
    by_block = _activity(w3)
    proxy.cap_batches(3, "geth")
    facts = _reader(proxy.url(), support=BlockReceipts()).read(by_block)
    every = sorted(h for txs in by_block.values() for h in txs)
    assert sorted(facts) == every and all(facts[h] == _truth(w3, h) for h in every)
    upstream = [c for c in proxy.calls if c.answer == "upstream"]
    assert max(Counter(c.request for c in upstream).values()) <= 3


def _without_block_receipts(upstream: str, seen: list[str]) -> Any:
    """A node that does not know eth_getBlockReceipts (-32601), as older geth and some
    providers answer; everything else goes to anvil."""

    def answer(body: bytes) -> tuple[int, bytes] | None:
        calls = json.loads(body)
        calls = calls if isinstance(calls, list) else [calls]
        seen.extend(c["method"] for c in calls)
        forward = [c for c in calls if c["method"] != "eth_getBlockReceipts"]
        answers = requests.post(upstream, json=forward, timeout=30).json() if forward else []
        by_id = {a["id"]: a for a in answers}
        refusal = {"code": -32601, "message": "the method eth_getBlockReceipts does not exist"}
        out = [
            by_id.get(c["id"]) or {"jsonrpc": "2.0", "id": c["id"], "error": refusal} for c in calls
        ]
        return 200, json.dumps(out).encode()

    return answer


def test_a_node_without_block_receipts_is_read_receipt_by_receipt_and_remembered(
    w3: Web3, anvil: Anvil
) -> None:
    by_block = _activity(w3)
    several = [n for n, txs in by_block.items() if len(txs) > 1]
    seen: list[str] = []
    old = RpcProxy(anvil.rpc_url, faults=_without_block_receipts(anvil.rpc_url, seen))
    try:
        support = BlockReceipts()
        reader = _reader(old.url(), support=support)
        first = reader.read(by_block)
        tried = Counter(seen)
        seen.clear()
        again = reader.read(by_block)
    finally:
        old.stop()
    every = sorted(h for txs in by_block.values() for h in txs)
    assert sorted(first) == sorted(again) == every
    assert all(first[h] == again[h] == _truth(w3, h) for h in every)
    assert tried["eth_getBlockReceipts"] == len(several)  # asked once, refused
    assert not support.supported(host_of(old.url()))
    # The second read knows: a full block and a receipt per transaction, no more asking.
    n_several = sum(len(by_block[n]) for n in several)
    assert "eth_getBlockReceipts" not in seen
    assert Counter(seen)["eth_getBlockByNumber"] == len(several)
    assert Counter(seen)["eth_getTransactionReceipt"] == n_several + len(by_block) - len(several)
