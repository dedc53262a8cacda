"""Review 16 (RELAYER_FACTORY), hostile: the identity guard (`core.identity`) over a relayer
named after its factory.

A relayer of RELAYER_FACTORY alone is named `{CHAIN_ID}-{factory}` by default (README,
RELAYER_ID). Setting CONTRACT_ADDRESS later (README: "CONTRACT_ADDRESS may stay unset; set,
its contracts are relayed too") renames it `{CHAIN_ID}-{first contract}`: a new state that
starts again from START_BLOCK with no records, so every child's history is published a
second time. The guard exists for exactly this (a default id that moved, README: Adding a
contract), but it compares CONTRACT_ADDRESS alone, which the factory relayer left empty."""

from __future__ import annotations

from function.config import load_settings
from function.core.identity import judge
from function.ops.wiring import identity_of
from minimal_env import MINIMAL

FACTORY = "0x" + "fa" * 20
OTHER = "0x" + "22" * 20


def env(**values: str | None) -> dict[str, str]:
    out = {**MINIMAL, "RELAYER_FACTORY": f"{FACTORY}:PairCreated:pair"}
    for name, value in values.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def stored_doc(settings_env: dict[str, str]) -> tuple[str, dict[str, object]]:
    """The relayer document a configuration's runs leave (identity fields, a checkpoint)."""
    me = identity_of(load_settings(settings_env))
    return me.relayer_id, {**me.fields(), "next_block": 18_000_000}


def test_setting_contract_address_on_a_factory_relayer_does_not_start_it_again() -> None:
    old_id, old = stored_doc(env(CONTRACT_ADDRESS=None))
    assert old_id == f"31337-{FACTORY}"
    me = identity_of(load_settings(env(CONTRACT_ADDRESS=OTHER)))
    assert me.relayer_id != old_id  # the default id moved with the first contract
    verdict = judge(me, None, [(old_id, old)])
    assert verdict.refused is not None, (
        f"a new state {me.relayer_id} from START_BLOCK beside {old_id}, which relays the same "
        "factory's children to the same topic: their whole history published again"
    )


def test_dropping_contract_address_from_a_factory_relayer_does_not_start_it_again() -> None:
    old_id, old = stored_doc(env(CONTRACT_ADDRESS=OTHER))
    me = identity_of(load_settings(env(CONTRACT_ADDRESS=None)))
    assert me.relayer_id == f"31337-{FACTORY}" != old_id
    assert judge(me, None, [(old_id, old)]).refused is not None
