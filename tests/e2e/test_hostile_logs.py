"""Logs no well-behaved Solidity event produces, relayed through `python main.py` on anvil and
the emulators (audit items 2, 3, 4): invalid UTF-8, non-zero padding, one topic0 with two
layouts, anonymous events.

`LogEmitter` writes exactly the raw topics and data given here; the expected payloads are
written out by hand from what was sent and from CONTRACT §3, never taken from the decoder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from devstack.chain.emitter import EmittedLog, Emitter
from devstack.stack.clients import PubSubTopic, create_topic_and_subscription
from devstack.stack.services import Anvil, FirestoreEmulator, Stack
from harness import Deployment, payloads, run_main

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def word(value: int | bytes, *, left: bool = False) -> bytes:
    """One 32-byte word: an integer big-endian, bytes right-aligned (or left: bytesN)."""
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    return value.ljust(32, b"\0") if left else value.rjust(32, b"\0")


def addr(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def event_id(emitted: EmittedLog) -> str:
    return f"31337:{emitted.block_hash}:{emitted.log_index}"


def entry(name: str, inputs: Sequence[tuple[str, str, bool]], anonymous: bool = False) -> Any:
    return {
        "type": "event",
        "name": name,
        "anonymous": anonymous,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


@pytest.fixture
def emitter_world(
    stack: Stack, anvil: Anvil, firestore_reset: FirestoreEmulator, pubsub_topic: PubSubTopic
) -> tuple[Emitter, Deployment]:
    """A LogEmitter on a fresh anvil, relayed to a fresh topic; the ABI is each test's."""
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
    emitter = Emitter.deploy(w3)
    return emitter, Deployment(anvil, w3, emitter.address, pubsub_topic, abi_uri="")


@pytest.fixture
def dead_letter_topic(stack: Stack, pubsub_topic: PubSubTopic) -> PubSubTopic:
    name = pubsub_topic.topic_id + "-dlq"
    return create_topic_and_subscription(stack.pubsub.address, stack.project, name, name + "-sub")


def write_abi(tmp_path: Path, name: str, abi: list[Any]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(abi))
    return str(path)


def by_id(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["event_id"]: m for m in messages}


HOSTILE = entry(
    "Hostile",
    [
        ("level", "uint8", True),
        ("flag", "bool", False),
        ("who", "address", False),
        ("small", "uint8", False),
        ("neg", "int16", False),
        ("tag", "bytes4", False),
        ("text", "string", False),
    ],
)


def hostile_data(
    text: bytes,
    *,
    flag: bytes = word(1),
    who: bytes = word(addr(ALICE)),
    small: bytes = word(7),
    neg: bytes = word(2**256 - 2),
    tag: bytes = word(b"\xca\xfe\xba\xbe", left=True),
    padding: bytes = b"",
) -> bytes:
    """The ABI encoding of Hostile's data, word by word, so any word can be dirty."""
    tail_len = (len(text) + 31) // 32 * 32
    tail = text + (padding or b"\0" * (tail_len - len(text)))
    assert len(tail) == tail_len
    return flag + who + small + neg + tag + word(6 * 32) + word(len(text)) + tail


def test_invalid_utf8_and_dirty_padding_are_relayed_as_the_evm_reads_them(
    emitter_world: tuple[Emitter, Deployment], tmp_path: Path
) -> None:
    emitter, world = emitter_world
    hostile = topic0("Hostile(uint8,bool,address,uint8,int16,bytes4,string)")
    clean_level = word(3)
    dirty_level = b"\xee" * 31 + b"\x09"  # an indexed uint8 with junk above its low byte
    sent = emitter.emit(
        [
            ([hostile, clean_level], hostile_data(b"ok \xff end")),  # a lone 0xff
            ([hostile, clean_level], hostile_data("café".encode()[:-1])),  # é cut in half
            ([hostile, clean_level], hostile_data(b"\xe2\x82x \xed\xa0\x80")),  # cut €, surrogate
            (
                [hostile, dirty_level],
                hostile_data(
                    b"hello",
                    flag=b"\x80" + b"\0" * 31,  # non-zero, but not 1: true for the EVM
                    who=b"\xde\xad" * 6 + addr(BOB),
                    small=b"\xaa" * 31 + b"\x07",
                    neg=b"\x12" * 30 + b"\xff\xfe",
                    tag=b"\xca\xfe\xba\xbe" + b"\x99" * 28,
                    padding=b"\x01" * 27,  # the bytes after "hello" in its word
                ),
            ),
            ([hostile, clean_level], hostile_data(b"", flag=word(0))),
        ]
    )
    world.abi_uri = write_abi(tmp_path, "hostile", [HOSTILE])

    run = run_main(world.env())  # no dead-letter topic: any decode error would fail the run

    assert run.code == 0, run.stdout + run.stderr
    assert run.summary["events_published"] == 5
    got = by_id(payloads(world.topic.pull_all()))
    clean = {"level": "3", "flag": True, "who": ALICE, "small": "7", "neg": "-2",
             "tag": "0xcafebabe"}  # fmt: skip
    dirty = {**clean, "level": "9", "who": BOB, "text": "hello"}
    expected = [
        {**clean, "text": "ok \ufffd end"},
        {**clean, "text": "caf\ufffd"},
        {**clean, "text": "\ufffdx \ufffd\ufffd\ufffd"},
        dirty,
        {**clean, "flag": False, "text": ""},
    ]
    assert [got[event_id(s)]["args"] for s in sent] == expected
    assert all(got[event_id(s)]["event"] == "Hostile" for s in sent)


ERC20_TRANSFER = entry(
    "Transfer", [("from", "address", True), ("to", "address", True), ("value", "uint256", False)]
)
ERC721_TRANSFER = entry(
    "Transfer", [("from", "address", True), ("to", "address", True), ("tokenId", "uint256", True)]
)
APPROVAL = entry(
    "Approval",
    [("owner", "address", True), ("spender", "address", True), ("value", "uint256", False)],
)
TRANSFER = topic0("Transfer(address,address,uint256)")


def test_a_merged_erc20_erc721_abi_relays_both_transfers(
    emitter_world: tuple[Emitter, Deployment], tmp_path: Path
) -> None:
    emitter, world = emitter_world
    erc20, erc721 = emitter.emit(
        [
            ([TRANSFER, word(addr(ALICE)), word(addr(BOB))], word(10**18)),
            ([TRANSFER, word(addr(BOB)), word(addr(ALICE)), word(42)], b""),
        ]
    )
    expected = {
        event_id(erc20): {"from": ALICE, "to": BOB, "value": str(10**18)},
        event_id(erc721): {"from": BOB, "to": ALICE, "tokenId": "42"},
    }
    merged = write_abi(tmp_path, "merged", [ERC20_TRANSFER, APPROVAL, ERC721_TRANSFER])
    erc20_abi = write_abi(tmp_path, "erc20", [ERC20_TRANSFER, APPROVAL])
    erc721_abi = write_abi(tmp_path, "erc721", [ERC721_TRANSFER])

    # One ABI file with both layouts, then the same as two comma-separated ABI_URIs.
    for relayer_id, abi_uri in (("merged", merged), ("two-uris", f"{erc20_abi},{erc721_abi}")):
        run = run_main(world.env(ABI_URI=abi_uri, RELAYER_ID=relayer_id))
        assert run.code == 0, run.stdout + run.stderr
        got = by_id(payloads(world.topic.pull_all()))
        assert {k: v["args"] for k, v in got.items()} == expected, relayer_id
        assert {v["event"] for v in got.values()} == {"Transfer"}


def test_logs_of_events_the_abi_lacks_are_passed_over_when_every_event_is_relayed(
    emitter_world: tuple[Emitter, Deployment], tmp_path: Path, dead_letter_topic: PubSubTopic
) -> None:
    """Every named event of the ABI relayed: eth_getLogs asks by address alone, so the node
    returns the contract's other logs too (an event the ABI lacks, a log without topics);
    they are not relayed, not dead-lettered, and fail nothing."""
    emitter, world = emitter_world
    approval = topic0("Approval(address,address,uint256)")
    first, _transfer, _bare, second = emitter.emit(
        [
            ([approval, word(addr(ALICE)), word(addr(BOB))], word(1)),
            ([TRANSFER, word(addr(ALICE)), word(addr(BOB))], word(5)),  # not in the ABI
            ([], word(9)),  # no topics: no event of a named ABI
            ([approval, word(addr(BOB)), word(addr(ALICE))], word(2)),
        ]
    )
    world.abi_uri = write_abi(tmp_path, "approval", [APPROVAL])

    for relayer_id, extra in (
        ("plain", {}),  # without dead letters a log the relayer cannot read fails the run
        ("with-dlq", {"RELAYER_DEADLETTER_TOPIC": dead_letter_topic.topic_id}),
    ):
        run = run_main(world.env(RELAYER_ID=relayer_id, **extra))
        assert run.code == 0, run.stdout + run.stderr
        assert run.summary["events_published"] == 2, relayer_id
        got = payloads(world.topic.pull_all())
        assert [m["event_id"] for m in got] == [event_id(first), event_id(second)], relayer_id
        assert [m["args"]["value"] for m in got] == ["1", "2"]
    assert dead_letter_topic.pull_all(idle_s=0.3) == []


LOG_NOTE = entry(
    "LogNote",
    [
        ("sig", "bytes4", True),
        ("usr", "address", True),
        ("arg1", "bytes32", True),
        ("arg2", "bytes32", True),
        ("data", "bytes", False),
    ],
    anonymous=True,
)


def test_an_anonymous_event_is_relayed_when_its_layout_identifies_it(
    emitter_world: tuple[Emitter, Deployment], tmp_path: Path, dead_letter_topic: PubSubTopic
) -> None:
    """DAI's DSNote LogNote: four topics (the selector left-aligned first), the calldata as
    `bytes`; the query runs without a topic filter, so the unselected Approval comes back
    from the node too and must still be ignored."""
    emitter, world = emitter_world
    selector = bytes.fromhex("a9059cbb")
    calldata = selector + word(addr(BOB)) + word(5) + b"\0" * (224 - 68)
    arg1, arg2 = calldata[4:36], calldata[36:68]
    approval = topic0("Approval(address,address,uint256)")
    note_topics = [word(selector, left=True), word(addr(ALICE)), arg1, arg2]
    note, transfer, _approval = emitter.emit(
        [
            (note_topics, encode(["bytes"], [calldata])),
            ([TRANSFER, word(addr(ALICE)), word(addr(BOB))], word(5)),
            ([approval, word(addr(ALICE)), word(addr(BOB))], word(1)),
        ]
    )
    world.abi_uri = write_abi(tmp_path, "dai", [ERC20_TRANSFER, APPROVAL, LOG_NOTE])

    env = world.env(
        RELAYER_EVENTS="LogNote,Transfer", RELAYER_DEADLETTER_TOPIC=dead_letter_topic.topic_id
    )
    run = run_main(env)

    assert run.code == 0, run.stdout + run.stderr
    got = by_id(payloads(world.topic.pull_all()))
    assert set(got) == {event_id(note), event_id(transfer)}  # Approval: not selected
    assert got[event_id(note)]["event"] == "LogNote"
    assert got[event_id(note)]["args"] == {
        "sig": "0xa9059cbb",
        "usr": ALICE,
        "arg1": "0x" + arg1.hex(),
        "arg2": "0x" + arg2.hex(),
        "data": "0x" + calldata.hex(),
    }
    assert got[event_id(transfer)]["args"] == {"from": ALICE, "to": BOB, "value": "5"}
    assert dead_letter_topic.pull_all(idle_s=0.3) == []


PING = entry("Ping", [("x", "uint256", True), ("y", "uint256", False)], anonymous=True)
PONG = entry("Pong", [("a", "uint256", True), ("b", "uint256", False)], anonymous=True)
SOLO = entry("Solo", [("who", "address", True), ("note", "string", False)], anonymous=True)


def test_anonymous_logs_that_fit_several_events_or_none_are_dead_lettered(
    emitter_world: tuple[Emitter, Deployment], tmp_path: Path, dead_letter_topic: PubSubTopic
) -> None:
    emitter, world = emitter_world
    both, solo, none = emitter.emit(
        [
            ([word(1)], word(2)),  # Ping or Pong: the same layout
            ([word(addr(BOB))], encode(["string"], ["hi"])),  # only Solo
            ([word(1), word(2), word(3)], b""),  # three topics: no anonymous event has them
        ]
    )
    world.abi_uri = write_abi(tmp_path, "anon", [PING, PONG, SOLO])

    run = run_main(world.env(RELAYER_DEADLETTER_TOPIC=dead_letter_topic.topic_id))

    assert run.code == 0, run.stdout + run.stderr
    got = by_id(payloads(world.topic.pull_all()))
    assert list(got) == [event_id(solo)]
    assert got[event_id(solo)]["event"] == "Solo"
    assert got[event_id(solo)]["args"] == {"who": BOB, "note": "hi"}
    dead = by_id(payloads(dead_letter_topic.pull_all()))
    assert set(dead) == {event_id(both), event_id(none)}
    assert "Ping" in dead[event_id(both)]["reason"] and "Pong" in dead[event_id(both)]["reason"]
    assert "several" in dead[event_id(both)]["reason"]
    assert "fits none" in dead[event_id(none)]["reason"]
    assert all("fix ABI_URI" not in d["reason"] for d in dead.values())
    assert run.summary["dead_lettered"] == 2

    # Without a dead-letter topic the same logs fail the run, saying what is odd about them.
    failed = run_main(world.env(RELAYER_ID="no-dlq"))
    assert failed.code == 1
    error = failed.summary["message"]
    assert "several" in error and "Ping" in error and "RELAYER_DEADLETTER_TOPIC" in error
    assert "fix ABI_URI" not in error
    assert world.topic.pull_all(idle_s=0.3) == []


NESTED = entry("Nested", [("tag", "uint8", True), ("values", "uint256[][]", False)])


def test_offsets_that_alias_one_array_are_dead_lettered_not_expanded(
    emitter_world: tuple[Emitter, Deployment], tmp_path: Path, dead_letter_topic: PubSubTopic
) -> None:
    # 2,000 inner-array offsets all pointing at one 2,000-word array: 128 kB of data that a
    # naive decoder expands to 4 million values (a 16 MB message, seconds of CPU).
    emitter, world = emitter_world
    n = 2000
    data = word(32) + word(n) + b"".join(word(n * 32) for _ in range(n)) + word(n)
    data += b"\0" * 32 * n
    honest = word(32) + word(2) + word(64) + word(128) + word(1) + word(7) + word(1) + word(8)
    bomb, fine = emitter.emit(
        [
            ([topic0("Nested(uint8,uint256[][])"), word(1)], data),
            ([topic0("Nested(uint8,uint256[][])"), word(2)], honest),
        ]
    )
    world.abi_uri = write_abi(tmp_path, "nested", [NESTED])
    env = world.env(RELAYER_DEADLETTER_TOPIC=dead_letter_topic.topic_id)

    run = run_main(env, timeout=120)

    assert run.code == 0 and run.summary["outcome"] == "ok", run.stdout[-800:]
    (dead,) = payloads(dead_letter_topic.pull_all())
    assert dead["event_id"] == event_id(bomb) and "same bytes" in dead["reason"]
    (relayed,) = payloads(world.topic.pull_all())
    assert relayed["event_id"] == event_id(fine)
    assert relayed["args"] == {"tag": "2", "values": [["7"], ["8"]]}
