"""Plan the calls that drive the test Escrow, and the event arguments each call must produce.

Pure (no I/O): a seed always yields the same calls, and the expected `args` (CONTRACT.md §3
form) come from the values chosen here, never from decoding logs. The driver in `escrow.py`
sends the calls and adds what only the chain decides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

JsonValue: TypeAlias = str | bool | list["JsonValue"] | dict[str, "JsonValue"]
Args: TypeAlias = dict[str, JsonValue]

# Per-transaction gas limits at 1.3-1.7x the most the calls used on anvil: fixed limits save
# an eth_estimateGas round trip per transaction and keep each block's total predictable.
GAS_SINGLE = 300_000
_GAS_BATCH_BASE = 100_000
_GAS_PER_ITEM = {"createMany": 200_000, "fundMany": 60_000}
_BATCH_CHUNK = 50

_KINDS = ("create", "fund", "release", "refund", "dispute", "tag")
_KIND_WEIGHTS = (3, 3, 1, 1, 1, 2)
_TEXTS = (
    "", "café ✓", "invoice #4471", "日本語のメモ", "🚀 shipment 12/40", "x" * 70,
    'quote " backslash \\ newline \n tab \t', "nul\x00inside",
)  # fmt: skip
_BLOB_SIZES = (0, 1, 20, 31, 32, 33, 64, 100)
_DISPUTE_KINDS = (0, 1, 2, 7, 255)


@dataclass
class Call:
    """One transaction and the events it must emit, in emission order."""

    sender: ChecksumAddress
    function: str
    args: list[Any]
    gas: int = GAS_SINGLE
    events: list[tuple[str, Args]] = field(default_factory=list)


@dataclass
class _Deal:
    buyer: ChecksumAddress
    seller: ChecksumAddress
    amount: int
    arbiters: list[ChecksumAddress]
    funded: int = 0
    disputed: bool = False

    @property
    def fundable(self) -> bool:
        return not self.disputed and self.funded < self.amount


def plan_quotas(rng: random.Random, n_events: int, blocks: int) -> list[int]:
    """Spread the events unevenly over the blocks, about one block in ten empty, as on a chain."""
    if n_events < 0 or blocks < 1:
        raise ValueError(f"need n_events >= 0 and blocks >= 1, got {n_events}, {blocks}")
    weights = [0.0 if rng.random() < 0.1 else rng.uniform(0.5, 1.5) for _ in range(blocks)]
    weights[-1] = weights[-1] or 1.0
    shares = [n_events * w / sum(weights) for w in weights]
    quotas = [int(s) for s in shares]
    by_remainder = sorted(range(blocks), key=lambda i: shares[i] - quotas[i])
    for i in by_remainder[blocks - (n_events - sum(quotas)) :]:
        quotas[i] += 1
    return quotas


class Scenario:
    """Chooses each block's calls from the escrows' state and records what each emits.

    An escrow changes at most once per block and only after the block that created it, so the
    order anvil gives the transactions inside a block cannot change what they emit.
    """

    def __init__(self, rng: random.Random, accounts: list[ChecksumAddress], next_id: int) -> None:
        self._rng = rng
        self._accounts = accounts
        self._first_id = next_id
        self._next_id = next_id
        self._deals: dict[int, _Deal] = {}  # created, not yet released or refunded

    def plan_block(self, quota: int, gas_budget: int) -> list[Call]:
        """Up to `quota` events whose gas limits fit the block: a few single calls, then batches.

        Fewer than `quota` only when the batches would pass `gas_budget` (anvil's default block
        gas limit of 30M holds about 140 escrow creations).
        """
        known = self._next_id
        ready = [i for i in self._deals if i < known]
        busy: set[int] = set()
        singles = min(quota, self._rng.randint(2, 8))
        calls = [self._single(ready, busy, known) for _ in range(singles)]
        gas_left = gas_budget - sum(c.gas for c in calls)
        fundable = [i for i in ready if i not in busy and self._deals[i].fundable]
        n_funds = _fitting("fundMany", min(len(fundable), (quota - singles) // 2), gas_left)
        gas_left -= _batch_gas("fundMany", n_funds)
        n_creates = _fitting("createMany", quota - singles - n_funds, gas_left)
        funder, buyer = self._rng.choice(self._accounts), self._rng.choice(self._accounts)
        funds = [self._fund(i, funder) for i in self._rng.sample(fundable, n_funds)]
        creates = [self._create(buyer) for _ in range(n_creates)]
        calls += _batch("fundMany", funder, funds, "EscrowFunded")
        return calls + _batch("createMany", buyer, creates, "EscrowCreated")

    def _single(self, ready: list[int], busy: set[int], known: int) -> Call:
        kind = self._rng.choices(_KINDS, _KIND_WEIGHTS)[0]
        if kind == "tag" and known > self._first_id:
            return self._tag(self._rng.randrange(self._first_id, known))
        if kind not in ("create", "tag"):
            for escrow_id in self._rng.sample(ready, min(len(ready), 20)):
                call = None if escrow_id in busy else self._change(kind, escrow_id)
                if call is not None:
                    busy.add(escrow_id)
                    return call
        buyer = self._rng.choice(self._accounts)
        args, event = self._create(buyer)
        return Call(buyer, "create", list(args), events=[("EscrowCreated", event)])

    def _change(self, kind: str, escrow_id: int) -> Call | None:
        deal = self._deals[escrow_id]
        if kind == "fund" and deal.fundable:
            funder = deal.buyer if self._rng.random() < 0.7 else self._rng.choice(self._accounts)
            args, event = self._fund(escrow_id, funder)
            return Call(funder, "fund", list(args), events=[("EscrowFunded", event)])
        if kind in ("release", "refund"):
            return self._settle(escrow_id, deal, release=kind == "release")
        if kind == "dispute" and not deal.disputed:
            return self._dispute(escrow_id, deal)
        return None

    def _settle(self, escrow_id: int, deal: _Deal, *, release: bool) -> Call | None:
        """Release pays the seller, refund the buyer; either needs an unlocked decider."""
        deciders = [deal.buyer if release else deal.seller, *deal.arbiters]
        allowed = [a for a in deciders if a in self._accounts]
        if not allowed:
            return None
        del self._deals[escrow_id]
        sender = self._rng.choice(allowed)
        to = deal.seller if release else deal.buyer
        paid: Args = {"escrowId": str(escrow_id), "to": to, "amount": str(deal.funded)}
        if release:
            return Call(sender, "release", [escrow_id], events=[("EscrowReleased", paid)])
        reason = self._text()
        refunded: Args = {**paid, "reason": reason}
        return Call(sender, "refund", [escrow_id, reason], events=[("EscrowRefunded", refunded)])

    def _dispute(self, escrow_id: int, deal: _Deal) -> Call:
        """`raisedAt` is missing here: the contract stamps it with the block's time."""
        deal.disputed = True
        sender = self._rng.choice([a for a in (deal.buyer, deal.seller) if a in self._accounts])
        kind, reason, evidence = self._rng.choice(_DISPUTE_KINDS), self._text(), self._blob()
        dispute: Args = {"kind": str(kind), "reason": reason, "evidence": _hex(evidence)}
        event: Args = {"escrowId": str(escrow_id), "by": sender, "dispute": dispute}
        args = [escrow_id, kind, reason, evidence]
        return Call(sender, "raiseDispute", args, events=[("DisputeRaised", event)])

    def _tag(self, escrow_id: int) -> Call:
        """An indexed string reaches the log only as its keccak256, so that is what is expected."""
        sender, tag, data = self._rng.choice(self._accounts), self._text(), self._blob()
        urgent = self._rng.random() < 0.3
        event: Args = {
            "escrowId": str(escrow_id), "tag": _hex(keccak(text=tag)),
            "urgent": urgent, "data": _hex(data),
        }  # fmt: skip
        return Call(
            sender, "tagNote", [escrow_id, tag, urgent, data], events=[("NoteTagged", event)]
        )

    def _create(self, buyer: ChecksumAddress) -> tuple[tuple[Any, ...], Args]:
        others = [a for a in self._accounts if a != buyer]
        seller = self._rng.choice(others) if self._rng.random() < 0.8 else self._stranger()
        amount, memo = self._amount(), self._text()
        terms = bytes(32) if self._rng.random() < 0.1 else self._rng.randbytes(32)
        arbiters = [
            self._rng.choice(others) if self._rng.random() < 0.5 else self._stranger()
            for _ in range(self._rng.randint(0, 3))
        ]
        escrow_id, self._next_id = self._next_id, self._next_id + 1
        self._deals[escrow_id] = _Deal(buyer, seller, amount, arbiters)
        event: Args = {
            "escrowId": str(escrow_id), "buyer": buyer, "seller": seller, "amount": str(amount),
            "memo": memo, "termsHash": _hex(terms), "arbiters": [str(a) for a in arbiters],
        }  # fmt: skip
        return (seller, amount, memo, terms, arbiters), event

    def _fund(self, escrow_id: int, funder: ChecksumAddress) -> tuple[tuple[Any, ...], Args]:
        deal = self._deals[escrow_id]
        remaining = deal.amount - deal.funded
        amount = remaining if self._rng.random() < 0.4 else self._rng.randint(1, remaining)
        deal.funded += amount
        event: Args = {
            "escrowId": str(escrow_id), "funder": funder,
            "amount": str(amount), "totalFunded": str(deal.funded),
        }  # fmt: skip
        return (escrow_id, amount), event

    def _amount(self) -> int:
        """Mostly beyond 2**64, sometimes the uint256 maximum: no JSON number could carry them."""
        if self._rng.random() < 0.1:
            return 2**256 - 1
        return self._rng.randint(1, 2 ** self._rng.choice((20, 64, 65, 100, 256)) - 1)

    def _text(self) -> str:
        return self._rng.choice(_TEXTS)

    def _blob(self) -> bytes:
        return self._rng.randbytes(self._rng.choice(_BLOB_SIZES))

    def _stranger(self) -> ChecksumAddress:
        return to_checksum_address(self._rng.randbytes(20))


def _batch(
    function: str, sender: ChecksumAddress, items: list[tuple[tuple[Any, ...], Args]], event: str
) -> list[Call]:
    calls = []
    for start in range(0, len(items), _BATCH_CHUNK):
        chunk = items[start : start + _BATCH_CHUNK]
        rows = [args for args, _ in chunk]
        args = (
            [rows]
            if function == "createMany"
            else [list(column) for column in zip(*rows, strict=True)]
        )
        gas = _batch_gas(function, len(chunk))
        calls.append(Call(sender, function, args, gas, [(event, e) for _, e in chunk]))
    return calls


def _batch_gas(function: str, items: int) -> int:
    chunks = -(-items // _BATCH_CHUNK)
    return chunks * _GAS_BATCH_BASE + items * _GAS_PER_ITEM[function]


def _fitting(function: str, items: int, gas: int) -> int:
    """The most of `items` whose batches fit in `gas`."""
    while items > 0 and _batch_gas(function, items) > gas:
        items -= 1
    return items


def _hex(value: bytes) -> str:
    return "0x" + value.hex()
