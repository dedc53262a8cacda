"""The Transactions port over JSON-RPC (RELAYER_INCLUDE=transaction): the facts of a range's
transactions, read in one batch with the calls `txfacts.plan_reads` chooses.

The batch goes through the client like any other, so it is cut to the endpoint's learned cap
(`batch_caps`) and fails over as a whole. eth_getBlockReceipts is recent (geth 1.13, Erigon
2.x) and some providers do not serve it: a node that refuses it has those blocks read again
with a receipt per transaction, and its host is remembered for the process, so later reads
do not ask again. An answer that cannot be right (a receipt of another transaction, a block
of another height) is the endpoint's failure (retried, failed over); an unknown transaction
(null) is an answer: the caller then reads the view again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from function.adapters.jsonrpc.client import Call, JsonRpc
from function.core.txfacts import TxFacts, TxReads, facts_by_hash, facts_in_block, plan_reads
from function.errors import RpcCallError, RpcError

log = logging.getLogger(__name__)


class BlockReceipts:
    """The endpoint hosts that refused eth_getBlockReceipts, kept for the process (a
    long-lived `relay` function asks once)."""

    def __init__(self) -> None:
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    def supported(self, host: str) -> bool:
        with self._lock:
            return host not in self._refused

    def refused(self, host: str) -> None:
        with self._lock:
            self._refused.add(host)


PROCESS_BLOCK_RECEIPTS = BlockReceipts()


def _same(key: str, wanted: str) -> Any:
    def check(answer: Any) -> None:
        if answer is not None and str(answer.get(key) or "").lower() != wanted:
            raise ValueError(f"an answer about {answer.get(key)} instead of {wanted}")

    return check


def _full_block_check(number: int) -> Any:
    def check(block: Any) -> None:
        if block is None:
            return
        if int(block["number"], 16) != number:
            raise ValueError(f"block {int(block['number'], 16)} instead of {number}")
        if not all(isinstance(t, dict) for t in block.get("transactions") or []):
            raise ValueError("a block without its full transactions")

    return check


def _list_or_none(answer: Any) -> None:
    if answer is not None and not isinstance(answer, list):
        raise ValueError(f"a {type(answer).__name__} instead of a list of receipts")


def _receipt(tx: str) -> Call:
    return Call("eth_getTransactionReceipt", [tx], _same("transactionHash", tx))


def _transaction(tx: str) -> Call:
    return Call("eth_getTransactionByHash", [tx], _same("hash", tx))


def _full_block(number: int) -> Call:
    return Call("eth_getBlockByNumber", [hex(number), True], _full_block_check(number))


def _block_receipts(number: int) -> Call:
    return Call("eth_getBlockReceipts", [hex(number)], _list_or_none)


def _calls(plan: TxReads) -> list[Call]:
    calls: list[Call] = []
    for tx in plan.by_hash:
        calls += [_receipt(tx), _transaction(tx)]
    for number in plan.whole_blocks:
        calls += [_full_block(number), _block_receipts(number)]
    for number, txs in plan.blocks_with_receipts:
        calls += [_full_block(number), *(_receipt(tx) for tx in txs)]
    return calls


def _answer(results: Iterator[Any]) -> Any:
    result = next(results)
    if isinstance(result, RpcError):
        raise result
    return result


class TransactionReader:
    """Reads transactions through a `JsonRpc` (the chain reader's: same endpoints, caps)."""

    def __init__(self, rpc: JsonRpc, support: BlockReceipts = PROCESS_BLOCK_RECEIPTS) -> None:
        self._rpc = rpc
        self._support = support

    def read(self, by_block: Mapping[int, Collection[str]]) -> dict[str, TxFacts]:
        """The facts of each block's transactions, by hash; an unknown one is left out."""
        wanted = {n: {tx.lower() for tx in txs} for n, txs in by_block.items() if txs}
        plan = plan_reads(wanted, self._support.supported(self._rpc.host))
        found, refused = self._read(plan, wanted)
        if refused:
            self._support.refused(self._rpc.host)
            log.info(
                "RPC endpoint %s does not serve eth_getBlockReceipts: reading receipts one "
                "by one there",
                self._rpc.host,
            )
            again = plan_reads({n: wanted[n] for n in refused}, block_receipts=False)
            found.update(self._read(again, wanted)[0])
        return found

    def _read(
        self, plan: TxReads, wanted: Mapping[int, Collection[str]]
    ) -> tuple[dict[str, TxFacts], list[int]]:
        """The facts the plan's calls give, and the blocks whose eth_getBlockReceipts the
        node refused."""
        calls = _calls(plan)
        results = iter(self._rpc.batch_results(calls) if calls else [])
        found: dict[str, TxFacts] = {}
        refused: list[int] = []
        for tx in plan.by_hash:
            receipt, transaction = _answer(results), _answer(results)
            facts = facts_by_hash(receipt, transaction)
            if facts is not None:
                found[tx] = facts
        for number in plan.whole_blocks:
            block, receipts = _answer(results), next(results)
            if isinstance(receipts, RpcCallError):
                refused.append(number)
                continue
            if isinstance(receipts, RpcError):
                raise receipts
            found.update(facts_in_block(block, receipts, wanted[number]))
        for number, txs in plan.blocks_with_receipts:
            block = _answer(results)
            found.update(facts_in_block(block, [_answer(results) for _ in txs], wanted[number]))
        return found, refused
