"""`relayer schema`: the JSON Schema of the messages (docs/CONTRACT.md §3) for an ABI. The
e2e tests validate every message they receive against it (tests/harness.py); here, what it
accepts and refuses, type by type."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from function.core.abi import event_catalogue
from function.core.schema import message_schema

ABI: list[dict[str, Any]] = [
    {"type": "event", "name": "Deposited", "anonymous": False, "inputs": [
        {"name": "id", "type": "uint256", "indexed": True},
        {"name": "who", "type": "address", "indexed": True},
        {"name": "memo", "type": "string", "indexed": True},
        {"name": "amount", "type": "int128", "indexed": False},
        {"name": "tag", "type": "bytes4", "indexed": False},
        {"name": "ok", "type": "bool", "indexed": False},
        {"name": "legs", "type": "tuple[2]", "indexed": False, "components": [
            {"name": "to", "type": "address"}, {"name": "parts", "type": "uint8[]"}]},
    ]},
    {"type": "event", "name": "Ignored", "anonymous": False, "inputs": []},
]  # fmt: skip
HASH = "0x" + "ab" * 32
ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def message(**args: Any) -> dict[str, Any]:
    return {
        "event_id": f"31337:{HASH}:7",
        "chain_id": 31337,
        "contract": ADDRESS,
        "event": "Deposited",
        "args": {
            "id": "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            "who": ADDRESS,
            "memo": HASH,  # indexed string: its topic, the keccak hash
            "amount": "-5",
            "tag": "0x01020304",
            "ok": True,
            "legs": [{"to": ADDRESS, "parts": ["1", "2"]}, {"to": ADDRESS, "parts": []}],
            **args,
        },
        "block_number": 12,
        "block_hash": HASH,
        "block_timestamp": 1730000000,
        "transaction_hash": HASH,
        "transaction_index": 0,
        "log_index": 7,
        "removed": False,
    }


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = message_schema(event_catalogue(ABI, ["Deposited"], "abi.json"), ABI, 31337)
    jsonschema.Draft202012Validator.check_schema(schema)
    json.dumps(schema)  # what `relayer schema` prints
    return jsonschema.Draft202012Validator(schema)


def test_a_message_of_the_contract_validates(validator: jsonschema.Draft202012Validator) -> None:
    assert not list(validator.iter_errors(message()))


@pytest.mark.parametrize(
    "args",
    [
        {"id": 5},  # an integer must be a decimal string
        {"amount": "5.0"},
        {"who": "0x123"},
        {"tag": "0x0102"},  # bytes4 is 4 bytes
        {"tag": "0x0A0B0C0D"},  # lowercase hex
        {"memo": "hello"},  # an indexed string is its hash
        {"legs": [{"to": ADDRESS, "parts": []}]},  # tuple[2] has two
        {"legs": [{"to": ADDRESS}, {"to": ADDRESS, "parts": []}]},
        {"extra": "1"},
    ],
)
def test_values_that_break_section_3_are_refused(
    validator: jsonschema.Draft202012Validator, args: dict[str, Any]
) -> None:
    assert list(validator.iter_errors(message(**args)))


def test_an_unselected_event_or_a_missing_field_is_refused(
    validator: jsonschema.Draft202012Validator,
) -> None:
    other = {**message(), "event": "Ignored", "args": {}}
    assert list(validator.iter_errors(other))
    partial = message()
    del partial["log_index"]
    assert list(validator.iter_errors(partial))
    assert list(validator.iter_errors({**message(), "chain_id": 1}))
