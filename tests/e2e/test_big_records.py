"""Block records of any size Pub/Sub accepts, through `python main.py` on anvil.

Firestore caps a document at 1 MiB (counted in UTF-8 bytes), Pub/Sub a message at 10 MB. An
event of a 600,000-byte `bytes`, a block of four 90,000-character CJK strings (~1.08 MB of
UTF-8) and one ~8.8 MB event must each be published once, recorded, passed by the
checkpoint, never published again, and retracted with their exact data after a
reorganisation. The layout itself (`function/blockparts.py`) is checked with tables.
"""

from __future__ import annotations

import json
import os
import random
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from google.cloud import firestore
from web3 import Web3

from devstack.chain.emitter import EmittedLog, Emitter
from devstack.stack.clients import PubSubTopic
from devstack.stack.services import Anvil, FirestoreEmulator, start_anvil
from function.adapters.firestore.blockparts import (
    INLINE_DATA_BYTES,
    PART_BUDGET,
    assembled,
    stored_parts,
)
from function.adapters.firestore.docsize import DOC_LIMIT, document_size, value_size
from harness import PROJECT, Deployment, block_docs, payloads, relayer_doc, run_main

ABI = [
    {
        "type": "event",
        "name": "Blob",
        "anonymous": False,
        "inputs": [{"name": "payload", "type": "bytes", "indexed": False}],
    },
    {
        "type": "event",
        "name": "Text",
        "anonymous": False,
        "inputs": [{"name": "text", "type": "string", "indexed": False}],
    },
]
BLOB = "0x" + keccak(text="Blob(bytes)").hex()
TEXT = "0x" + keccak(text="Text(string)").hex()


def _cjk(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(chr(rng.randrange(0x4E00, 0xA000)) for _ in range(n))


def _hex(n: int) -> str:
    return json.dumps({"p": random.Random(n).randbytes(n).hex()})


# The layout, pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (None, 1),
        (True, 1),
        (7, 8),
        (datetime(2026, 1, 1, tzinfo=UTC), 8),
        ("abc", 4),
        ("é", 3),
        ("漢字", 7),  # two characters, six bytes, plus one
        (b"\x00" * 10, 10),
        ([1, "a"], 10),
        ({"ab": 1}, 11),
    ],
)
def test_sizes_are_firestores_utf8_bytes(value: Any, size: int) -> None:
    assert value_size(value) == size


def _entry(i: int, data: str) -> dict[str, Any]:
    return {
        "event_id": f"31337:0xb:{i}",
        "log_index": i,
        "transaction_hash": "0x" + "ab" * 32,
        "event": "E",
        "message_id": str(i),
        "state": "published",
        "data": data,
    }


def _record(entries: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fields = {
        "block_number": 7,
        "block_hash": "0xb",
        "events": entries,
        "run_id": "r",
        "recorded_at": now,
        "expire_at": now,
    }
    return "000000000007-0xb", fields


@pytest.mark.parametrize(
    ("datas", "parts"),
    [
        (["small"] * 3, 1),  # inline, readable in the console
        ([_hex(600_000)], 1),  # 1.2 MB of text: two compressed pieces in one document
        ([json.dumps({"t": _cjk(90_000, s)}) for s in range(4)], 1),  # 1.08 MB of UTF-8, packed
        ([_hex(4_400_000)], 6),  # ~8.8 MB: eleven pieces
        (["x" * 20_000] * 300, 1),  # compressible: 6 MB of text in one document
    ],
)
def test_a_record_is_stored_under_the_limit_and_read_back_whole(
    datas: list[str], parts: int
) -> None:
    record = _record([_entry(i, d) for i, d in enumerate(datas)])
    docs = stored_parts(record, datetime.now(UTC))
    assert len(docs) == parts
    assert [i for i, _ in docs] == [record[0]] + [f"{record[0]}-part{n}" for n in range(1, parts)]
    assert all(document_size(f) <= PART_BUDGET < DOC_LIMIT for _, f in docs)
    assert assembled(f for _, f in reversed(docs))["events"] == record[1]["events"]
    inline = [e for _, f in docs for e in f["events"] if isinstance(e, dict) and "data" in e]
    assert all(len(e["data"].encode()) <= INLINE_DATA_BYTES for e in inline)
    lines = [e for _, f in docs for e in f["events"] if isinstance(e, str)]  # small: lines
    assert len(lines) == sum(len(d.encode()) <= INLINE_DATA_BYTES for d in datas)


def test_a_record_cut_short_leaves_out_only_the_incomplete_entries() -> None:
    big = _hex(1_500_000)
    record = _record([_entry(0, "small"), _entry(1, big), _entry(2, "tail")])
    docs = stored_parts(record, datetime.now(UTC))
    assert len(docs) >= 2
    kept = assembled(f for _, f in docs[:-1])  # the last document's write never landed
    assert [e["log_index"] for e in kept["events"]] == [0]


def test_a_later_write_of_a_block_wins() -> None:
    record = _record([_entry(0, "a"), _entry(1, "b")])
    first = stored_parts(record, datetime(2026, 1, 1, tzinfo=UTC))
    record[1]["events"][1] = {**record[1]["events"][1], "state": "removed"}
    second = stored_parts(record, datetime(2026, 1, 2, tzinfo=UTC))
    states = [e["state"] for e in assembled([f for _, f in second + first])["events"]]
    assert states == ["published", "removed"]


def test_compressed_data_is_zlib_of_the_message() -> None:
    data = json.dumps({"t": "y" * 50_000})
    (_, fields), = stored_parts(_record([_entry(0, data)]), datetime.now(UTC))  # fmt: skip
    assert zlib.decompress(fields["events"][0]["data_zlib"]).decode() == data


# Through python main.py ------------------------------------------------------------------


@pytest.fixture
def big_anvil() -> Iterator[Anvil]:
    """An anvil that takes transactions of megabytes of log data."""
    args = ["--gas-limit", "3000000000", "--no-request-size-limit"]
    with start_anvil(extra_args=args) as chain:
        yield chain


def _expected(w3: Web3, contract: str, log: EmittedLog, name: str, args: Any) -> dict[str, Any]:
    block = w3.eth.get_block(log.block_number)
    receipt = w3.eth.get_transaction_receipt(log.transaction_hash)  # type: ignore[arg-type]
    return {
        "event_id": f"31337:{log.block_hash}:{log.log_index}",
        "chain_id": 31337,
        "contract": contract,
        "event": name,
        "args": args,
        "block_number": log.block_number,
        "block_hash": log.block_hash,
        "block_timestamp": block["timestamp"],
        "transaction_hash": log.transaction_hash,
        "transaction_index": receipt["transactionIndex"],
        "log_index": log.log_index,
        "removed": False,
    }


@pytest.mark.slow
def test_huge_events_are_recorded_once_and_retracted_whole(
    big_anvil: Anvil,
    firestore_reset: FirestoreEmulator,
    pubsub_topic: PubSubTopic,
    tmp_path: Path,
) -> None:
    w3 = Web3(Web3.HTTPProvider(big_anvil.rpc_url, request_kwargs={"timeout": 120}))
    emitter = Emitter.deploy(w3)
    abi = tmp_path / "abi.json"
    abi.write_text(json.dumps(ABI))
    deployment = Deployment(big_anvil, w3, emitter.address, pubsub_topic, str(abi))
    env = deployment.env(RELAYER_LEASE_SECONDS="120")
    assert run_main(env).code == 0  # the blocks before: the ancestor of the reorganisation
    gas = 2_900_000_000
    expected = []
    blob = os.urandom(600_000)
    (log,) = emitter.emit([([BLOB], encode(["bytes"], [blob]))], gas=gas)
    expected.append(_expected(w3, emitter.address, log, "Blob", {"payload": "0x" + blob.hex()}))
    texts = [_cjk(90_000, seed) for seed in range(4)]
    logs = emitter.emit([([TEXT], encode(["string"], [t])) for t in texts], gas=gas)
    expected += [
        _expected(w3, emitter.address, x, "Text", {"text": t})
        for x, t in zip(logs, texts, strict=True)
    ]
    huge = os.urandom(4_400_000)  # 8.8 MB of hex in the message: under Pub/Sub's 10 MB
    (log,) = emitter.emit([([BLOB], encode(["bytes"], [huge]))], gas=gas)
    expected.append(_expected(w3, emitter.address, log, "Blob", {"payload": "0x" + huge.hex()}))

    first = run_main(env, timeout=300)
    assert first.code == 0, first.stdout + first.stderr
    assert first.summary["outcome"] == "ok"
    got = payloads(deployment.topic.pull_all())
    assert Counter(p["event_id"] for p in got) == Counter(e["event_id"] for e in expected)
    assert {p["event_id"]: p for p in got} == {e["event_id"]: e for e in expected}
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == deployment.head() + 1
    stored = block_docs(deployment.relayer_id)
    documents = (
        firestore.Client(project=PROJECT).collection("relayers").document(deployment.relayer_id)
    ).collection("blocks")
    assert len(list(documents.stream())) > len(stored)  # the huge blocks took several
    recorded = {e["event_id"] for d in stored for e in d["events"]}
    assert recorded == {e["event_id"] for e in expected}

    again = run_main(env, timeout=300)
    assert again.code == 0 and again.summary["outcome"] == "idle", again.stdout + again.stderr
    assert again.summary["events_published"] == 0
    assert deployment.topic.pull_all() == []

    head = deployment.head()
    depth = head - min(e["block_number"] for e in expected) + 1
    answer = w3.provider.make_request("anvil_reorg", [depth, []])  # type: ignore[arg-type]
    assert "error" not in answer, answer
    after = run_main(env, timeout=300)
    assert after.code == 0, after.stdout + after.stderr
    assert after.summary["reorg"]["retracted"] == len(expected)
    retracted = payloads(deployment.topic.pull_all())
    assert retracted == [{**e, "removed": True} for e in expected]
    states = {e["state"] for d in block_docs(deployment.relayer_id) for e in d["events"]}
    assert states == {"removed"}
