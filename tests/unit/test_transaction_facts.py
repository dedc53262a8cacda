"""RELAYER_INCLUDE=transaction, pure: which calls read a range's transactions (the fewest),
what a message's `transaction` is made of, and the schema that describes it."""

from __future__ import annotations

from typing import Any

import pytest

from function.config import load_settings
from function.core.txfacts import TxFacts, facts_by_hash, facts_in_block, plan_reads
from function.errors import ConfigError
from minimal_env import MINIMAL

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
BLOCK = "0x" + "b1" * 32
OTHER_BLOCK = "0x" + "b2" * 32


def tx_hash(n: int) -> str:
    return "0x" + f"{n:064x}"


T1, T2, T3, T4 = (tx_hash(n) for n in range(1, 5))


# -- the setting ---------------------------------------------------------------------


def test_relayer_include_takes_transaction_and_nothing_else() -> None:
    assert load_settings({**MINIMAL, "RELAYER_INCLUDE": "transaction"}).include_transaction
    assert load_settings({**MINIMAL, "RELAYER_INCLUDE": " Transaction "}).include_transaction
    assert not load_settings(MINIMAL).include_transaction
    for bad in ("receipt", "transaction,logs", "transactions"):
        with pytest.raises(ConfigError) as raised:
            load_settings({**MINIMAL, "RELAYER_INCLUDE": bad})
        assert raised.value.problems == (
            f"RELAYER_INCLUDE={bad!r} is invalid: expected transaction, or unset",
        )


# -- the calls -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("by_block", "block_receipts", "by_hash", "whole", "with_receipts", "calls"),
    [
        # One transaction in a block: its receipt and itself (2 calls, small answers).
        ({7: [T1]}, True, [T1], [], [], 2),
        # Several: the whole block and its receipts, 2 calls instead of 2 per transaction.
        ({7: [T1, T2, T1]}, True, [], [7], [], 2),
        ({7: [T1], 8: [T2, T3, T4]}, True, [T1], [8], [], 4),
        # A node without eth_getBlockReceipts: the whole block and a receipt per
        # transaction (1 + n calls) beats 2 per transaction from 2 on.
        ({8: [T2, T3, T4]}, False, [], [], [(8, (T2, T3, T4))], 4),
        ({7: [T1]}, False, [T1], [], [], 2),
        ({}, True, [], [], [], 0),
    ],
)  # fmt: skip
def test_a_range_is_read_with_the_fewest_calls(
    by_block: dict[int, list[str]],
    block_receipts: bool,
    by_hash: list[str],
    whole: list[int],
    with_receipts: list[tuple[int, tuple[str, ...]]],
    calls: int,
) -> None:
    plan = plan_reads(by_block, block_receipts)
    assert list(plan.by_hash) == by_hash
    assert list(plan.whole_blocks) == whole
    assert list(plan.blocks_with_receipts) == with_receipts
    assert plan.calls == calls
    per_transaction = 2 * sum(len(set(v)) for v in by_block.values())
    assert plan.calls <= per_transaction


# -- the facts -----------------------------------------------------------------------


def receipt(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "transactionHash": tx_hash(n),
        "blockHash": BLOCK,
        "blockNumber": "0x7",
        "from": ALICE.lower(),
        "to": BOB.lower(),
        "status": "0x1",
        **fields,
    }


def transaction(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "hash": tx_hash(n),
        "blockHash": BLOCK,
        "from": ALICE.lower(),
        "to": BOB.lower(),
        "value": hex(10**30),
        **fields,
    }


def test_a_transaction_read_by_hash_is_its_receipt_and_its_value() -> None:
    facts = facts_by_hash(receipt(1), transaction(1))
    assert facts == TxFacts(tx_hash(1), BLOCK, ALICE, BOB, 10**30, 1)
    assert facts is not None and facts.as_json() == {
        "from": ALICE,
        "to": BOB,
        "value": "1000000000000000000000000000000",
        "status": 1,
    }
    created = facts_by_hash(receipt(1, to=None, status="0x0"), transaction(1, to=None, value="0x0"))
    assert created is not None
    assert created.as_json() == {"from": ALICE, "to": None, "value": "0", "status": 0}
    # Before Byzantium a receipt has a state root instead: a log means it succeeded.
    old = receipt(1, root="0x" + "00" * 32)
    del old["status"]
    assert (facts_by_hash(old, transaction(1)) or created).status == 1


@pytest.mark.parametrize(
    ("got_receipt", "got_transaction"),
    [
        (None, transaction(1)),  # not known (yet): a lagging node, or a reorganisation
        (receipt(1), None),
        (receipt(1), transaction(1, blockHash=OTHER_BLOCK)),  # the two reads disagree
    ],
)
def test_a_transaction_not_read_whole_from_one_chain_has_no_facts(
    got_receipt: dict[str, Any] | None, got_transaction: dict[str, Any] | None
) -> None:
    assert facts_by_hash(got_receipt, got_transaction) is None


def test_transactions_read_with_their_block() -> None:
    block = {
        "hash": BLOCK,
        "number": "0x7",
        "transactions": [transaction(1), transaction(2, value="0x5"), transaction(3)],
    }
    receipts = [receipt(1), receipt(2, to=None), receipt(3, blockHash=OTHER_BLOCK)]
    facts = facts_in_block(block, receipts, [tx_hash(1), tx_hash(2), tx_hash(3), tx_hash(4)])
    assert facts == {
        tx_hash(1): TxFacts(tx_hash(1), BLOCK, ALICE, BOB, 10**30, 1),
        tx_hash(2): TxFacts(tx_hash(2), BLOCK, ALICE, None, 5, 1),
        # 3: its receipt is from another block; 4: not in the block at all
    }
    assert facts_in_block(None, receipts, [tx_hash(1)]) == {}
    assert facts_in_block(block, None, [tx_hash(1)]) == {}


# -- the schema ----------------------------------------------------------------------


def test_the_schema_has_the_transaction_exactly_when_it_is_included() -> None:
    import jsonschema

    from function.core.abi import event_catalogue
    from function.core.schema import message_schema

    abi = [{"type": "event", "name": "Tick", "inputs": [{"name": "n", "type": "uint8"}]}]
    catalogue = event_catalogue(abi, (), "abi.json")
    message = {
        "event_id": f"31337:{BLOCK}:0", "chain_id": 31337, "contract": BOB, "event": "Tick",
        "args": {"n": "1"}, "block_number": 7, "block_hash": BLOCK, "block_timestamp": 1,
        "transaction_hash": tx_hash(1), "transaction_index": 0, "log_index": 0, "removed": False,
    }  # fmt: skip
    included = {**message, "transaction": TxFacts(tx_hash(1), BLOCK, ALICE, None, 3, 1).as_json()}
    with_tx = jsonschema.Draft202012Validator(
        message_schema(catalogue, abi, 31337, transaction=True)
    )
    without = jsonschema.Draft202012Validator(message_schema(catalogue, abi, 31337))
    assert with_tx.is_valid(included) and without.is_valid(message)
    assert not without.is_valid(included)
    # Not required: a retraction carries what its original carried, and an event published
    # before RELAYER_INCLUDE was set has no transaction.
    assert with_tx.is_valid(message)


# -- the message ---------------------------------------------------------------------


def test_the_message_gains_the_transaction_last_and_only_when_read() -> None:
    import json

    from function.core.messages import build_message
    from function.core.model import Event

    event = Event(f"31337:{BLOCK}:4", 31337, BOB, "Tick", {"n": "1"}, 7, BLOCK, 1, tx_hash(1), 0, 4)
    plain = json.loads(build_message(event, ordering=True).data)
    assert "transaction" not in plain
    event.transaction = TxFacts(tx_hash(1), BLOCK, ALICE, BOB, 2, 1).as_json()
    data = json.loads(build_message(event, ordering=True).data)
    assert list(data) == [*plain, "transaction"]
    assert data["transaction"] == {"from": ALICE, "to": BOB, "value": "2", "status": 1}
