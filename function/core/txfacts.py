"""RELAYER_INCLUDE=transaction (docs/CONTRACT.md §3), pure: what a message's `transaction`
is, and which JSON-RPC calls read it for a range with the fewest calls.

`from`, `to` and `status` come from the receipt, `value` from the transaction itself, so each
transaction needs two reads. Per block with events there are three ways:

- by hash: eth_getTransactionReceipt + eth_getTransactionByHash per transaction, 2n calls;
- whole block: eth_getBlockByNumber(full) + eth_getBlockReceipts, 2 calls whatever n;
- a node without eth_getBlockReceipts: the full block + a receipt per transaction, 1 + n.

`plan_reads` takes the fewest calls per block, and by hash on a tie (n = 1): two small
answers rather than a whole block's. Each fact keeps the hash of the block it was read from,
so the caller can tell a read from another chain (a reorganisation between the reads).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from function.core.values import checksum


@dataclass(frozen=True, slots=True)
class TxFacts:
    """One transaction as a message shows it, and the block it was read from."""

    tx_hash: str  # 0x lowercase
    block_hash: str  # 0x lowercase
    sender: str  # EIP-55
    to: str | None  # EIP-55; None for a contract creation
    value: int  # wei
    status: int  # 1 success, 0 reverted

    def as_json(self) -> dict[str, Any]:
        """The `transaction` object of §3: the value in decimal (it does not fit a JSON number)."""
        return {"from": self.sender, "to": self.to, "value": str(self.value), "status": self.status}


@dataclass(frozen=True)
class TxReads:
    """The calls that read a range's transactions."""

    by_hash: tuple[str, ...] = ()  # a receipt and the transaction each
    whole_blocks: tuple[int, ...] = ()  # the full block and its receipts
    blocks_with_receipts: tuple[tuple[int, tuple[str, ...]], ...] = ()  # full block + receipts

    @property
    def calls(self) -> int:
        return (
            2 * len(self.by_hash)
            + 2 * len(self.whole_blocks)
            + sum(1 + len(txs) for _, txs in self.blocks_with_receipts)
        )


def plan_reads(by_block: Mapping[int, Iterable[str]], block_receipts: bool) -> TxReads:
    """The fewest calls for the transactions of each block (`by_block`: block number ->
    transaction hashes, repeats allowed); `block_receipts`: the node serves
    eth_getBlockReceipts."""
    by_hash: list[str] = []
    whole: list[int] = []
    with_receipts: list[tuple[int, tuple[str, ...]]] = []
    for number in sorted(by_block):
        txs = tuple(dict.fromkeys(h.lower() for h in by_block[number]))
        if len(txs) == 1:
            by_hash.extend(txs)  # 2 calls whichever way: the smaller answers
        elif block_receipts:
            whole.append(number)
        elif txs:
            with_receipts.append((number, txs))
    return TxReads(tuple(by_hash), tuple(whole), tuple(with_receipts))


def _status(receipt: Mapping[str, Any]) -> int:
    # Receipts before Byzantium have a state root instead; a reverted transaction leaves no
    # logs, so one whose log is relayed succeeded.
    status = receipt.get("status")
    return 1 if status is None else int(status, 16)


def _facts(receipt: Mapping[str, Any], tx: Mapping[str, Any], block_hash: str) -> TxFacts:
    to = receipt.get("to")
    return TxFacts(
        tx_hash=str(receipt["transactionHash"]).lower(),
        block_hash=block_hash,
        sender=checksum(receipt["from"]),
        to=checksum(to) if to else None,
        value=int(tx["value"], 16),
        status=_status(receipt),
    )


def facts_by_hash(
    receipt: Mapping[str, Any] | None, tx: Mapping[str, Any] | None
) -> TxFacts | None:
    """The facts from a receipt and its transaction read by hash; None when either is
    unknown or they were read from different blocks."""
    if not receipt or not tx:
        return None
    block_hash = str(receipt.get("blockHash") or "").lower()
    if not block_hash or str(tx.get("blockHash") or "").lower() != block_hash:
        return None
    return _facts(receipt, tx, block_hash)


def facts_in_block(
    block: Mapping[str, Any] | None,
    receipts: Sequence[Mapping[str, Any] | None] | None,
    wanted: Collection[str],
) -> dict[str, TxFacts]:
    """The facts of the `wanted` transactions of a full block, by hash, from its receipts
    (all of them, or those of `wanted`); a transaction missing from either, or whose receipt
    is of another block, has none."""
    if not block or receipts is None:
        return {}
    block_hash = str(block.get("hash") or "").lower()
    txs = {
        str(t["hash"]).lower(): t for t in block.get("transactions") or [] if isinstance(t, Mapping)
    }
    found: dict[str, TxFacts] = {}
    for r in receipts:
        if not r:
            continue
        h = str(r.get("transactionHash") or "").lower()
        same_block = str(r.get("blockHash") or "").lower() == block_hash
        if h in wanted and h in txs and same_block:
            found[h] = _facts(r, txs[h], block_hash)
    return found
