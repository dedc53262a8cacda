"""Hostile re-review of the identity guard (5ffa778): configurations that still start an
existing relayer over from START_BLOCK, and a backfill that skips the TTL check for history
that was relayed. Each test states what should hold; they fail on 5ffa778."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from function.core.identity import Identity, judge

A = "0x" + "A" * 40
B = "0x" + "B" * 40
C = "0x" + "C" * 40
TOPIC = "projects/p/topics/t"


def default(*contracts: str) -> Identity:
    return Identity(f"1-{contracts[0].lower()}", 1, contracts, True, TOPIC)


def test_dropping_the_first_address_under_the_default_id_does_not_start_over() -> None:
    # README: "an address dropped: allowed ... stores the new set". Dropping the FIRST one
    # moves the default id to 1-b, a state that does not exist: B's whole history again.
    old = (
        f"1-{A.lower()}",
        {"chain_id": 1, "contracts": [A, B], "next_block": 500, "topic": TOPIC},
    )
    assert judge(default(B), None, [old]).refused is not None


def test_replacing_the_first_address_does_not_start_the_others_over() -> None:
    # A contract upgrade: A replaced by C in front, B kept: default id 1-c, B from START_BLOCK.
    old = (
        f"1-{A.lower()}",
        {"chain_id": 1, "contracts": [A, B], "next_block": 500, "topic": TOPIC},
    )
    assert judge(default(C, B), None, [old]).refused is not None


def test_unpinning_a_relayer_id_does_not_start_over() -> None:
    # README step 1 pins RELAYER_ID; a later deploy that loses the pin names 1-a, a new state,
    # although relayer "prod" relays the very same set to the very same topic.
    pinned = ("prod", {"chain_id": 1, "contracts": [A], "next_block": 500, "topic": TOPIC})
    assert judge(default(A), None, [pinned]).refused is not None


def test_a_backfill_of_a_dropped_then_readded_contract_keeps_the_ttl_check() -> None:
    # C relayed from START_BLOCK=0 to block 199, dropped (a run stores [A]; every run keeps
    # `contracts_seen`), re-added with `relayer contracts --accept` at block 300: C is no new
    # contract, so --accept records no start for it, and a backfill of 0..299 keeps the TTL
    # check for 0..199, which WAS relayed.
    from function.core.identity import newly_added
    from function.ops.cli import _relayed_from

    stored: dict[str, Any] = {"contracts": [A], "contracts_seen": [A.lower(), C.lower()],
                              "next_block": 300}  # fmt: skip
    added = newly_added(stored, (A, C), 300)
    assert added == {}
    after = {**stored, "contracts": [A, C], "contracts_added": added}
    settings = cast(Any, SimpleNamespace(contracts=(C,), start_block=0))
    assert _relayed_from(settings, after) == 0
    # A contract never relayed before does begin where it was accepted.
    assert newly_added(stored, (A, B), 300) == {B.lower(): 300}


def test_a_second_fleet_entry_listing_a_relayed_contract_second_is_told_how_to_start() -> None:
    # RELAYER_CONFIG: entry 1 relays A (1-a); entry 2 relays B and A (own events or filters),
    # default id 1-b, same topic. From the state alone this is "an address added in front"
    # of 1-a's (what issue 15 asks to refuse), so it is refused, and the refusal names the
    # way to start a second relayer on purpose: `relayer contracts --new`.
    entry1 = (f"1-{A.lower()}", {"chain_id": 1, "contracts": [A], "next_block": 50, "topic": TOPIC})
    verdict = judge(default(B, A), None, [entry1])
    assert verdict.refused is not None and "relayer contracts --new" in verdict.refused


def test_a_first_run_that_failed_after_taking_the_lease_relayed_nothing() -> None:
    # acquire() writes chain_id and contracts with the lease, before any checkpoint: a first
    # run that fails then (RPC down) leaves contracts and no next_block. Adding a contract
    # now is refused as if its history before "its checkpoint" would be lost; there is none.
    left = {"chain_id": 1, "contracts": [A], "lease": {}, "last_run": {"outcome": "failed"}}
    assert judge(default(A, C), left).refused is None


def test_contracts_left_by_a_lease_without_a_checkpoint_do_not_hide_a_reorder() -> None:
    # A first deployment as B,A failed after taking the lease (1-b: contracts, no
    # next_block); the operator fixed it as A,B and 1-a relayed to block 500; reverting to
    # B,A now finds 1-b "a state" of the same set, never consults 1-a, and starts over.
    left = {"chain_id": 1, "contracts": [B, A], "topic": TOPIC, "last_run": {"outcome": "failed"}}
    prod = (
        f"1-{A.lower()}",
        {"chain_id": 1, "contracts": [A, B], "next_block": 500, "topic": TOPIC},
    )
    assert judge(default(B, A), left, [prod]).refused is not None
