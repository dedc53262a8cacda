"""RELAYER_ARG_FILTERS end to end: `python main.py` against the escrow on anvil and the
emulators. The escrow driver's ground truth, filtered here by the arguments it sent, is what
must arrive: every matching event once, in chain order, and nothing else.

The RPC endpoint is the recording proxy, so the test also sees the filters travel in the
eth_getLogs topics (a query per filtered event, in one batch with the unfiltered events'
query), not applied to every log afterwards.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from devstack.chain.escrow import ExpectedEvent, load_artifact
from devstack.rpcproxy import RpcProxy
from harness import (
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    run_main,
    run_until_idle,
)

TAG = "urgent-review"


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


def address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


@pytest.fixture
def proxy(deployment: Deployment) -> Iterator[RpcProxy]:
    recording = RpcProxy(deployment.anvil.rpc_url)
    yield recording
    recording.stop()


def _tag(deployment: Deployment, escrow_id: int, tag: str) -> ExpectedEvent:
    """Tag an escrow; the message a relayer must publish for it, from what was sent."""
    w3 = deployment.w3
    escrow = w3.eth.contract(address=deployment.contract, abi=load_artifact()["abi"])  # type: ignore[call-overload]
    tx = escrow.functions.tagNote(escrow_id, tag, True, b"\x01\x02").transact(
        {"from": w3.eth.accounts[3]}
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    [entry] = receipt["logs"]
    block_hash = entry["blockHash"].to_0x_hex()
    return {
        "event_id": f"31337:{block_hash}:{entry['logIndex']}",
        "chain_id": 31337,
        "contract": deployment.contract,
        "event": "NoteTagged",
        "args": {
            "escrowId": str(escrow_id),
            "tag": "0x" + keccak(text=tag).hex(),
            "urgent": True,
            "data": "0x0102",
        },
        "block_number": entry["blockNumber"],
        "block_hash": block_hash,
        "block_timestamp": w3.eth.get_block(entry["blockNumber"])["timestamp"],
        "transaction_hash": entry["transactionHash"].to_0x_hex(),
        "transaction_index": entry["transactionIndex"],
        "log_index": entry["logIndex"],
        "removed": False,
    }


def test_exactly_the_matching_events_arrive_once_in_order(
    deployment: Deployment, proxy: RpcProxy
) -> None:
    truth = deployment.make_activity(120, blocks=16, seed=7)
    created = [e for e in truth if e["event"] == "EscrowCreated"]
    funded = [e for e in truth if e["event"] == "EscrowFunded"]
    sellers = [s for s, _ in Counter(e["args"]["seller"] for e in created).most_common(2)]
    funder = Counter(e["args"]["funder"] for e in funded).most_common(1)[0][0]
    tagged = [_tag(deployment, 1, TAG), _tag(deployment, 2, "routine"), _tag(deployment, 2, TAG)]
    kept = {"EscrowCreated", "EscrowFunded", "EscrowReleased", "NoteTagged"}
    expected = [
        e
        for e in [*truth, *tagged]
        if e["event"] in kept
        and (e["event"] != "EscrowCreated" or e["args"]["seller"] in sellers)
        and (e["event"] != "EscrowFunded" or e["args"]["funder"] == funder)
        and (e["event"] != "NoteTagged" or e["args"]["tag"] == tagged[0]["args"]["tag"])
    ]
    # Every kind is there and some of each filtered kind are not: the filters decide.
    assert {e["event"] for e in expected} == kept
    assert 0 < len([e for e in expected if e["event"] == "EscrowCreated"]) < len(created)
    assert 0 < len([e for e in expected if e["event"] == "EscrowFunded"]) < len(funded)
    assert any(e["event"] == "NoteTagged" for e in truth)  # random tags the filter leaves out
    filters = (
        f"EscrowCreated.seller={sellers[0]}|{sellers[1].lower()}; EscrowFunded.funder={funder};"
        f"NoteTagged.tag={TAG}"
    )
    env = deployment.env(
        RPC_URL=proxy.url(),
        RELAYER_EVENTS=",".join(sorted(kept)),
        RELAYER_ARG_FILTERS=filters,
        RELAYER_BATCH_SIZE="5",
        RELAYER_CHECKPOINT_INTERVAL="2",
    )

    runs = run_until_idle(env)

    got = payloads(deployment.topic.pull_all())
    assert_exactly_once(got, expected)
    assert [p["event_id"] for p in got] == [e["event_id"] for e in expected]  # chain order
    assert sum(r.summary["events_published"] for r in runs) == len(expected)
    # The filters travel in the topics: each window's request holds the unfiltered events'
    # query and one per filtered event, each after a copy of the window end's header.
    queries = Counter(
        (c.request, json.dumps(c.params[0]["topics"]))
        for c in proxy.calls
        if c.method == "eth_getLogs"
    )
    assert set(queries.values()) == {1}
    by_request = Counter(request for request, _ in queries)
    assert set(by_request.values()) == {4}
    sent = {topics for _, topics in queries}
    assert sent == {
        json.dumps([[topic0("EscrowReleased(uint256,address,uint256)")]]),
        json.dumps(
            [
                [topic0("EscrowCreated(uint256,address,address,uint256,string,bytes32,address[])")],
                None,
                None,
                sorted(address_topic(s) for s in sellers),
            ]
        ),
        json.dumps(
            [
                [topic0("EscrowFunded(uint256,address,uint256,uint256)")],
                None,
                [address_topic(funder)],
            ]
        ),
        json.dumps(
            [
                [topic0("NoteTagged(uint256,string,bool,bytes)")],
                None,
                ["0x" + keccak(text=TAG).hex()],
            ]
        ),
    }


def test_a_filter_the_abi_refutes_stops_the_start_with_exit_2(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.make_activity(5, blocks=1)
    run = run_main(
        deployment.env(
            RELAYER_ARG_FILTERS="EscrowCreated.amount=5;EscrowFunded.funder=0x12;Escrow.id=1"
        )
    )
    assert run.code == 2, run.stdout + run.stderr
    error = run.summary["message"].removeprefix("run failed: ")
    assert relayer_doc(deployment.relayer_id)["last_run"]["error"] == error  # for status
    assert error.splitlines() == [
        "RELAYER_ARG_FILTERS part 'EscrowCreated.amount=5': argument amount of EscrowCreated is "
        "not indexed: only indexed arguments are topics eth_getLogs can filter on, in every "
        "layout of the event; EscrowCreated's indexed arguments: escrowId, buyer, seller",
        "RELAYER_ARG_FILTERS part 'EscrowFunded.funder=0x12': value '0x12' does not fit "
        "EscrowFunded.funder (address): expected an address: 0x followed by 40 hex digits",
        f"RELAYER_ARG_FILTERS part 'Escrow.id=1': the ABI at {deployment.abi_uri} has no event "
        "Escrow; it defines: DisputeRaised, EscrowCreated, EscrowFunded, EscrowRefunded, "
        "EscrowReleased, NoteTagged",
    ]
    assert deployment.topic.pull_all() == []
    # From a relayers file too, named by its entry.
    config = tmp_path / "relayers.yaml"
    config.write_text("relayers:\n  - RELAYER_ARG_FILTERS: {EscrowCreated.memo: hello}\n")
    run = run_main(deployment.env(RELAYER_CONFIG=str(config)))
    assert run.code == 2, run.stdout + run.stderr
    assert "RELAYER_ARG_FILTERS part 'EscrowCreated.memo=hello'" in run.summary["message"]
