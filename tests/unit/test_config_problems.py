"""Every invalid setting in one go (one line each, the variable first), not one per run."""

from __future__ import annotations

import pytest

from function.config import load_settings
from function.errors import ConfigError
from minimal_env import MINIMAL

GOOD = MINIMAL


def problems(**changes: str | None) -> tuple[str, ...]:
    env = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    assert raised.value.exit_code == 2
    assert str(raised.value) == "\n".join(raised.value.problems)
    return raised.value.problems


def test_every_invalid_setting_is_reported_at_once_in_declaration_order() -> None:
    found = problems(
        CHAIN_ID="abc",
        RPC_URL="ftp://node.example/key-9f8e7d",
        START_BLOCK=None,
        FIRESTORE_PROJECT_ID="Not_A_Project",
        RELAYER_BATCH_SIZE="0",
        RELAYER_HEAD="newest",
    )
    names = [p.split("=", 1)[0].split(" ", 1)[0] for p in found]
    assert names == [
        "CHAIN_ID",
        "RPC_URL",
        "START_BLOCK",
        "FIRESTORE_PROJECT_ID",
        "RELAYER_BATCH_SIZE",
        "RELAYER_HEAD",
    ]
    assert all("\n" not in p for p in found)
    assert not any("key-9f8e7d" in p for p in found)  # the RPC URL shows its host only


def test_one_invalid_setting_is_one_problem() -> None:
    assert len(problems(PUBSUB_TOPIC="projects/p/topics/t")) == 1


def test_the_follow_check_is_reported_beside_other_problems() -> None:
    found = problems(
        RELAYER_RUN_SECONDS="60", RELAYER_POLL_INTERVAL="30", RELAYER_LEASE_SECONDS="40",
        PUBSUB_TOPIC="",
    )  # fmt: skip
    assert [p.split(" ", 1)[0] for p in found] == ["PUBSUB_TOPIC", "RELAYER_LEASE_SECONDS=40"]


def test_a_follow_check_on_a_setting_already_invalid_is_not_reported_twice() -> None:
    found = problems(RELAYER_RUN_SECONDS="60", RELAYER_LEASE_SECONDS="soon")
    assert len(found) == 1 and found[0].startswith("RELAYER_LEASE_SECONDS=")


def test_prefixed_problems_name_their_relayer() -> None:
    error = ConfigError.of(["CHAIN_ID is not set", "START_BLOCK is not set"])
    assert error.prefixed("relayers[1]: ").problems == (
        "relayers[1]: CHAIN_ID is not set",
        "relayers[1]: START_BLOCK is not set",
    )
