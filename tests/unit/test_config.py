"""Configuration parsing: defaults, validation, and messages that name the variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from function.config import load_runtime, load_settings
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
    assert s.run_s == 0.0  # one batch, then exit
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


# Values Python's int()/float() accept, or that parse and then overflow later in a run (a
# datetime past year 9999, an int64 in Firestore, a chain id no node serves): each stops the
# start with the variable, the value and the accepted range.
TOO_BIG_OR_SLOPPY = [
    ("CHAIN_ID", "4503599627370477", "from 1 to 4503599627370476"),
    ("CHAIN_ID", "1_0", "from 1 to 4503599627370476"),
    ("CHAIN_ID", "+1", "digits 0-9 only"),
    ("CHAIN_ID", "١٢", "digits 0-9 only"),
    ("CHAIN_ID", " 1", "digits 0-9 only"),
    ("CHAIN_ID", "1\t", "digits 0-9 only"),
    ("CHAIN_ID", "1" * 5000, "from 1 to"),
    ("START_BLOCK", str(2**63), "from 0 to 9223372036854775807"),
    ("START_BLOCK", "1e3", "from 0 to 9223372036854775807"),
    ("START_BLOCK", "٣", "digits 0-9 only"),
    ("RELAYER_BATCH_SIZE", str(2**63), "from 1 to 9223372036854775807"),
    ("RELAYER_BATCH_SIZE", "1_000", "from 1 to 9223372036854775807"),
    ("RELAYER_CHECKPOINT_INTERVAL", "99999999999999999999", "from 1 to 9223372036854775807"),
    ("RELAYER_CHECKPOINT_INTERVAL", "+5", "digits 0-9 only"),
    ("RELAYER_CONFIRMATIONS", str(2**64), "from 0 to 9223372036854775807"),
    ("RELAYER_CONFIRMATIONS", "١٢", "digits 0-9 only"),
    ("RELAYER_MAX_LAG_BLOCKS", str(2**63), "from 1 to 9223372036854775807"),
    ("RELAYER_MAX_LAG_BLOCKS", "0", "from 1 to 9223372036854775807"),
    ("RELAYER_POLL_INTERVAL", "inf", "at most 2.592e+06"),
    ("RELAYER_POLL_INTERVAL", "nan", "at most 2.592e+06"),
    ("RELAYER_POLL_INTERVAL", "1e400", "at most 2.592e+06"),
    ("RELAYER_POLL_INTERVAL", "1e12", "at most 2.592e+06"),
    ("RELAYER_LEASE_SECONDS", "1e12", "at most 604800"),
    ("RELAYER_LEASE_SECONDS", "604800.5", "at most 604800"),
    ("RELAYER_LEASE_SECONDS", "infinity", "at most 604800"),
    ("RELAYER_LEASE_SECONDS", "1_0", "at most 604800"),
    ("RELAYER_LEASE_SECONDS", "+30", "at most 604800"),
    ("RELAYER_LEASE_SECONDS", "٣٠", "at most 604800"),
    ("RELAYER_LEASE_SECONDS", "1e-400", "above 0"),
    ("RELAYER_LEASE_SECONDS", "30 ", "above 0"),
    ("RELAYER_EVENT_TTL_DAYS", "3000000", "at most 36500"),
    ("RELAYER_EVENT_TTL_DAYS", "36500.01", "at most 36500"),
    ("RELAYER_EVENT_TTL_DAYS", "-inf", "at most 36500"),
    ("RELAYER_EVENT_TTL_DAYS", "NaN", "at most 36500"),
    ("RELAYER_RUN_SECONDS", "-1", "0 (off) or a number of seconds at most 604800"),
    ("RELAYER_RUN_SECONDS", "604800.5", "at most 604800"),
    ("RELAYER_RUN_SECONDS", "1e-400", "0 (off)"),  # reads as 0, but is not written as one
    ("RELAYER_RUN_SECONDS", "inf", "at most 604800"),
    ("RELAYER_RUN_SECONDS", "1_0", "at most 604800"),
    ("RELAYER_RUN_SECONDS", "60s", "at most 604800"),
]


@pytest.mark.parametrize(("name", "value", "expected"), TOO_BIG_OR_SLOPPY)
def test_numbers_out_of_range_or_sloppy_stop_the_start(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**{name: value})
    message = str(raised.value)
    shown = value if len(value) <= 80 else value[:77] + "..."
    assert message.startswith(f"{name}={shown!r} is invalid: expected "), message
    assert expected in message
    assert "\n" not in message and len(message) < 200
    assert raised.value.exit_code == 2


# The bounds themselves are accepted: nothing an operator could mean is refused.
AT_THE_BOUNDS = [
    ("CHAIN_ID", "4503599627370476", "chain_id", 4503599627370476),
    ("CHAIN_ID", "0031337", "chain_id", 31337),
    ("START_BLOCK", str(2**63 - 1), "start_block", 2**63 - 1),
    ("START_BLOCK", "0", "start_block", 0),
    ("RELAYER_BATCH_SIZE", str(2**63 - 1), "batch_size", 2**63 - 1),
    ("RELAYER_CHECKPOINT_INTERVAL", "1", "checkpoint_interval", 1),
    ("RELAYER_CONFIRMATIONS", "0", "confirmations", 0),
    ("RELAYER_MAX_LAG_BLOCKS", str(2**63 - 1), "max_lag_blocks", 2**63 - 1),
    ("RELAYER_POLL_INTERVAL", "2592000", "poll_interval_s", 2592000.0),
    ("RELAYER_POLL_INTERVAL", ".5", "poll_interval_s", 0.5),
    ("RELAYER_LEASE_SECONDS", "604800", "lease_s", 604800.0),
    ("RELAYER_LEASE_SECONDS", "6.048e5", "lease_s", 604800.0),
    ("RELAYER_LEASE_SECONDS", "0.001", "lease_s", 0.001),
    ("RELAYER_LEASE_SECONDS", "1E-3", "lease_s", 0.001),
    ("RELAYER_EVENT_TTL_DAYS", "36500", "event_ttl_days", 36500.0),
    ("RELAYER_EVENT_TTL_DAYS", "0.5", "event_ttl_days", 0.5),
    ("RELAYER_EVENT_TTL_DAYS", "", "event_ttl_days", 30.0),  # blank: the default
    ("RELAYER_RUN_SECONDS", "0", "run_s", 0.0),
    ("RELAYER_RUN_SECONDS", "0.0e5", "run_s", 0.0),
    ("RELAYER_RUN_SECONDS", "", "run_s", 0.0),
    ("RELAYER_RUN_SECONDS", "55", "run_s", 55.0),
]


def test_follow_mode_needs_a_lease_longer_than_two_poll_intervals() -> None:
    s = settings(RELAYER_RUN_SECONDS="604800", RELAYER_POLL_INTERVAL="5")
    assert (s.run_s, s.poll_interval_s, s.lease_s) == (604800.0, 5.0, 300.0)  # lease < window
    ok = settings(RELAYER_RUN_SECONDS="6", RELAYER_POLL_INTERVAL="1", RELAYER_LEASE_SECONDS="2.5")
    assert ok.lease_s == 2.5
    with pytest.raises(ConfigError) as raised:
        settings(RELAYER_RUN_SECONDS="60", RELAYER_POLL_INTERVAL="5", RELAYER_LEASE_SECONDS="10")
    message = str(raised.value)
    assert message.startswith("RELAYER_LEASE_SECONDS=10 is too short for follow mode")
    assert "RELAYER_POLL_INTERVAL" in message and raised.value.exit_code == 2
    # one-batch mode keeps accepting any lease, as before
    assert settings(RELAYER_POLL_INTERVAL="60", RELAYER_LEASE_SECONDS="1").lease_s == 1.0


@pytest.mark.parametrize(("name", "value", "field", "parsed"), AT_THE_BOUNDS)
def test_numbers_at_the_bounds_are_accepted(
    name: str, value: str, field: str, parsed: float
) -> None:
    assert getattr(settings(**{name: value}), field) == parsed


def test_the_bounds_keep_every_derived_value_representable() -> None:
    # What the runs compute from the largest accepted values must not overflow.
    s = settings(RELAYER_EVENT_TTL_DAYS="36500", RELAYER_LEASE_SECONDS="604800")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert (now + timedelta(days=s.event_ttl_days)).year < 2200
    assert (now + timedelta(seconds=s.lease_s)).year == 2026
    assert settings(START_BLOCK=str(2**63 - 1)).start_block < 2**63  # Firestore int64


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLOUD_RUN_TASK_COUNT": "10001"}, "CLOUD_RUN_TASK_COUNT='10001' is invalid"),
        ({"CLOUD_RUN_TASK_COUNT": "0"}, "CLOUD_RUN_TASK_COUNT='0' is invalid"),
        ({"CLOUD_RUN_TASK_COUNT": "+2"}, "CLOUD_RUN_TASK_COUNT='+2' is invalid"),
        ({"CLOUD_RUN_TASK_INDEX": "١"}, "CLOUD_RUN_TASK_INDEX='١' is invalid"),
        ({"CLOUD_RUN_TASK_INDEX": str(2**64)}, "CLOUD_RUN_TASK_INDEX="),
    ],
)
def test_task_position_is_bounded(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_runtime(env)
    assert str(raised.value).startswith(message)
    assert load_runtime({"CLOUD_RUN_TASK_INDEX": "9999", "CLOUD_RUN_TASK_COUNT": "10000"})


def test_every_setting_is_declared_once_and_read_from_one_variable() -> None:
    # A field added to Settings without a variable (or a variable whose default differs from
    # the field's) would be a second declaration drifting from the first.
    from dataclasses import fields

    from function.config import _DERIVED, _OPTIONAL, _REQUIRED, Settings

    read = {name for name, _, _ in _OPTIONAL} | set(_REQUIRED) | set(_DERIVED)
    assert len(read) == len(_OPTIONAL) + len(_REQUIRED) + len(_DERIVED)
    optional_fields = [f for _, f, _ in _OPTIONAL]
    assert len(set(optional_fields)) == len(optional_fields)
    by_hand = {"chain_id", "rpc_urls", "contracts", "abi_uri", "pubsub_project", "topic"}
    by_hand |= {"start_block", "relayer_id", "firestore_project", "deadletter_topic", "ws_url"}
    by_hand |= {"confirmations_from", "default_id"}
    assert {f.name for f in fields(Settings)} == set(optional_fields) | by_hand
    minimal = load_settings(BASE)
    for _, field_name, _ in _OPTIONAL:
        default = Settings.__dataclass_fields__[field_name].default
        assert getattr(minimal, field_name) == default, field_name


def test_the_request_timeout_of_the_relay_function() -> None:
    # Cloud Run functions' own default for an HTTP function, and its longest request.
    assert settings().request_timeout_s == 60.0
    assert settings(RELAYER_REQUEST_TIMEOUT="3600").request_timeout_s == 3600.0
    assert settings(RELAYER_REQUEST_TIMEOUT="90.5").request_timeout_s == 90.5
    for bad, expected in (("0", "above 0"), ("3600.5", "at most 3600"), ("1m", "above 0")):
        with pytest.raises(ConfigError) as raised:
            settings(RELAYER_REQUEST_TIMEOUT=bad)
        message = str(raised.value)
        assert message.startswith(f"RELAYER_REQUEST_TIMEOUT={bad!r} is invalid: expected ")
        assert expected in message and "request" in message


def test_the_request_timeout_is_the_process_s_not_a_relayer_s() -> None:
    # One function instance has one request timeout: a relayers file cannot set it per entry.
    from function.config import RELAYER_SETTINGS
    from function.ops.fleet import parse_entries

    assert "RELAYER_REQUEST_TIMEOUT" not in RELAYER_SETTINGS
    with pytest.raises(ConfigError, match="unknown settings RELAYER_REQUEST_TIMEOUT"):
        parse_entries(b'[{"RELAYER_REQUEST_TIMEOUT": "120"}]', "relayers.json")
