"""Configuration parsing: defaults, validation, and messages that name the variable."""

from __future__ import annotations

import pytest

from function.config import load_settings
from function.errors import ConfigError

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SECRET_URL = "https://eth-sepolia.example.com/v2/sk_live_SECRETKEY?token=hunter2"
BASE = {
    "CHAIN_ID": "11155111",
    "RPC_URL": SECRET_URL,
    "CONTRACT_ADDRESS": ADDRESS,
    "ABI_URI": "gs://abis/escrow.json",
    "PUBSUB_PROJECT_ID": "my-project",
    "PUBSUB_TOPIC": "settlement.events.v1",
    "START_BLOCK": "9505700",
}


def settings(**overrides: str):  # type: ignore[no-untyped-def]
    env = dict(BASE)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return load_settings(env)


def test_defaults_follow_the_contract() -> None:
    s = settings()
    assert s.chain_id == 11155111
    assert s.rpc_urls == (SECRET_URL,)
    assert s.contracts == (ADDRESS,)
    assert (s.batch_size, s.checkpoint_interval, s.poll_interval_s) == (1000, 100, 60.0)
    assert (s.confirmations, s.lease_s, s.event_ttl_days) == (12, 300.0, 30.0)
    assert s.relayer_id == f"11155111-{ADDRESS.lower()}"
    assert (s.firestore_project, s.firestore_database) == ("my-project", "(default)")
    assert (s.ordering, s.head, s.events, s.deadletter_topic) == (True, "latest", (), None)
    assert (s.log_level, s.log_format) == ("INFO", "json")


def test_lists_and_overrides() -> None:
    s = settings(
        RPC_URL="https://a.example/k1, https://b.example:8545/k2",
        CONTRACT_ADDRESS=f"{ADDRESS.lower()},0x0000000000000000000000000000000000000001",
        RELAYER_EVENTS="EscrowCreated, EscrowFunded",
        RELAYER_LEASE_SECONDS="0.5",
        RELAYER_ORDERING="false",
        RELAYER_HEAD="finalized",
        FIRESTORE_PROJECT_ID="state-project",
        RELAYER_ID="escrow-sepolia",
    )
    assert s.rpc_hosts == ("a.example", "b.example:8545")
    assert s.contracts == (ADDRESS, "0x0000000000000000000000000000000000000001")
    assert s.events == ("EscrowCreated", "EscrowFunded")
    assert (s.lease_s, s.ordering, s.head) == (0.5, False, "finalized")
    assert (s.firestore_project, s.relayer_id) == ("state-project", "escrow-sepolia")


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"CHAIN_ID": None}, "CHAIN_ID is not set"),
        ({"CHAIN_ID": "sepolia"}, "CHAIN_ID='sepolia'"),
        ({"CHAIN_ID": "0"}, "CHAIN_ID='0'"),
        ({"RPC_URL": ""}, "RPC_URL is not set"),
        ({"CONTRACT_ADDRESS": "0x1234"}, "CONTRACT_ADDRESS='0x1234'"),
        ({"CONTRACT_ADDRESS": ADDRESS.replace("F", "f", 1)}, "EIP-55 checksum"),
        ({"ABI_URI": None}, "ABI_URI is not set"),
        ({"ABI_URI": "gs://bucket-only"}, "ABI_URI="),
        ({"PUBSUB_TOPIC": "projects/p/topics/t"}, "id alone"),
        ({"PUBSUB_TOPIC": "x"}, "PUBSUB_TOPIC='x'"),
        ({"PUBSUB_PROJECT_ID": None}, "PUBSUB_PROJECT_ID is not set"),
        ({"START_BLOCK": "-1"}, "START_BLOCK='-1'"),
        ({"START_BLOCK": None}, "START_BLOCK is not set"),
        ({"RELAYER_BATCH_SIZE": "0"}, "RELAYER_BATCH_SIZE='0'"),
        ({"RELAYER_CHECKPOINT_INTERVAL": "ten"}, "RELAYER_CHECKPOINT_INTERVAL='ten'"),
        ({"RELAYER_POLL_INTERVAL": "-5"}, "RELAYER_POLL_INTERVAL='-5'"),
        ({"RELAYER_CONFIRMATIONS": "-1"}, "RELAYER_CONFIRMATIONS='-1'"),
        ({"RELAYER_LEASE_SECONDS": "0"}, "RELAYER_LEASE_SECONDS='0'"),
        ({"RELAYER_LEASE_SECONDS": "nan"}, "RELAYER_LEASE_SECONDS='nan'"),
        ({"RELAYER_ORDERING": "maybe"}, "RELAYER_ORDERING='maybe'"),
        ({"RELAYER_HEAD": "pending"}, "RELAYER_HEAD='pending'"),
        ({"RELAYER_EVENTS": "Escrow Created"}, "RELAYER_EVENTS='Escrow Created'"),
        ({"RELAYER_ID": "a/b"}, "RELAYER_ID='a/b'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml'"),
    ],
)
def test_bad_values_name_the_variable(overrides: dict[str, str | None], names: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**overrides)  # type: ignore[arg-type]
    message = str(raised.value)
    assert names in message
    assert "\n" not in message
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    "url",
    [
        "ftp://eth.example.com/v2/sk_live_SECRETKEY",
        "https:///v2/sk_live_SECRETKEY",
        "https://eth.example.com:notaport/sk_live_SECRETKEY",
        "eth.example.com/sk_live_SECRETKEY",
    ],
)
def test_bad_rpc_url_never_shows_the_key(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(RPC_URL=f"https://ok.example/first,{url}")
    assert "RPC_URL" in str(raised.value)
    assert "SECRETKEY" not in str(raised.value)
