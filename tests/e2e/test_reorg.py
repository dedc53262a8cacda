"""Chain reorganisations made with anvil's own tools, relayed through `python main.py`.

After a reorganisation the subscriber must hold, for every orphaned event, a retraction
with the same event id and `"removed": true`, and every event of the new canonical chain
exactly once; nothing older may move.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from devstack.chain.escrow import ExpectedEvent
from harness import Deployment, block_docs, payloads, relayer_doc, run_main, run_until_idle


def _rpc(deployment: Deployment, method: str, params: list[Any]) -> Any:
    answer = deployment.w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in answer, answer
    return answer["result"]


def _relay_all(deployment: Deployment, **overrides: str) -> dict[str, str]:
    env = deployment.env(RELAYER_CHECKPOINT_INTERVAL="3", **overrides)
    run_until_idle(env)
    return env


def _moved(deployment: Deployment, event: ExpectedEvent) -> ExpectedEvent:
    """Where the chain now says this event's transaction put it (from the receipt)."""
    receipt = deployment.w3.eth.get_transaction_receipt(event["transaction_hash"])  # type: ignore[arg-type]
    block = deployment.w3.eth.get_block(receipt["blockNumber"])
    ours = [x for x in receipt["logs"] if x["address"] == deployment.contract]
    old_position = [
        e for e in deployment.expected if e["transaction_hash"] == event["transaction_hash"]
    ].index(event)
    entry = ours[old_position]
    block_hash = block["hash"].to_0x_hex()
    moved = dict(event)
    moved.update(
        event_id=f"31337:{block_hash}:{entry['logIndex']}",
        block_number=receipt["blockNumber"],
        block_hash=block_hash,
        block_timestamp=block["timestamp"],
        transaction_index=receipt["transactionIndex"],
        log_index=entry["logIndex"],
    )
    return moved  # type: ignore[return-value]


def _check(
    deployment: Deployment,
    got: list[dict[str, Any]],
    orphaned: list[ExpectedEvent],
    canonical: list[ExpectedEvent],
) -> None:
    retracted = [p for p in got if p["removed"]]
    assert sorted(p["event_id"] for p in retracted) == sorted(e["event_id"] for e in orphaned)
    for p in retracted:
        assert p == {**next(e for e in orphaned if e["event_id"] == p["event_id"]), "removed": True}
    # Each event went out once as it happened; the orphaned ones then once more, retracted.
    live = Counter(p["event_id"] for p in got if not p["removed"])
    assert max(live.values()) == 1
    assert set(live) == {e["event_id"] for e in canonical + orphaned}
    by_id = {p["event_id"]: p for p in got if not p["removed"]}
    for e in canonical:
        assert by_id[e["event_id"]] == e
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == deployment.head() + 1
    states = {
        e["event_id"]: e["state"] for d in block_docs(deployment.relayer_id) for e in d["events"]
    }
    assert all(states[e["event_id"]] == "removed" for e in orphaned)
    assert all(states[e["event_id"]] == "published" for e in canonical)


@pytest.mark.parametrize("depth", [1, 2, 5, 10])
def test_logs_of_orphaned_blocks_are_retracted(deployment: Deployment, depth: int) -> None:
    deployment.expected = deployment.make_activity(80, blocks=14)
    env = _relay_all(deployment)
    first = payloads(deployment.topic.pull_all())
    head = deployment.head()

    _rpc(deployment, "anvil_reorg", [depth, []])  # the last `depth` blocks, their logs gone
    assert deployment.head() == head
    runs = run_until_idle(env)

    orphaned = [e for e in deployment.expected if e["block_number"] > head - depth]
    kept = [e for e in deployment.expected if e["block_number"] <= head - depth]
    assert orphaned, "the scenario must have events in the reorganised blocks"
    reorg = runs[0].summary["reorg"]
    assert reorg["retracted"] == len(orphaned)
    assert reorg["ancestor"] <= head - depth
    _check(deployment, first + payloads(deployment.topic.pull_all()), orphaned, kept)
    assert relayer_doc(deployment.relayer_id)["totals"]["events_retracted"] == len(orphaned)


def test_a_log_that_moves_to_another_block(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(40, blocks=8)
    env = _relay_all(deployment)
    first = payloads(deployment.topic.pull_all())
    head = deployment.head()
    # Orphan from the newest block with events below the head; its first transaction (whose
    # sender's nonce fits the ancestor's state) comes back one block later.
    fork = max(e["block_number"] for e in deployment.expected if e["block_number"] < head)
    depth = head - fork + 1
    first_orphaned = [e for e in deployment.expected if e["block_number"] == fork]
    moving = min(first_orphaned, key=lambda e: e["transaction_index"])["transaction_hash"]
    raw = _rpc(deployment, "eth_getRawTransactionByHash", [moving])

    _rpc(deployment, "anvil_reorg", [depth, [[raw, 1]]])
    run_until_idle(env)

    orphaned = [e for e in deployment.expected if e["block_number"] >= fork]
    moved = [_moved(deployment, e) for e in orphaned if e["transaction_hash"] == moving]
    assert moved and all(m["block_number"] == fork + 1 for m in moved)
    kept = [e for e in deployment.expected if e["block_number"] < fork]
    _check(deployment, first + payloads(deployment.topic.pull_all()), orphaned, kept + moved)


def test_a_transaction_replaced_by_another(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(30, blocks=6)
    env = _relay_all(deployment)
    first = payloads(deployment.topic.pull_all())
    head = deployment.head()
    _rpc(deployment, "anvil_reorg", [2, []])
    # Another escrow activity lands in new blocks instead of the orphaned ones.
    replacement = deployment.make_activity(10, blocks=2, seed=99)
    run_until_idle(env)

    orphaned = [e for e in deployment.expected if e["block_number"] > head - 2]
    kept = [e for e in deployment.expected if e["block_number"] <= head - 2]
    _check(deployment, first + payloads(deployment.topic.pull_all()), orphaned, kept + replacement)


def test_a_reorganisation_deeper_than_recorded_fails_loudly(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(20, blocks=4)
    env = _relay_all(deployment)
    before = relayer_doc(deployment.relayer_id)
    # Forget the recorded hashes and the block records: the relayer can no longer find
    # where the chains part.
    from google.cloud import firestore

    relayer = (
        firestore.Client(project="relayer-test")
        .collection("relayers")
        .document(deployment.relayer_id)
    )
    relayer.update({"recent_blocks": before["recent_blocks"][-1:]})
    for snapshot in relayer.collection("blocks").stream():
        snapshot.reference.delete()
    _rpc(deployment, "anvil_reorg", [3, []])

    run = run_main(env)

    assert run.code == 1
    assert run.summary["outcome"] == "failed"
    assert "deeper than the blocks this relayer recorded" in run.summary["message"]
    after = relayer_doc(deployment.relayer_id)
    assert after["next_block"] == before["next_block"]  # nothing skipped, nothing rewound
    assert after["last_run"]["outcome"] == "failed"
    assert not [p for p in payloads(deployment.topic.pull_all()) if p["removed"]]


def test_a_reorganisation_deeper_than_the_kept_hashes_finds_its_ancestor_in_the_records(
    deployment: Deployment,
) -> None:
    # recent_blocks keeps 128 hashes; a fork below the oldest of them is still found from
    # the block records (their ids name relayed blocks), instead of failing every run.
    deployment.expected = deployment.make_activity(400, blocks=200)
    env = _relay_all(deployment)
    first = payloads(deployment.topic.pull_all())
    recent = [int(r.split(":")[0]) for r in relayer_doc(deployment.relayer_id)["recent_blocks"]]
    head = deployment.head()
    depth = head - min(recent) + 3  # below every kept hash
    assert any(d["block_number"] <= head - depth for d in block_docs(deployment.relayer_id))

    _rpc(deployment, "anvil_reorg", [depth, []])
    runs = run_until_idle(env)

    orphaned = [e for e in deployment.expected if e["block_number"] > head - depth]
    kept = [e for e in deployment.expected if e["block_number"] <= head - depth]
    assert orphaned and runs[0].summary["reorg"]["retracted"] == len(orphaned)
    _check(deployment, first + payloads(deployment.topic.pull_all()), orphaned, kept)


def test_a_reorganisation_over_blocks_without_events_rewinds_to_their_ancestor(
    deployment: Deployment,
) -> None:
    # A relayer whose blocks so far held no event has no block record and, before the
    # range's tail hashes were kept, only its checkpoint block's hash: a reorganisation of
    # that block found no ancestor and failed every run until a `relayer reset`.
    start = deployment.head() + 1
    _rpc(deployment, "anvil_mine", [6])
    env = _relay_all(deployment, START_BLOCK=str(start))
    head = deployment.head()
    assert relayer_doc(deployment.relayer_id)["next_block"] == head + 1

    _rpc(deployment, "anvil_reorg", [2, []])
    runs = run_until_idle(env)

    assert runs[0].code == 0, runs[0].summary
    reorg = runs[0].summary["reorg"]
    assert reorg["ancestor"] == head - 2 and reorg["retracted"] == 0
    assert relayer_doc(deployment.relayer_id)["next_block"] == deployment.head() + 1
    assert not payloads(deployment.topic.pull_all())
