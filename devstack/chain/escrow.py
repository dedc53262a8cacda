"""Deploy the test Escrow on anvil, drive it, and keep what the relayer must publish.

The expected messages (CONTRACT.md §3) are built from the arguments the driver sends (planned in
`escrow_scenario.py`), never by decoding logs, so they check the relayer's decoder against
independent truth. Receipts supply only what the chain decides: the block, hashes, indexes and
the time (which the contract also stamps into a dispute as `raisedAt`).

Errors: ScenarioError (the chain did not do what was planned).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from eth_abi.abi import encode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_all_function_abis
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.types import BlockData, LogReceipt, RPCEndpoint, TxReceipt

from devstack.chain.escrow_scenario import Args, Call, Scenario, plan_quotas

ARTIFACT_PATH = Path(__file__).resolve().parents[2] / "contracts" / "build" / "Escrow.json"

_PRIORITY_FEE = 10**9


class ScenarioError(RuntimeError):
    """The chain did not do what the driver planned, so the ground truth would be wrong."""


class ExpectedEvent(TypedDict):
    """One message the relayer must publish, in the shape of CONTRACT.md §3."""

    event_id: str
    chain_id: int
    contract: str
    event: str
    args: Args
    block_number: int
    block_hash: str
    block_timestamp: int
    transaction_hash: str
    transaction_index: int
    log_index: int
    removed: bool


@functools.cache
def load_artifact() -> dict[str, Any]:
    """The committed Hardhat-style artifact: tests and the demo need no Node at run time."""
    artifact: dict[str, Any] = json.loads(ARTIFACT_PATH.read_text(encoding="utf-8"))
    return artifact


def deploy_escrow(w3: Web3) -> ChecksumAddress:
    """Deploy from anvil's first unlocked account (needs automine, anvil's default)."""
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor().transact({"from": w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise ScenarioError(f"Escrow deployment failed: {tx_hash.to_0x_hex()}")
    return to_checksum_address(receipt["contractAddress"])


def make_activity(
    w3: Web3, escrow_address: str, n_events: int, *, blocks: int = 30, seed: int = 1
) -> list[ExpectedEvent]:
    """Mine `blocks` new blocks holding exactly `n_events` escrow events, in chain order.

    The same seed on a fresh contract makes the same calls. More blocks follow when the events
    do not fit the block gas limit (from ~140 creations in one block). Automine is off meanwhile
    (several transactions per block) and restored afterwards.
    """
    rng = random.Random(seed)
    quotas = plan_quotas(rng, n_events, blocks)
    miner = _Miner(w3, to_checksum_address(escrow_address))
    scenario = Scenario(rng, list(w3.eth.accounts), miner.next_escrow_id())
    events: list[ExpectedEvent] = []
    due = 0
    with _manual_mining(w3):
        for quota in quotas:
            due += quota
            events.extend(miner.mine(scenario.plan_block(due - len(events), miner.gas_limit)))
        while len(events) < n_events:
            events.extend(miner.mine(scenario.plan_block(n_events - len(events), miner.gas_limit)))
    return events


def deploy_and_make_activity(
    rpc_url: str, n_events: int = 300, *, blocks: int = 30, seed: int = 1
) -> tuple[ChecksumAddress, list[ExpectedEvent]]:
    """Deploy a fresh Escrow on the node at `rpc_url` and drive it: the demo's one call."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    address = deploy_escrow(w3)
    return address, make_activity(w3, address, n_events, blocks=blocks, seed=seed)


@contextmanager
def _manual_mining(w3: Web3) -> Iterator[None]:
    was_on = _rpc(w3, "anvil_getAutomine", [])
    _rpc(w3, "evm_setAutomine", [False])
    try:
        yield
    finally:
        _rpc(w3, "evm_setAutomine", [bool(was_on)])


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in response:
        raise ScenarioError(f"{method} failed: {response['error']}")
    return response.get("result")


class _Miner:
    """Sends one block's calls, mines it, and turns the receipts into expected messages.

    Transactions go out as raw eth_sendTransaction with every field filled in and calldata
    encoded by eth-abi: web3's own path costs two extra round trips and ABI normalisation per
    transaction, which would make the 20,000-event benchmark several times slower.
    """

    def __init__(self, w3: Web3, address: ChecksumAddress) -> None:
        self._w3 = w3
        self._address = address
        self._chain_id = w3.eth.chain_id
        self.gas_limit = w3.eth.get_block("latest")["gasLimit"]
        self._nonces: dict[ChecksumAddress, int] = {
            a: w3.eth.get_transaction_count(a, "pending") for a in w3.eth.accounts
        }
        self._functions = {
            str(f["name"]): (function_abi_to_4byte_selector(f), get_abi_input_types(f))
            for f in get_all_function_abis(load_artifact()["abi"])
        }

    def next_escrow_id(self) -> int:
        result = _rpc(
            self._w3,
            "eth_call",
            [{"to": self._address, "data": self._calldata("nextEscrowId", [])}, "latest"],
        )
        return int(result, 16)

    def mine(self, calls: list[Call]) -> list[ExpectedEvent]:
        head = self._w3.eth.get_block("latest")
        max_fee = 2 * head.get("baseFeePerGas", 0) + _PRIORITY_FEE
        sent = [(call, self._send(call, max_fee)) for call in calls]
        _rpc(self._w3, "evm_mine", [])
        blocks, receipts = self._mined_after(head["number"])
        events: list[ExpectedEvent] = []
        for call, tx_hash in sent:
            receipt = receipts.get(tx_hash)
            if (
                receipt is None
                or receipt["status"] != 1
                or len(receipt["logs"]) != len(call.events)
            ):
                raise ScenarioError(
                    f"{call.function} {tx_hash.to_0x_hex()} was not mined as planned"
                )
            for (name, args), log in zip(call.events, receipt["logs"], strict=True):
                events.append(self._expected(name, args, log, blocks[log["blockNumber"]]))
        return sorted(events, key=lambda e: (e["block_number"], e["log_index"]))

    def _mined_after(self, number: int) -> tuple[dict[int, BlockData], dict[HexBytes, TxReceipt]]:
        """Every block since `number`: a node with interval mining may have sealed some calls."""
        blocks: dict[int, BlockData] = {}
        receipts: dict[HexBytes, TxReceipt] = {}
        for n in range(number + 1, self._w3.eth.block_number + 1):
            blocks[n] = self._w3.eth.get_block(n)
            receipts.update((r["transactionHash"], r) for r in self._w3.eth.get_block_receipts(n))
        return blocks, receipts

    def _send(self, call: Call, max_fee: int) -> HexBytes:
        nonce = self._nonces[call.sender]
        self._nonces[call.sender] = nonce + 1
        tx = {
            "from": call.sender, "to": self._address, "value": "0x0", "nonce": hex(nonce),
            "data": self._calldata(call.function, call.args), "gas": hex(call.gas),
            "maxFeePerGas": hex(max_fee), "maxPriorityFeePerGas": hex(_PRIORITY_FEE),
            "chainId": hex(self._chain_id),
        }  # fmt: skip
        return HexBytes(_rpc(self._w3, "eth_sendTransaction", [tx]))

    def _calldata(self, function: str, args: list[Any]) -> str:
        selector, types = self._functions[function]
        return "0x" + (selector + encode(types, args)).hex()

    def _expected(self, name: str, args: Args, log: LogReceipt, block: BlockData) -> ExpectedEvent:
        if log["address"] != self._address:
            raise ScenarioError(f"a log from {log['address']} in an escrow transaction")
        block_hash = log["blockHash"].to_0x_hex()
        return {
            "event_id": f"{self._chain_id}:{block_hash}:{log['logIndex']}",
            "chain_id": self._chain_id, "contract": self._address, "event": name,
            "args": _stamped(name, args, block["timestamp"]),
            "block_number": log["blockNumber"], "block_hash": block_hash,
            "block_timestamp": block["timestamp"],
            "transaction_hash": log["transactionHash"].to_0x_hex(),
            "transaction_index": log["transactionIndex"], "log_index": log["logIndex"],
            "removed": False,
        }  # fmt: skip


def _stamped(name: str, args: Args, timestamp: int) -> Args:
    """Add the one value the block decides: the contract stamps disputes with block.timestamp."""
    dispute = args.get("dispute")
    if name != "DisputeRaised" or not isinstance(dispute, dict):
        return args
    return {**args, "dispute": {**dispute, "raisedAt": str(timestamp)}}
