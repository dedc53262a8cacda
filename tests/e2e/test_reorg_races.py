"""Reorganisations at the worst moments, relayed through `python main.py` on anvil.

- Between the run's checkpoint check and its `eth_getLogs` (the fault proxy reorganises the
  chain as the log query arrives): the checkpoint block itself is replaced and an event moves
  below the range. The run must notice, rewind, retract and relay the new chain.
- Under records above the checkpoint (a run killed after recording, before its commit; a
  first run has no checkpoint at all): nothing checks those blocks at the checkpoint, yet
  every published event of a replaced block must get its retraction.

The ground truth is what the test emitted (devstack/chain/emitter.py) and what the chain says of
it afterwards, never the relayer's decoder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from web3 import Web3

from devstack.chain.emitter import EmittedLog, Emitter
from devstack.rpcproxy import RpcProxy
from devstack.stack.clients import PubSubTopic
from devstack.stack.services import Anvil, FirestoreEmulator
from harness import ROOT, block_docs, payloads, relayer_doc, relayer_env, run_main, run_until_idle

NOTE_ABI = [
    {
        "type": "event",
        "name": "Note",
        "anonymous": False,
        "inputs": [{"name": "n", "type": "uint256", "indexed": False}],
    }
]
NOTE_TOPIC = "0x" + Web3.keccak(text="Note(uint256)").hex().removeprefix("0x")


@dataclass
class World:
    anvil: Anvil
    w3: Web3
    emitter: Emitter
    topic: PubSubTopic
    abi_uri: str

    def env(self, rpc_url: str | None = None, **overrides: str) -> dict[str, str]:
        rpc = rpc_url or self.anvil.rpc_url
        return relayer_env(rpc, self.emitter.address, self.abi_uri, self.topic, **overrides)

    @property
    def relayer_id(self) -> str:
        return f"31337-{self.emitter.address.lower()}"

    def note(self, n: int) -> EmittedLog:
        """One Note(n) log in a block of its own (anvil automines)."""
        return self.emitter.emit([([NOTE_TOPIC], n.to_bytes(32, "big"))])[0]

    def rpc(self, method: str, params: list[Any]) -> Any:
        answer = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        assert "error" not in answer, answer
        return answer["result"]

    def where_is(self, tx_hash: str) -> str:
        """The event id the chain now gives the (single) log of a transaction."""
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        (entry,) = receipt["logs"]
        return f"31337:{receipt['blockHash'].to_0x_hex().lower()}:{entry['logIndex']}"


@pytest.fixture
def world(
    stack: object,
    anvil: Anvil,
    firestore_reset: FirestoreEmulator,
    pubsub_topic: PubSubTopic,
    tmp_path: Path,
) -> World:
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
    abi = tmp_path / "note.json"
    abi.write_text(json.dumps(NOTE_ABI))
    return World(anvil, w3, Emitter.deploy(w3), pubsub_topic, str(abi))


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RpcProxy]:
    p = RpcProxy(anvil.rpc_url)
    yield p
    p.stop()


def _live_and_removed(got: list[dict[str, Any]]) -> tuple[Counter[str], Counter[str]]:
    live = Counter(p["event_id"] for p in got if not p["removed"])
    removed = Counter(p["event_id"] for p in got if p["removed"])
    return live, removed


def test_a_reorganisation_between_the_checkpoint_check_and_the_log_query(
    world: World, proxy: RpcProxy
) -> None:
    world.rpc("anvil_mine", ["0x3"])
    env = world.env(RELAYER_CHECKPOINT_INTERVAL="1")
    assert run_main(env).summary["outcome"] == "ok"  # a checkpoint below the notes
    a, b = world.note(1), world.note(2)
    assert run_main(env).summary["outcome"] == "ok"  # a and b relayed, checkpoint at b
    c = world.note(3)  # not relayed yet: the next run's range is c's block alone
    assert relayer_doc(world.relayer_id)["next_block"] == c.block_number
    raw = [world.rpc("eth_getRawTransactionByHash", [x.transaction_hash]) for x in (a, b, c)]

    def reorganise_once(body: bytes) -> tuple[int, bytes] | None:
        if b"eth_getLogs" in body and not fired:
            fired.append(True)
            # Blocks a..c are replaced: all three transactions land in a's new block, so the
            # checkpoint block (b's) changes and c's event moves below the run's range.
            world.rpc("anvil_reorg", [c.block_number - a.block_number + 1, [[r, 0] for r in raw]])
        return None

    fired: list[bool] = []
    proxy.faults = reorganise_once
    run = run_main(world.env(rpc_url=proxy.url(), RELAYER_CHECKPOINT_INTERVAL="1"))
    assert fired, "the proxy never saw the log query"
    assert run.code == 0, run.stdout + run.stderr
    run_until_idle(env)

    got = payloads(world.topic.pull_all())
    live, removed = _live_and_removed(got)
    new_ids = {world.where_is(x.transaction_hash) for x in (a, b, c)}
    old_ids = {f"31337:{x.block_hash}:{x.log_index}" for x in (a, b)}
    assert len(new_ids) == 3 and not new_ids & old_ids
    # The orphaned a and b are retracted; the new chain's three events arrive once each.
    assert removed == Counter(old_ids)
    assert live == Counter(old_ids | new_ids)
    states = {e["event_id"]: e["state"] for d in block_docs(world.relayer_id) for e in d["events"]}
    assert {i: states[i] for i in old_ids} == dict.fromkeys(old_ids, "removed")
    assert {i: states[i] for i in new_ids} == dict.fromkeys(new_ids, "published")


def _killed_after_record(env: dict[str, str]) -> None:
    """A run SIGKILLed after its first chunk's records were written, before its commit."""
    done = subprocess.run(
        [sys.executable, "devstack/faults/crashing_main.py"],
        cwd=ROOT,
        env={**env, "CRASH_AT": "after_record", "CRASH_ON": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stdout + done.stderr


@pytest.mark.parametrize("first_run", [True, False], ids=["first-run", "after-a-checkpoint"])
def test_published_records_above_the_checkpoint_are_retracted_when_orphaned(
    world: World, first_run: bool
) -> None:
    env = world.env(RELAYER_CHECKPOINT_INTERVAL="1", RELAYER_LEASE_SECONDS="2")
    world.rpc("anvil_mine", ["0x2"])
    if not first_run:
        assert run_main(env).summary["outcome"] == "ok"
    before = relayer_doc(world.relayer_id).get("next_block") if not first_run else None
    a = world.note(1)
    world.note(2)
    _killed_after_record(env)  # a is published and recorded; the checkpoint is not past it
    doc = relayer_doc(world.relayer_id)
    assert doc.get("next_block") == before
    assert [e["event_id"] for d in block_docs(world.relayer_id) for e in d["events"]] == [
        f"31337:{a.block_hash}:{a.log_index}"
    ]
    # a's block and the one after are replaced by empty blocks: a's event is gone.
    head = int(world.w3.eth.block_number)
    world.rpc("anvil_reorg", [head - a.block_number + 1, []])
    time.sleep(2.2)  # the killed run's lease expires

    run_until_idle(env)

    got = payloads(world.topic.pull_all())
    live, removed = _live_and_removed(got)
    orphan = f"31337:{a.block_hash}:{a.log_index}"
    assert removed == Counter([orphan])
    assert live == Counter([orphan])
    (record,) = [e for d in block_docs(world.relayer_id) for e in d["events"]]
    assert record["event_id"] == orphan and record["state"] == "removed"
    retraction = next(p for p in got if p["removed"])
    original = next(p for p in got if not p["removed"])
    assert retraction == {**original, "removed": True}


def test_a_window_answered_by_a_node_on_another_fork_is_read_again(
    world: World, proxy: RpcProxy
) -> None:
    notes = [world.note(n) for n in range(1, 9)]  # eight blocks, one event each
    session = requests.Session()
    forked: list[int] = []

    def fork(value: str) -> str:
        return "0x" + Web3.keccak(text="fork" + value).hex().removeprefix("0x")

    def a_pool_node_on_another_fork(body: bytes) -> tuple[int, bytes] | None:
        calls = json.loads(body)
        logs = [c for c in calls if c["method"] == "eth_getLogs"] if isinstance(calls, list) else []
        # The second window of the range, once: answered by a node on another fork.
        if not logs or int(logs[0]["params"][0]["fromBlock"], 16) != notes[3].block_number:
            return None
        if forked:
            return None
        forked.append(1)
        answers = session.post(
            world.anvil.rpc_url, data=body, headers={"Content-Type": "application/json"}, timeout=30
        ).json()
        for call, answer in zip(calls, answers, strict=True):
            result = answer.get("result")
            if call["method"] == "eth_getLogs":
                for entry in result or []:
                    entry["blockHash"] = fork(entry["blockHash"])
            elif isinstance(result, dict):
                result["hash"] = fork(result["hash"])
        return 200, json.dumps(answers).encode()

    proxy.faults = a_pool_node_on_another_fork
    proxy.limit_log_range(3)
    env = world.env(rpc_url=proxy.url(), START_BLOCK=str(notes[0].block_number))
    run = run_main(env)
    assert forked, "the fork never answered"
    assert run.code == 0, run.stdout + run.stderr

    got = payloads(world.topic.pull_all())
    assert sorted(p["event_id"] for p in got) == sorted(
        f"31337:{n.block_hash}:{n.log_index}" for n in notes
    )
