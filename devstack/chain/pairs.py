"""Deploy the test `PairFactory` on anvil, make it create pairs and the pairs swap, and keep what a
relayer of the factory's children (RELAYER_FACTORY) must publish.

As for the escrow, the expected messages are built from what the driver sends (amounts, notes,
senders), never by decoding logs; receipts supply only what the chain decides (the block,
hashes, indexes, time, and the address each creation gave its pair).

Errors: ScenarioError (the chain did not do what was asked).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxReceipt

from devstack.chain.escrow import ExpectedEvent, ScenarioError

BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
ABI_FILES = ("Pair.json", "PairFactory.json")  # ABI_URI: the child's ABI and the factory's
GAS = 25_000_000  # a createMany of 100 pairs fits; anvil's block gas limit is 30M


@functools.cache
def artifact(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((BUILD / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def abi_uri() -> str:
    return ",".join(str(BUILD / f) for f in ABI_FILES)


class Pairs:
    """A deployed factory and the pairs it made, with the messages their swaps must become."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.sender = w3.eth.accounts[0]
        built = artifact("PairFactory")
        contract = w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
        receipt = self._mined(contract.constructor().transact({"from": self.sender}))
        if receipt["contractAddress"] is None:
            raise ScenarioError("PairFactory deployment failed")
        self.address = to_checksum_address(receipt["contractAddress"])
        self.factory = w3.eth.contract(address=self.address, abi=built["abi"])
        self.pairs: list[ChecksumAddress] = []  # in creation order
        self.strangers: list[ChecksumAddress] = []  # pairs the factory did not create

    @property
    def setting(self) -> str:
        """RELAYER_FACTORY for this factory."""
        return f"{self.address}:PairCreated:pair"

    def create_and_swap(self, amount: int) -> list[ExpectedEvent]:
        """One pair whose constructor logs before the creation event and which swaps after
        it, in one transaction."""
        token = to_checksum_address("0x" + f"{amount:040x}")
        tx = self.factory.functions.createAndSwap(token, self.sender, amount).transact(
            {"from": self.sender, "gas": GAS}
        )
        receipt = self._mined(tx)
        [pair] = self._created(receipt)
        return self._swaps(
            receipt,
            pair,
            [(self.address, amount, "created"), (self.address, amount + 1, "after creation")],
        )

    def create_many(self, n: int, amount: int) -> list[ExpectedEvent]:
        """`n` pairs in one transaction (one block), each logging from its constructor."""
        tx = self.factory.functions.createMany(n, amount).transact(
            {"from": self.sender, "gas": GAS}
        )
        receipt = self._mined(tx)
        expected: list[ExpectedEvent] = []
        for i, pair in enumerate(self._created(receipt)):
            expected += self._swaps(receipt, pair, [(self.address, amount + i, "created")])
        return expected

    def swap(
        self, pair: str, amount: int, note: str, sender: str | None = None
    ) -> list[ExpectedEvent]:
        """A swap on a pair, sent by an account; [] for a stranger's (never relayed)."""
        sender = sender or self.sender
        contract = self.w3.eth.contract(
            address=to_checksum_address(pair), abi=artifact("Pair")["abi"]
        )
        receipt = self._mined(contract.functions.swap(amount, note).transact({"from": sender}))
        expected = self._swaps(receipt, to_checksum_address(pair), [(sender, amount, note)])
        return [] if pair in self.strangers else expected

    def stranger(self, amount: int) -> ChecksumAddress:
        """A Pair deployed directly, not by the factory: its logs look like a child's."""
        built = artifact("Pair")
        contract = self.w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
        receipt = self._mined(contract.constructor(amount).transact({"from": self.sender}))
        if receipt["contractAddress"] is None:
            raise ScenarioError("Pair deployment failed")
        address = to_checksum_address(receipt["contractAddress"])
        self.strangers.append(address)
        return address

    def _mined(self, tx: Any) -> TxReceipt:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        if receipt["status"] != 1:
            raise ScenarioError(f"transaction {tx.to_0x_hex()} failed")
        return receipt

    def _created(self, receipt: TxReceipt) -> list[ChecksumAddress]:
        """The pairs a transaction created, from its PairCreated logs (the chain's choice)."""
        events = self.factory.events.PairCreated().process_receipt(receipt, errors=DISCARD)
        made = [to_checksum_address(e["args"]["pair"]) for e in events]
        self.pairs += made
        return made

    def _swaps(
        self, receipt: TxReceipt, pair: ChecksumAddress, sent: list[tuple[str, int, str]]
    ) -> list[ExpectedEvent]:
        """The messages of `pair`'s logs in `receipt`, in order, one per swap sent."""
        logs = [log for log in receipt["logs"] if log["address"] == pair]
        if len(logs) != len(sent):
            raise ScenarioError(f"{len(logs)} logs of {pair}, {len(sent)} swaps sent")
        block = self.w3.eth.get_block(receipt["blockNumber"])
        out: list[ExpectedEvent] = []
        for log, (sender, amount, note) in zip(logs, sent, strict=True):
            block_hash = log["blockHash"].to_0x_hex()
            out.append(
                {
                    "event_id": f"31337:{block_hash}:{log['logIndex']}",
                    "chain_id": 31337,
                    "contract": pair,
                    "event": "Swap",
                    "args": {
                        "sender": to_checksum_address(sender),
                        "amount": str(amount),
                        "note": note,
                    },
                    "block_number": log["blockNumber"],
                    "block_hash": block_hash,
                    "block_timestamp": block["timestamp"],
                    "transaction_hash": log["transactionHash"].to_0x_hex(),
                    "transaction_index": log["transactionIndex"],
                    "log_index": log["logIndex"],
                    "removed": False,
                }
            )
        return out
