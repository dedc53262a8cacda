"""RELAYER_INCLUDE=transaction end to end: `python main.py` against anvil and the emulators.

Each message's `transaction` is checked against the chain as web3 reads it (the sender, the
contract called, the value, the status), for the escrow's calls (no value), payments to a
payable logger and a contract creation that logs (`to` null). Every message validates
against what `relayer schema` prints for the relayer, and a retraction after a
reorganisation carries the `transaction` of the message it retracts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from devstack.chain.escrow import ExpectedEvent
from devstack.chain.payable import PAID_ABI, creation_address, install, pay
from harness import (
    ARTIFACT,
    Deployment,
    assert_exactly_once,
    payloads,
    run_cli,
    run_main,
    run_until_idle,
)

LOGGER = "0x" + "ca" * 20


def _chain_says(deployment: Deployment, tx_hash: str) -> dict[str, Any]:
    """The `transaction` object as the node tells it to web3."""
    w3 = deployment.w3
    tx = w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return {
        "from": tx["from"],
        "to": receipt["to"],
        "value": str(tx["value"]),
        "status": receipt["status"],
    }


def _paid(deployment: Deployment, tx_hash: str, value: int) -> ExpectedEvent:
    w3 = deployment.w3
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    [entry] = receipt["logs"]
    block_hash = entry["blockHash"].to_0x_hex()
    return {
        "event_id": f"31337:{block_hash}:{entry['logIndex']}",
        "chain_id": 31337,
        "contract": entry["address"],
        "event": "Paid",
        "args": {"payer": receipt["from"], "amount": str(value)},
        "block_number": entry["blockNumber"],
        "block_hash": block_hash,
        "block_timestamp": w3.eth.get_block(entry["blockNumber"])["timestamp"],
        "transaction_hash": tx_hash,
        "transaction_index": entry["transactionIndex"],
        "log_index": entry["logIndex"],
        "removed": False,
    }


def _schema(env: dict[str, str]) -> jsonschema.Draft202012Validator:
    run = run_cli(env, "schema")
    assert run.code == 0, run.stdout + run.stderr
    schema = json.loads(run.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_message_carries_its_transaction_as_the_chain_says(
    deployment: Deployment, tmp_path: Path
) -> None:
    w3 = deployment.w3
    escrow_events = deployment.make_activity(60, blocks=8)
    payer, creator = w3.eth.accounts[4], w3.eth.accounts[5]
    logger = install(w3, LOGGER)
    created = creation_address(creator, w3.eth.get_transaction_count(creator))
    payments = [
        _paid(deployment, pay(w3, payer, logger, 10**21 + 1), 10**21 + 1),
        _paid(deployment, pay(w3, creator, None, 5), 5),
        _paid(deployment, pay(w3, payer, logger, 0), 0),
    ]
    assert payments[1]["contract"] == created
    paid_abi = tmp_path / "paid.json"
    paid_abi.write_text(json.dumps(PAID_ABI))
    env = deployment.env(
        CONTRACT_ADDRESS=f"{deployment.contract},{logger},{created}",
        ABI_URI=f"{ARTIFACT},{paid_abi}",
        RELAYER_INCLUDE="transaction",
        RELAYER_BATCH_SIZE="4",
        RELAYER_CHECKPOINT_INTERVAL="2",
    )

    run_until_idle(env)

    got = payloads(deployment.topic.pull_all())
    assert len(got) == len(escrow_events) + len(payments)
    validator = _schema(env)
    for p in got:
        errors = list(validator.iter_errors(p))
        assert not errors, f"{p['event_id']} does not fit `relayer schema`: {errors[0]}"
        assert p["transaction"] == _chain_says(deployment, p["transaction_hash"])
    escrow = [p for p in got if p["contract"] == deployment.contract]
    assert_exactly_once(
        [{k: v for k, v in p.items() if k != "transaction"} for p in escrow], escrow_events
    )
    for p in escrow:  # the escrow's calls: from one of the driver's accounts, no value
        assert p["transaction"]["from"] in w3.eth.accounts
        assert p["transaction"]["to"] == deployment.contract
        assert p["transaction"]["value"] == "0" and p["transaction"]["status"] == 1
    paid = sorted((p for p in got if p["event"] == "Paid"), key=lambda p: p["block_number"])
    assert [{k: v for k, v in p.items() if k != "transaction"} for p in paid] == payments
    assert [p["transaction"] for p in paid] == [
        {"from": payer, "to": logger, "value": str(10**21 + 1), "status": 1},
        {"from": creator, "to": None, "value": "5", "status": 1},
        {"from": payer, "to": logger, "value": "0", "status": 1},
    ]


def test_a_retraction_carries_the_transaction_of_its_message(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(40, blocks=8)
    env = deployment.env(RELAYER_INCLUDE="transaction", RELAYER_CHECKPOINT_INTERVAL="3")
    run_until_idle(env)
    first = payloads(deployment.topic.pull_all())
    assert all(p["transaction"]["status"] == 1 for p in first)
    head = deployment.head()
    answer = deployment.w3.provider.make_request("anvil_reorg", [3, []])  # type: ignore[arg-type]
    assert "error" not in answer, answer

    run_until_idle(env)

    retracted = [p for p in payloads(deployment.topic.pull_all()) if p["removed"]]
    orphaned = [p for p in first if p["block_number"] > head - 3]
    assert orphaned and retracted == [{**p, "removed": True} for p in orphaned]


def test_an_unknown_include_stops_the_start_with_exit_2(deployment: Deployment) -> None:
    run = run_main(deployment.env(RELAYER_INCLUDE="transaction,receipt"))
    assert run.code == 2, run.stdout + run.stderr
    assert [r["message"] for r in run.records] == [
        "RELAYER_INCLUDE='transaction,receipt' is invalid: expected transaction, or unset"
    ]
