"""The escrow driver's ground truth agrees with the raw logs of the chain it drove.

This checks devstack/chain/escrow.py, not the relayer: the relayer's tests trust its expected
events, so they are compared here with plain `eth_getLogs` output, using hand-written event
signatures and hand-built words instead of any ABI decoder.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils.abi import abi_to_signature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.types import RPCEndpoint

from devstack.chain.escrow import ExpectedEvent, deploy_escrow, load_artifact, make_activity

ANVIL = Path(__file__).resolve().parents[2] / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

SIGNATURES = {
    "EscrowCreated": "EscrowCreated(uint256,address,address,uint256,string,bytes32,address[])",
    "EscrowFunded": "EscrowFunded(uint256,address,uint256,uint256)",
    "EscrowReleased": "EscrowReleased(uint256,address,uint256)",
    "EscrowRefunded": "EscrowRefunded(uint256,address,uint256,string)",
    "DisputeRaised": "DisputeRaised(uint256,address,(uint8,string,bytes,uint64))",
    "NoteTagged": "NoteTagged(uint256,string,bool,bytes)",
}
INDEXED = {
    "EscrowCreated": ("escrowId", "buyer", "seller"),
    "EscrowFunded": ("escrowId", "funder"),
    "EscrowReleased": ("escrowId", "to"),
    "EscrowRefunded": ("escrowId", "to"),
    "DisputeRaised": ("escrowId", "by"),
    "NoteTagged": ("escrowId", "tag"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def chain() -> Iterator[Web3]:
    """This module's own anvil, so the check does not depend on the shared fixtures."""
    port = _free_port()
    argv = [str(ANVIL), "--port", str(port), "--hardfork", "cancun", "--prune-history", "256"]
    proc = subprocess.Popen([*argv, "--silent"], stdout=subprocess.DEVNULL)
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 30}))
    try:
        deadline = time.monotonic() + 10
        while not w3.is_connected():
            assert proc.poll() is None and time.monotonic() < deadline, "anvil did not start"
            time.sleep(0.02)
        yield w3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def driven(chain: Web3) -> tuple[str, list[ExpectedEvent], list[dict[str, Any]]]:
    """Fifty events over eight blocks, with the raw logs of the whole chain beside them."""
    address = deploy_escrow(chain)
    expected = make_activity(chain, address, 50, blocks=8, seed=7)
    return (
        address,
        expected,
        _rpc(chain, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}]),
    )


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    response = w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in response, response
    return response["result"]


def _word(value: int) -> str:
    return value.to_bytes(32, "big").hex()


def _topic(name: str, value: Any) -> str:
    if name == "escrowId":
        return "0x" + _word(int(value))
    if name == "tag":  # an indexed string is its keccak256, already 32 bytes
        return str(value)
    return "0x" + "00" * 12 + str(value)[2:].lower()


def test_hand_written_signatures_match_the_artifact() -> None:
    events = [e for e in load_artifact()["abi"] if e["type"] == "event"]
    assert {e["name"]: abi_to_signature(e) for e in events} == SIGNATURES


def test_truth_lines_up_with_raw_logs(driven: tuple[str, list[ExpectedEvent], list[Any]]) -> None:
    address, expected, logs = driven
    assert len(expected) == len(logs) == 50
    assert [(e["block_hash"], e["log_index"], e["transaction_hash"]) for e in expected] == [
        (log["blockHash"], int(log["logIndex"], 16), log["transactionHash"]) for log in logs
    ]
    assert len({e["block_number"] for e in expected}) > 5
    for e, log in zip(expected, logs, strict=True):
        assert to_checksum_address(log["address"]) == e["contract"] == address
        assert e["event_id"] == f"31337:{log['blockHash']}:{int(log['logIndex'], 16)}"
        assert e["chain_id"] == 31337 and e["removed"] is False and not log["removed"]
        assert e["block_number"] == int(log["blockNumber"], 16)
        assert e["block_timestamp"] == int(log["blockTimestamp"], 16)
        assert e["transaction_index"] == int(log["transactionIndex"], 16)


def test_topics_match_signatures_and_indexed_args(driven: tuple[str, list[Any], list[Any]]) -> None:
    _, expected, logs = driven
    for e, log in zip(expected, logs, strict=True):
        topic0 = "0x" + keccak(text=SIGNATURES[e["event"]]).hex()
        indexed = [_topic(n, e["args"][n]) for n in INDEXED[e["event"]]]
        assert log["topics"] == [topic0, *indexed], e


def test_bookkeeping_matches_the_data_words(driven: tuple[str, list[Any], list[Any]]) -> None:
    """Amounts, running totals and dispute times are tracked by the driver, so check them."""
    _, expected, logs = driven
    for e, log in zip(expected, logs, strict=True):
        args, data = e["args"], log["data"][2:]
        if e["event"] == "EscrowFunded":
            assert data == _word(int(args["amount"])) + _word(int(args["totalFunded"]))
        elif e["event"] in ("EscrowReleased", "EscrowRefunded"):
            assert data[:64] == _word(int(args["amount"]))
        elif e["event"] == "DisputeRaised":  # tuple offset, kind, 2 offsets, raisedAt
            assert data[64 * 4 : 64 * 5] == _word(int(args["dispute"]["raisedAt"]))
            assert args["dispute"]["raisedAt"] == str(e["block_timestamp"])


def test_scenario_varies_what_a_decoder_sees(driven: tuple[str, list[Any], list[Any]]) -> None:
    _, expected, _ = driven
    assert {e["event"] for e in expected} == set(SIGNATURES)
    created = [e["args"] for e in expected if e["event"] == "EscrowCreated"]
    assert any(int(a["amount"]) >= 2**64 for a in created)
    assert any(not a["memo"].isascii() for a in created)
    assert {len(a["arbiters"]) for a in created} == {0, 1, 2, 3}
    assert len({e["args"]["buyer"] for e in expected if e["event"] == "EscrowCreated"}) > 2
    assert len({e["transaction_hash"] for e in expected}) < len(expected)  # batches


def test_same_seed_same_calls_and_automine_restored(chain: Web3) -> None:
    def run() -> list[tuple[str, Any]]:
        events = make_activity(chain, deploy_escrow(chain), 30, blocks=5, seed=3)
        args: list[Any] = [e["args"] for e in events]
        for a in args:
            a.get("dispute", {}).pop("raisedAt", None)  # the block's time
        return [(e["event"], a) for e, a in zip(events, args, strict=True)]

    assert run() == run()
    assert _rpc(chain, "anvil_getAutomine", []) is True
