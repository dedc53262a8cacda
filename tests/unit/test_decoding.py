"""Decoding and message building against hand-encoded logs of the escrow ABI.

Logs are encoded here with eth-abi's encoder from known values; the expected JSON is
written out by hand from CONTRACT §3, not derived from the decoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from function.core.abi import abi_entries, event_catalogue, load_specs
from function.core.decoding import decode_log
from function.core.messages import build_message
from function.core.model import RawLog
from function.errors import AbiError, DecodeError
from function.run.fetching import with_topic0s

ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "Escrow.json"
ABI = json.loads(ARTIFACT.read_text())["abi"]
SPECS = event_catalogue(ABI, (), "test")
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
BUYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SELLER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
BLOCK_HASH = "0x" + "ab" * 32
TX_HASH = "0x" + "cd" * 32


def topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def word(value: bytes) -> str:
    return "0x" + value.rjust(32, b"\0").hex()


def raw_log(topics: list[str], data: bytes, *, stamp: int | None = 1_730_000_000) -> RawLog:
    log: RawLog = {
        "address": CONTRACT.lower(),
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": hex(9_505_701),
        "blockHash": BLOCK_HASH,
        "transactionHash": TX_HASH,
        "transactionIndex": "0x3",
        "logIndex": "0x7",
        "removed": False,
    }
    if stamp is not None:
        log["blockTimestamp"] = hex(stamp)
    return log


BIG = 2**200 + 12345


def created_log() -> RawLog:
    arbiters = [BUYER, SELLER]
    data = encode(
        ["uint256", "string", "bytes32", "address[]"],
        [BIG, "café ✓", b"\x11" * 32, arbiters],
    )
    return raw_log(
        [
            topic("EscrowCreated(uint256,address,address,uint256,string,bytes32,address[])"),
            word((42).to_bytes(32, "big")),
            word(bytes.fromhex(BUYER[2:])),
            word(bytes.fromhex(SELLER[2:])),
        ],
        data,
    )


def test_escrow_created_follows_the_message_format() -> None:
    event = decode_log(created_log(), SPECS, 11155111)
    message = build_message(event, ordering=True)
    payload = json.loads(message.data)
    assert payload == {
        "event_id": f"11155111:{BLOCK_HASH}:7",
        "chain_id": 11155111,
        "contract": CONTRACT,
        "event": "EscrowCreated",
        "args": {
            "escrowId": "42",
            "buyer": BUYER,
            "seller": SELLER,
            "amount": str(BIG),
            "memo": "café ✓",
            "termsHash": "0x" + "11" * 32,
            "arbiters": [BUYER, SELLER],
        },
        "block_number": 9_505_701,
        "block_hash": BLOCK_HASH,
        "block_timestamp": 1_730_000_000,
        "transaction_hash": TX_HASH,
        "transaction_index": 3,
        "log_index": 7,
        "removed": False,
    }
    assert list(payload) == [
        "event_id",
        "chain_id",
        "contract",
        "event",
        "args",
        "block_number",
        "block_hash",
        "block_timestamp",
        "transaction_hash",
        "transaction_index",
        "log_index",
        "removed",
    ]
    assert message.attributes == {
        "event_id": f"11155111:{BLOCK_HASH}:7",
        "event": "EscrowCreated",
        "chain_id": "11155111",
        "contract": CONTRACT,
        "block_number": "9505701",
        "removed": "false",
        "ce-specversion": "1.0",
        "ce-id": f"11155111:{BLOCK_HASH}:7",
        "ce-source": f"eip155:11155111:{CONTRACT}",
        "ce-type": "evm.event.EscrowCreated",
        "ce-time": "2024-10-27T03:33:20Z",
    }
    assert message.ordering_key == f"11155111:{CONTRACT}"
    assert build_message(event, ordering=False).ordering_key == ""


def test_struct_and_indexed_string() -> None:
    dispute = encode(["(uint8,string,bytes,uint64)"], [(2, "late delivery", b"\x01\x02", 2**63)])
    event = decode_log(
        raw_log(
            [
                topic("DisputeRaised(uint256,address,(uint8,string,bytes,uint64))"),
                word((1).to_bytes(32, "big")),
                word(bytes.fromhex(BUYER[2:])),
            ],
            dispute,
        ),
        SPECS,
        1,
    )
    assert event.args == {
        "escrowId": "1",
        "by": BUYER,
        "dispute": {
            "kind": "2",
            "reason": "late delivery",
            "evidence": "0x0102",
            "raisedAt": str(2**63),
        },
    }
    tag_hash = "0x" + keccak(text="urgent-review").hex()
    note = decode_log(
        raw_log(
            [
                topic("NoteTagged(uint256,string,bool,bytes)"),
                word((5).to_bytes(32, "big")),
                tag_hash,
            ],
            encode(["bool", "bytes"], [True, b""]),
        ),
        SPECS,
        1,
    )
    assert note.args == {"escrowId": "5", "tag": tag_hash, "urgent": True, "data": "0x"}


def test_missing_timestamp_is_left_for_the_header_fetch() -> None:
    event = decode_log(
        raw_log(created_log()["topics"], bytes.fromhex(created_log()["data"][2:]), stamp=None),
        SPECS,
        1,
    )
    assert event.block_timestamp is None
    assert "ce-time" not in build_message(event, ordering=True).attributes


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda log: log.update(data="0x1234"), "does not fit the ABI.s layout EscrowCreated"),
        (lambda log: log["topics"].pop(), "indexed topics"),
    ],
)
def test_malformed_logs_raise_decode_error(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    log = created_log()
    mutate(log)
    with pytest.raises(DecodeError, match=reason):
        decode_log(log, SPECS, 1)


def test_a_topic0_the_abi_lacks_is_a_decode_error() -> None:
    """Read by address alone (every event relayed, RELAYER_EVENTS unset) such a log never
    reaches the decoder: the read applies the topic0s first (`fetching.with_topic0s`)."""
    log = created_log()
    log["topics"][0] = "0x" + "00" * 32
    assert SPECS.every_event
    with pytest.raises(DecodeError, match="matches no selected"):
        decode_log(log, SPECS, 1)
    assert with_topic0s([log, created_log()], SPECS.topic_filter or []) == [created_log()]


def test_artifact_formats_and_selection(tmp_path: Path) -> None:
    hardhat = json.loads(ARTIFACT.read_text())
    foundry = {"abi": ABI, "bytecode": {"object": "0x00"}, "methodIdentifiers": {}}
    truffle = {"contractName": "Escrow", "abi": json.dumps(ABI), "networks": {}}
    for name, doc in (
        ("plain", ABI),
        ("hardhat", hardhat),
        ("foundry", foundry),
        ("truffle", truffle),
    ):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        specs = load_specs(lambda uri: Path(uri).read_bytes(), str(path), ("EscrowFunded",))
        assert [s.name for s in specs.relayed()] == ["EscrowFunded"], name
        assert specs.topic_filter == [topic("EscrowFunded(uint256,address,uint256,uint256)")], name


@pytest.mark.parametrize(
    ("document", "selected", "message"),
    [
        ({"bytecode": "0x"}, (), "is not an ABI"),
        ([{"type": "function", "name": "f", "inputs": []}], (), "defines no events"),
        (ABI, ("EscrowClosed",), "RELAYER_EVENTS names EscrowClosed"),
        (
            [{"type": "event", "name": "E", "inputs": [{"name": "x", "type": "uint7"}]}],
            (),
            "malformed event",
        ),
    ],
)
def test_bad_abis(document: object, selected: tuple[str, ...], message: str) -> None:
    with pytest.raises(AbiError, match=message):
        event_catalogue(abi_entries(document, "abi.json"), selected, "abi.json")


@pytest.mark.parametrize(
    ("abi_type", "value"),
    [
        ("uint256", 2**256 - 1),
        ("uint8", 7),
        ("int256", -1),
        ("int64", -(2**63)),
        ("int24", 123456),
        ("address", "0x5fbdb2315678afecb367f032d93f642f64180aa3"),
        ("bool", True),
        ("bool", False),
        ("bytes4", b"\xde\xad\xbe\xef"),
        ("bytes32", b"\x01" * 32),
    ],
)
def test_topic_readers_agree_with_eth_abi(abi_type: str, value: object) -> None:
    from eth_abi.abi import decode

    from function.core.values import topic_reader

    topic = "0x" + encode([abi_type], [value]).hex()
    reader = topic_reader(abi_type)
    assert reader is not None
    assert reader(topic) == decode([abi_type], bytes.fromhex(topic[2:]))[0] == value


def test_block_records_are_written_in_commits_that_fit() -> None:
    from function.adapters.firestore.docsize import doc_size, write_batches

    entry = {"event_id": "x" * 80, "data": "d" * 5_000}
    docs = [(f"{n:012d}-0x", {"events": [entry] * 100}) for n in range(40)]  # ~0.5 MB each
    batches = write_batches(docs, max_writes=400, max_bytes=3_000_000)
    assert [d for b in batches for d in b] == docs  # all of them, in order
    assert all(sum(doc_size(f) for _, f in b) <= 3_000_000 for b in batches)
    assert len(batches) > 1
    small = [(str(n), {"events": []}) for n in range(1000)]
    assert [len(b) for b in write_batches(small, 400, 3_000_000)] == [400, 400, 200]
