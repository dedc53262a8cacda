"""Which configurations may use a relayer's stored state (function/core/identity.py)."""

from __future__ import annotations

from function.core.identity import Identity, judge

A = "0x" + "A" * 40
B = "0x" + "B" * 40
C = "0x" + "C" * 40


def me(*contracts: str, relayer_id: str = "", default_id: bool = True) -> Identity:
    return Identity(relayer_id or f"1-{contracts[0].lower()}", 1, contracts, default_id, "t")


def test_a_first_run_with_nothing_stored_anywhere_may_start() -> None:
    assert judge(me(A, B), None, []).refused is None


def test_reordered_addresses_under_the_default_id_are_refused_and_name_the_old_state() -> None:
    old = (f"1-{A.lower()}", {"chain_id": 1, "contracts": [A, B], "next_block": 500})
    verdict = judge(me(B, A), None, [old])
    assert verdict.refused is not None
    assert f"RELAYER_ID=1-{A.lower()}" in verdict.refused
    assert "next block 500" in verdict.refused
    assert "START_BLOCK" in verdict.refused


def test_an_address_added_in_front_is_refused() -> None:
    old = (f"1-{A.lower()}", {"chain_id": 1, "contracts": [A], "next_block": 9})
    assert judge(me(C, A), None, [old]).refused is not None


def test_other_chains_and_unrelated_contracts_do_not_count() -> None:
    others = [
        ("x", {"chain_id": 5, "contracts": [A]}),
        ("y", {"chain_id": 1, "contracts": [C]}),
        ("z", {"chain_id": 1}),  # written before contracts were stored
    ]
    assert judge(me(A, B), None, others).refused is None


def test_a_chosen_relayer_id_may_start_beside_another_relayer_of_the_same_contract() -> None:
    old = (f"1-{A.lower()}", {"chain_id": 1, "contracts": [A]})
    assert judge(me(A, relayer_id="alerts", default_id=False), None, [old]).refused is None


def test_an_added_contract_is_refused_with_its_checkpoint_and_the_fixes() -> None:
    stored = {"chain_id": 1, "contracts": [A], "next_block": 700}
    verdict = judge(me(A, C), stored)
    assert verdict.refused is not None
    assert C in verdict.refused and "block 700" in verdict.refused
    assert "relayer contracts --accept" in verdict.refused
    assert "RELAYER_CONFIG" in verdict.refused


def test_the_same_set_in_another_order_or_case_is_the_same_state() -> None:
    stored = {"chain_id": 1, "contracts": [A.lower(), B], "next_block": 700}
    verdict = judge(me(B, A), stored)
    assert verdict.refused is None and verdict.dropped == ()


def test_a_dropped_contract_is_allowed_and_named() -> None:
    stored = {"chain_id": 1, "contracts": [A, B], "next_block": 700}
    verdict = judge(me(A), stored)
    assert verdict.refused is None and verdict.dropped == (B,)


def test_state_of_another_chain_is_refused() -> None:
    stored = {"chain_id": 5, "contracts": [A], "next_block": 7}
    verdict = judge(me(A, relayer_id="shared", default_id=False), stored)
    assert verdict.refused is not None and "CHAIN_ID=1" in verdict.refused


def test_state_without_stored_contracts_is_not_judged() -> None:
    assert judge(me(A, C), {"chain_id": 1, "next_block": 3}).refused is None


def test_an_id_in_another_case_than_an_existing_state_is_refused() -> None:
    old = (f"1-{A.lower()}", {"chain_id": 1, "contracts": [A], "next_block": 9})
    verdict = judge(me(A, relayer_id=f"1-{A}", default_id=False), None, [old])
    assert verdict.kind == "case" and f"RELAYER_ID=1-{A.lower()}" in (verdict.refused or "")


def test_a_failed_starts_summary_is_no_state_and_does_not_hide_a_reorder() -> None:
    old = (f"1-{A.lower()}", {"chain_id": 1, "contracts": [A, B], "next_block": 500})
    left = {"last_run": {"outcome": "failed"}}  # what a start that failed wrote
    assert judge(me(B, A), left, [old]).kind == "reordered"


def test_a_shadow_relayer_under_its_own_name_does_not_block_the_production_one() -> None:
    shadow = ("shadow", {"chain_id": 1, "contracts": [A], "next_block": 9, "topic": "t-shadow"})
    assert judge(me(A), None, [shadow]).refused is None


def test_a_relayer_of_the_same_addresses_publishing_elsewhere_is_another_relayer() -> None:
    other = (
        f"1-{B.lower()}",
        {"chain_id": 1, "contracts": [B, A], "next_block": 7, "topic": "projects/p/topics/x"},
    )
    mine = Identity(f"1-{A.lower()}", 1, (A, B), True, "projects/p/topics/y")
    assert judge(mine, None, [other]).refused is None
    same = Identity(f"1-{A.lower()}", 1, (A, B), True, "projects/p/topics/x")
    assert judge(same, None, [other]).kind == "reordered"
