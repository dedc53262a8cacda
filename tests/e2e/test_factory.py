"""RELAYER_FACTORY end to end: `python main.py` and `relayer backfill` against the test
`PairFactory` on anvil and the emulators, with no CONTRACT_ADDRESS. The driver's ground truth
(what it sent, and the addresses the chain gave each pair) is what must arrive: every swap of
every pair the factory created, from the block of its creation on (its constructor's log,
which comes before the factory's event, included), once, in chain order per pair; never a
swap of a Pair the factory did not create."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore
from web3 import Web3

from devstack.chain.escrow import ExpectedEvent
from devstack.chain.pairs import ABI_FILES, Pairs, abi_uri
from devstack.rpcproxy import RpcProxy
from devstack.stack.clients import PubSubTopic
from devstack.stack.services import Anvil
from function.core.backfills import slice_of
from function.core.planning import BlockRange
from harness import (
    PROJECT,
    assert_exactly_once,
    payloads,
    relayer_doc,
    relayer_env,
    run_cli,
    run_main,
    run_until_idle,
)


@pytest.fixture
def pairs(anvil: Anvil, firestore_reset: object, pubsub_topic: PubSubTopic) -> Pairs:
    return Pairs(Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60})))


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RpcProxy]:
    recording = RpcProxy(anvil.rpc_url)
    yield recording
    recording.stop()


def env_of(pairs: Pairs, rpc_url: str, topic: PubSubTopic, **extra: str) -> dict[str, str]:
    env = relayer_env(rpc_url, "", abi_uri(), topic, RELAYER_FACTORY=pairs.setting, **extra)
    del env["CONTRACT_ADDRESS"]
    return env


def relayer_id(pairs: Pairs) -> str:
    return f"31337-{pairs.address.lower()}"


def stored_children(pairs: Pairs) -> list[tuple[str, int]]:
    """The children pages, read as an operator would in the console."""
    pages = (
        firestore.Client(project=PROJECT)
        .collection("relayers")
        .document(relayer_id(pairs))
        .collection("children")
        .stream()
    )
    lines = [
        line for p in sorted(pages, key=lambda p: p.id) for line in p.get("children").split("\n")
    ]
    return [(a, int(b)) for a, b in (line.split() for line in lines if line)]


def assert_in_chain_order(got: list[dict[str, Any]]) -> None:
    by_pair: dict[str, list[tuple[int, int]]] = {}
    for p in got:
        by_pair.setdefault(p["contract"], []).append((p["block_number"], p["log_index"]))
    assert all(keys == sorted(keys) for keys in by_pair.values())


def test_every_child_from_its_creation_block_and_no_stranger(
    pairs: Pairs, pubsub_topic: PubSubTopic, proxy: RpcProxy
) -> None:
    expected: list[ExpectedEvent] = pairs.create_and_swap(10)  # logs before and after creation
    stranger = pairs.stranger(5)  # a Pair the factory did not create
    expected += pairs.swap(pairs.pairs[0], 11, "first")
    pairs.swap(stranger, 12, "not a child")
    expected += pairs.create_many(3, 20)  # three children in one block
    env = env_of(
        pairs, proxy.url(), pubsub_topic, RELAYER_BATCH_SIZE="3", RELAYER_CHECKPOINT_INTERVAL="1"
    )

    runs = run_until_idle(env)
    # Later runs relay the stored children's new events.
    expected += pairs.swap(pairs.pairs[2], 30, "later")
    pairs.swap(stranger, 31, "still not")
    runs += run_until_idle(env)

    got = payloads(pubsub_topic.pull_all())
    assert_exactly_once(got, expected, ABI_FILES)
    assert_in_chain_order(got)
    assert sum(r.summary["events_published"] for r in runs) == len(expected)
    doc = relayer_doc(relayer_id(pairs))
    assert doc["contracts"] == [] and doc["factory"] == pairs.setting.lower().replace(
        ":paircreated:", ":PairCreated:"
    )
    assert doc["children"] == {"count": 4, "to_block": doc["next_block"]}
    creation_blocks = {e["contract"].lower(): e["block_number"] for e in reversed(expected)}
    assert stored_children(pairs) == [(p.lower(), creation_blocks[p.lower()]) for p in pairs.pairs]
    # Few children: every eth_getLogs names its addresses (the factory's among them).
    asked = [c.params[0] for c in proxy.calls if c.method == "eth_getLogs"]
    assert asked and all("address" in q for q in asked)
    assert stranger.lower() not in {a.lower() for q in asked for a in q["address"]}
    status = run_cli(env, "status", "--json")
    (shown,) = json.loads(status.stdout)["relayers"]
    assert shown["factory"] == doc["factory"] and shown["children"] == 4
    table = run_cli(env, "status")
    assert f"{relayer_id(pairs)}: 4 children of factory {doc['factory']}" in table.stdout


def test_past_five_hundred_children_logs_are_asked_by_topic(
    pairs: Pairs, pubsub_topic: PubSubTopic, proxy: RpcProxy
) -> None:
    expected: list[ExpectedEvent] = []
    for i in range(6):  # 600 children, a hundred per block
        expected += pairs.create_many(100, 1000 * i)
    stranger = pairs.stranger(7)
    for pair in (pairs.pairs[0], pairs.pairs[299], pairs.pairs[-1]):
        expected += pairs.swap(pair, 5, "by topic")
    pairs.swap(stranger, 6, "filtered out here")
    env = env_of(pairs, proxy.url(), pubsub_topic, RELAYER_BATCH_SIZE="4")

    run_until_idle(env)

    got = payloads(pubsub_topic.pull_all())
    assert_exactly_once(got, expected, ABI_FILES)
    assert_in_chain_order(got)
    asked = [c.params[0] for c in proxy.calls if c.method == "eth_getLogs"]
    assert any("address" not in q for q in asked)  # past 500 addresses: the topics alone
    assert len(stored_children(pairs)) == 600


def test_a_child_of_an_orphaned_block_is_forgotten_and_its_events_retracted(
    pairs: Pairs, pubsub_topic: PubSubTopic, anvil: Anvil
) -> None:
    before = pairs.create_and_swap(10)
    env = env_of(pairs, anvil.rpc_url, pubsub_topic, RELAYER_CHECKPOINT_INTERVAL="1")
    run_until_idle(env)
    assert len(stored_children(pairs)) == 1
    orphaned = pairs.pairs[0]

    # The creation's block is replaced by an empty one, and two more follow.
    pairs.w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type]
    pairs.w3.provider.make_request("anvil_mine", ["0x2"])  # type: ignore[arg-type]
    run = run_main(env)
    assert run.code == 0, run.stdout + run.stderr
    assert stored_children(pairs) == []
    # The factory's nonce went back with the block: the next pair gets the same address.
    after = pairs.create_and_swap(20)
    assert pairs.pairs[-1] == orphaned
    run_until_idle(env)

    got = payloads(pubsub_topic.pull_all())
    retracted = [p for p in got if p["removed"]]
    assert sorted(p["event_id"] for p in retracted) == sorted(e["event_id"] for e in before)
    assert_exactly_once([p for p in got if not p["removed"]], [*before, *after], ABI_FILES)
    assert stored_children(pairs) == [(orphaned.lower(), after[0]["block_number"])]


def test_a_backfill_finds_the_children_created_before_its_slice(
    pairs: Pairs, pubsub_topic: PubSubTopic, anvil: Anvil
) -> None:
    expected = pairs.create_and_swap(10)
    expected += pairs.create_many(2, 50)
    created_by = pairs.w3.eth.block_number
    pairs.w3.provider.make_request("anvil_mine", ["0x14"])  # type: ignore[arg-type]
    for n, pair in enumerate(pairs.pairs):
        expected += pairs.swap(pair, 100 + n, "in the second slice")
    head = pairs.w3.eth.block_number
    second = slice_of(BlockRange(0, head), 1, 2)
    assert second is not None and second.start > created_by  # no creation in its slice
    assert all(
        e["block_number"] in second for e in expected if e["args"]["note"] == "in the second slice"
    )
    env = env_of(pairs, anvil.rpc_url, pubsub_topic, START_BLOCK=str(head + 1))
    # Two tasks of one execution, the second first: its slice holds only swaps of children
    # made in the first's, which it finds from the backfill's first block on.
    task = {
        "RELAYER_BACKFILL_FROM": "0",
        "RELAYER_BACKFILL_TO": str(head),
        "CLOUD_RUN_TASK_COUNT": "2",
    }
    for index in ("1", "0"):
        run = run_main({**env, **task, "CLOUD_RUN_TASK_INDEX": index})
        assert run.code == 0, run.stdout + run.stderr

    got = payloads(pubsub_topic.pull_all())
    assert_exactly_once(got, expected, ABI_FILES)


def test_an_exported_factory_relayer_goes_on_with_its_children(
    pairs: Pairs, pubsub_topic: PubSubTopic, anvil: Anvil, tmp_path: Path
) -> None:
    pairs.create_many(3, 1)
    env = env_of(pairs, anvil.rpc_url, pubsub_topic)
    run_until_idle(env)
    pubsub_topic.pull_all()
    file = tmp_path / "state.jsonl"
    exported = run_cli(env, "export", "--out", str(file), "--json")
    assert exported.code == 0, exported.stderr
    assert sum('"doc": "children/' in line for line in file.read_text().splitlines()) == 1
    # Another Firestore project (a restore, or a move), its own for this test.
    restored = {**env, "FIRESTORE_PROJECT_ID": f"restored-{uuid.uuid4().hex[:8]}"}
    imported = run_cli(restored, "import", "--in", str(file), "--yes")
    assert imported.code == 0, imported.stderr

    # The restored relayer knows the children: their next swaps, and only those, arrive.
    expected = [e for pair in pairs.pairs for e in pairs.swap(pair, 9, "after the move")]
    run_until_idle(restored)
    assert_exactly_once(payloads(pubsub_topic.pull_all()), expected, ABI_FILES)
