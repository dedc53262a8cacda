"""Review of 118b5e9 on anvil: `python main.py` and `relayer verify` reading by address alone.

Two contracts, an ABI merged from two comma-separated ABI_URIs (ERC20's and ERC721's
`Transfer`, one topic0 with two layouts), RELAYER_INCLUDE=transaction and a dead-letter
topic: only the logs the ABI reads are relayed, each once and in order, with its transaction;
a log with a named topic0 that fits no layout is dead-lettered, as it was when the node
returned it for its topic0; logs of events the ABI lacks and logs without topics are passed
over. `relayer verify` then agrees with the processed-event set.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_hostile_logs import (
    ALICE,
    BOB,
    ERC20_TRANSFER,
    ERC721_TRANSFER,
    TRANSFER,
    addr,
    dead_letter_topic,
    emitter_world,
    event_id,
    topic0,
    word,
    write_abi,
)
from web3 import Web3

from devstack.chain.emitter import Emitter
from devstack.stack.clients import PubSubTopic
from harness import Deployment, payloads, run_cli, run_main

UPGRADED = topic0("Upgraded(address)")  # no ABI here has it
__all__ = ["dead_letter_topic", "emitter_world"]  # fixtures, used by name


def test_two_contracts_merged_abis_transactions_and_dead_letters_read_by_address(
    emitter_world: tuple[Emitter, Deployment], tmp_path: Path, dead_letter_topic: PubSubTopic
) -> None:
    emitter, world = emitter_world
    other = Emitter.deploy(world.w3)
    erc20, _up, _bare, misfit = emitter.emit(
        [
            ([TRANSFER, word(addr(ALICE)), word(addr(BOB))], word(10)),
            ([UPGRADED, word(addr(ALICE))], b""),
            ([], word(1)),
            ([TRANSFER, word(addr(ALICE))], word(3)),  # 1 indexed topic: no layout has it
        ]
    )
    _up2, erc721 = other.emit(
        [
            ([UPGRADED, word(addr(BOB))], b""),
            ([TRANSFER, word(addr(BOB)), word(addr(ALICE)), word(42)], b""),
        ]
    )
    erc20_abi = write_abi(tmp_path, "erc20", [ERC20_TRANSFER])
    erc721_abi = write_abi(tmp_path, "erc721", [ERC721_TRANSFER])
    env = world.env(
        ABI_URI=f"{erc20_abi},{erc721_abi}",
        CONTRACT_ADDRESS=f"{emitter.address},{other.address}",
        RELAYER_INCLUDE="transaction",
        RELAYER_DEADLETTER_TOPIC=dead_letter_topic.topic_id,
    )

    run = run_main(env)
    assert run.code == 0, run.stdout + run.stderr
    # two ordering keys (one per contract): Pub/Sub orders within each, not across them
    got = sorted(
        payloads(world.topic.pull_all()), key=lambda m: (m["block_number"], m["log_index"])
    )
    assert [m["event_id"] for m in got] == [event_id(erc20), event_id(erc721)]
    assert [m["args"] for m in got] == [
        {"from": ALICE, "to": BOB, "value": "10"},
        {"from": BOB, "to": ALICE, "tokenId": "42"},
    ]
    sender = Web3.to_checksum_address(world.w3.eth.accounts[0])
    assert all(m["transaction"]["from"] == sender for m in got)
    assert all(m["transaction"]["status"] == 1 for m in got)
    dead = [json.loads(m.data) for m in dead_letter_topic.pull_all(idle_s=0.5, at_least=1)]
    assert [d["event_id"] for d in dead] == [event_id(misfit)], dead
    assert "indexed topics" in dead[0]["reason"]

    verify = run_cli(env, "verify", "--from-block", "0", "--to-block", str(world.head()), "--json")
    assert verify.code == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout.strip().splitlines()[-1])
    # the two relayed events and the dead letter; nothing of the passed-over logs
    assert report["on_chain"] == 3 and report["missing"] == [] and report["stray"] == []
