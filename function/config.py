"""The relayer's settings: every environment variable is named here and parsed once.

`load_settings` turns a mapping (``os.environ`` at the edge, a dict in tests) into a frozen
`Settings`, or raises one `ConfigError` whose message names the variable, shows the bad
value (an RPC URL only by its host) and says what is expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from function.chains import preset
from function.core.argfilters import ArgFilter, parse_arg_filters, unselected
from function.core.factory import FactorySetting, parse_factory
from function.core.values import checksum, checksum_typo
from function.errors import ConfigError
from function.numeric_settings import (
    BLOCK_COUNT,
    BLOCK_NUMBER,
    CHAIN_ID,
    CONFIRMATIONS,
    LEASE_SECONDS,
    POLL_SECONDS,
    RUN_SECONDS,
    TASK_COUNT,
    TASK_INDEX,
    TTL_DAYS,
    Integer,
    Positive,
    invalid,
    read_decimal,
    read_integer,
)
from function.redact import host_of

T = TypeVar("T")

# Cloud Run functions (and Cloud Run services) end an HTTP request after at most 60 minutes.
REQUEST_SECONDS = Positive("seconds", 3600.0, "the longest request of an HTTP function")

HEAD_TAGS = ("latest", "safe", "finalized")
INCLUDES = ("transaction",)
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
# Pub/Sub resource names: 3-255 chars, start with a letter, must not start with "goog".
_TOPIC = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
_PROJECT = re.compile(r"^[a-z][a-z0-9\-:.]{2,62}$")
_EVENT_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """One relayer's configuration (docs/CONTRACT.md §1)."""

    chain_id: int
    rpc_urls: tuple[str, ...]
    contracts: tuple[str, ...]  # EIP-55
    abi_uri: str
    pubsub_project: str
    topic: str
    start_block: int
    batch_size: int = 1000
    checkpoint_interval: int = 100
    poll_interval_s: float = 60.0
    run_s: float = 0.0  # follow mode's window (RELAYER_RUN_SECONDS); 0: one batch
    confirmations: int = 12
    relayer_id: str = ""
    # RELAYER_ID unset: the id comes from the first address, and a reordered CONTRACT_ADDRESS
    # would name a new state (function/core/identity.py)
    default_id: bool = False
    events: tuple[str, ...] = ()  # empty: every event of the ABI
    arg_filters: tuple[ArgFilter, ...] = ()  # RELAYER_ARG_FILTERS, checked against the ABI later
    include: tuple[str, ...] = ()  # RELAYER_INCLUDE: what messages gain (INCLUDES)
    factory: FactorySetting | None = None  # RELAYER_FACTORY, checked against the ABI later
    firestore_project: str = ""
    firestore_database: str = "(default)"
    lease_s: float = 300.0
    event_ttl_days: float = 30.0
    ordering: bool = True
    head: str = "latest"
    deadletter_topic: str | None = None
    max_lag_blocks: int | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    # The `relay` function's request timeout (RELAYER_REQUEST_TIMEOUT): the platform's is not
    # visible to the code. 60 s is Cloud Run functions' default for an HTTP function.
    request_timeout_s: float = 60.0
    ws_url: str | None = None  # RPC_WS_URL: new heads wake a follower (eth_subscribe)
    # Where `confirmations` came from: the variable, the chain's preset, or the default
    # for an unknown chain (function/chains.py).
    confirmations_from: str = "default"

    @property
    def chain_name(self) -> str | None:
        known = preset(self.chain_id)
        return None if known is None else known.name

    @property
    def include_transaction(self) -> bool:
        """RELAYER_INCLUDE=transaction: each message gains its transaction's facts."""
        return "transaction" in self.include

    @property
    def rpc_hosts(self) -> tuple[str, ...]:
        """What may be shown of the endpoints."""
        return tuple(host_of(u) for u in self.rpc_urls)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: it is required (see README, Configuration)")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _parsed(
    env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], expected: str
) -> T:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise invalid(name, raw, expected) from None


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(raw)


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError(raw)
        return value

    return parse


def _endpoint(url: str, schemes: tuple[str, ...]) -> bool:
    """Whether `url` is an endpoint of one of `schemes` with a host and a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


def _rpc_urls(raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    if not urls:
        raise ConfigError("RPC_URL is not set: it is required (see README, Configuration)")
    for url in urls:
        if not _endpoint(url, ("http", "https")):
            # Only the host is shown: the rest of an RPC URL usually carries an API key.
            raise ConfigError(
                f"RPC_URL has an invalid endpoint (host {host_of(url)!r}): expected "
                "http(s)://host[:port]/path, several separated by commas"
            )
    return urls


def _ws_url(raw: str | None) -> str | None:
    """RPC_WS_URL: one ws(s) endpoint; like RPC_URL it may carry a key, so an error shows
    only its host."""
    if raw is None:
        return None
    if not _endpoint(raw, ("ws", "wss")):
        raise ConfigError(
            f"RPC_WS_URL has an invalid endpoint (host {host_of(raw)!r}): expected "
            "ws(s)://host[:port]/path, one endpoint that offers eth_subscribe, or leave it unset "
            "to poll only"
        )
    return raw


def _contracts(raw: str, name: str = "CONTRACT_ADDRESS") -> tuple[str, ...]:
    out: list[str] = []
    for item in (a.strip() for a in raw.split(",")):
        if not _ADDRESS.fullmatch(item):
            raise invalid(name, item, "0x followed by 40 hex digits, comma-separated")
        if checksum_typo(item):
            raise invalid(
                name,
                item,
                "a valid EIP-55 checksum (or an all-lowercase address): check for a typo",
            )
        checksummed = checksum(item)
        if checksummed not in out:
            out.append(checksummed)
    return tuple(out)


def _events(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    for name in names:
        if not _EVENT_NAME.match(name):
            raise invalid(
                "RELAYER_EVENTS", name, "event names (EscrowCreated,...), comma-separated"
            )
    return names


def _include(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    if not names or any(n not in INCLUDES for n in names):
        raise ValueError(raw)
    return names


def _contract_address(env: Mapping[str, str]) -> str:
    if _optional(env, "CONTRACT_ADDRESS") is None:
        raise ConfigError(
            "CONTRACT_ADDRESS is not set: it is required unless RELAYER_FACTORY is set (see "
            "README, Configuration)"
        )
    return _required(env, "CONTRACT_ADDRESS")


def _factory(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = _optional(env, name)
    if raw is None:
        return default
    setting = parse_factory(raw)
    _contracts(raw.split(":")[0], name)  # an EIP-55 typo, as in CONTRACT_ADDRESS
    return setting


def _arg_filters(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = _optional(env, name)
    return default if raw is None else parse_arg_filters(raw)  # a ConfigError per bad part


def _resource(env: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = _required(env, name)
    if value.startswith("projects/"):
        raise invalid(name, value, f"the {what} id alone, not the full resource path")
    if not pattern.match(value) or value.startswith("goog"):
        raise invalid(name, value, f"a Google Cloud {what} id")
    return value


def _relayer_id(value: str) -> str:
    if "/" in value or value in (".", "..") or len(value.encode()) > 1500:
        raise ValueError(value)
    if value.startswith("__") and value.endswith("__"):
        raise ValueError(value)
    return value


Reader = Callable[[Mapping[str, str], str, Any], Any]  # (env, variable, default) -> value


def _integer(kind: Integer) -> Reader:
    return lambda env, name, default: read_integer(env, name, default, kind)


def _decimal(kind: Positive) -> Reader:
    return lambda env, name, default: read_decimal(env, name, default, kind)


def _text(parse: Callable[[str], Any], expected: str) -> Reader:
    return lambda env, name, default: _parsed(env, name, default, parse, expected)


# The settings a run may leave unset: variable, `Settings` field, how it is read. Each default
# is the field's own, declared once in `Settings`.
_OPTIONAL: tuple[tuple[str, str, Reader], ...] = (
    ("RELAYER_BATCH_SIZE", "batch_size", _integer(BLOCK_COUNT)),
    ("RELAYER_CHECKPOINT_INTERVAL", "checkpoint_interval", _integer(BLOCK_COUNT)),
    ("RELAYER_POLL_INTERVAL", "poll_interval_s", _decimal(POLL_SECONDS)),
    ("RELAYER_RUN_SECONDS", "run_s", _decimal(RUN_SECONDS)),
    ("RELAYER_CONFIRMATIONS", "confirmations", _integer(CONFIRMATIONS)),
    ("RELAYER_EVENTS", "events", _text(_events, "comma-separated event names")),
    ("RELAYER_ARG_FILTERS", "arg_filters", _arg_filters),
    ("RELAYER_INCLUDE", "include", _text(_include, "transaction, or unset")),
    ("RELAYER_FACTORY", "factory", _factory),
    ("FIRESTORE_DATABASE", "firestore_database", _text(str, "a Firestore database id")),
    ("RELAYER_LEASE_SECONDS", "lease_s", _decimal(LEASE_SECONDS)),
    ("RELAYER_EVENT_TTL_DAYS", "event_ttl_days", _decimal(TTL_DAYS)),
    ("RELAYER_ORDERING", "ordering", _text(_bool, "true or false")),
    ("RELAYER_HEAD", "head", _text(_choice(HEAD_TAGS), "latest, safe or finalized")),
    ("RELAYER_MAX_LAG_BLOCKS", "max_lag_blocks", _integer(BLOCK_COUNT)),
    (
        "LOG_LEVEL",
        "log_level",
        _text(_choice(LOG_LEVELS, upper=True), "DEBUG, INFO or WARNING..."),
    ),
    ("LOG_FORMAT", "log_format", _text(_choice(LOG_FORMATS), "json or text")),
    ("RELAYER_REQUEST_TIMEOUT", "request_timeout_s", _decimal(REQUEST_SECONDS)),
)
_REQUIRED = (
    "CHAIN_ID", "RPC_URL", "CONTRACT_ADDRESS", "ABI_URI", "PUBSUB_PROJECT_ID", "PUBSUB_TOPIC",
    "START_BLOCK",
)  # fmt: skip
_DERIVED = (
    "RELAYER_ID", "FIRESTORE_PROJECT_ID", "RELAYER_DEADLETTER_TOPIC", "RPC_WS_URL",
)  # fmt: skip  # read below
# One process logs one way, and one function instance has one request timeout, whatever the
# relayer: a relayers file cannot set these per entry.
_PROCESS_WIDE = ("LOG_LEVEL", "LOG_FORMAT", "RELAYER_REQUEST_TIMEOUT")


def _default(field_name: str) -> Any:
    return Settings.__dataclass_fields__[field_name].default


class _Problems:
    """Every invalid setting of one configuration, so an operator fixes them in one go."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def take(self, read: Callable[[], T], fallback: T) -> T:
        try:
            return read()
        except ConfigError as e:
            self.found.extend(e.problems)
            return fallback


def _set(value: T | None, name: str) -> T:
    if value is None:
        raise ConfigError(f"{name} is not set: it is required (see README, Configuration)")
    return value


def _abi_uri(env: Mapping[str, str]) -> str:
    abi_uri = _required(env, "ABI_URI")
    if abi_uri.startswith("gs://") and "/" not in abi_uri[5:].strip("/"):
        raise invalid("ABI_URI", abi_uri, "gs://bucket/object.json or a local file path")
    return abi_uri


def _deadletter(env: Mapping[str, str]) -> str | None:
    if _optional(env, "RELAYER_DEADLETTER_TOPIC") is None:
        return None
    return _resource(env, "RELAYER_DEADLETTER_TOPIC", _TOPIC, "Pub/Sub topic")


def _firestore_project(env: Mapping[str, str], pubsub_project: str) -> str:
    explicit = _optional(env, "FIRESTORE_PROJECT_ID")
    if explicit is not None and not _PROJECT.match(explicit):
        raise invalid("FIRESTORE_PROJECT_ID", explicit, "a Google Cloud project id")
    return explicit or pubsub_project


def load_settings(env: Mapping[str, str]) -> Settings:
    """Parse and validate the whole configuration, or raise one `ConfigError` naming every
    invalid setting (its `problems`, a line each)."""
    got = _Problems()
    chain_id = got.take(lambda: _set(read_integer(env, "CHAIN_ID", None, CHAIN_ID), "CHAIN_ID"), 0)
    none: tuple[str, ...] = ()
    rpc_urls = got.take(lambda: _rpc_urls(_required(env, "RPC_URL")), none)
    ws_url = got.take(lambda: _ws_url(_optional(env, "RPC_WS_URL")), None)
    # RELAYER_FACTORY alone may name what is relayed: its children.
    by_factory = _optional(env, "RELAYER_FACTORY") is not None
    if by_factory and _optional(env, "CONTRACT_ADDRESS") is None:
        contracts = none
    else:
        contracts = got.take(lambda: _contracts(_contract_address(env)), none)
    abi_uri = got.take(lambda: _abi_uri(env), "")
    pubsub_project = got.take(lambda: _resource(env, "PUBSUB_PROJECT_ID", _PROJECT, "project"), "")
    topic = got.take(lambda: _resource(env, "PUBSUB_TOPIC", _TOPIC, "Pub/Sub topic"), "")
    deadletter = got.take(lambda: _deadletter(env), None)
    start_block = got.take(
        lambda: _set(read_integer(env, "START_BLOCK", None, BLOCK_NUMBER), "START_BLOCK"), 0
    )
    firestore_project = got.take(lambda: _firestore_project(env, pubsub_project), "")
    first = contracts[0] if contracts else (env.get("RELAYER_FACTORY") or "").split(":")[0]
    derived_id = f"{chain_id}-{first.strip().lower()}" if first.strip() else ""
    relayer_id = got.take(
        lambda: _parsed(
            env,
            "RELAYER_ID",
            derived_id,
            _relayer_id,
            "a Firestore document id (no '/', not '.' or '..')",
        ),
        "",
    )
    optional: dict[str, Any] = {}
    for name, field_name, read in _OPTIONAL:
        optional[field_name] = got.take(partial(read, env, name, _default(field_name)), None)
    if all(optional[f] is not None for f in ("run_s", "lease_s", "poll_interval_s")):
        got.take(
            lambda: _check_follow(
                optional["run_s"], optional["lease_s"], optional["poll_interval_s"]
            ),
            None,
        )
    if optional["events"] is not None and optional["arg_filters"]:
        got.found.extend(unselected(optional["arg_filters"], optional["events"]))
    if got.found:
        raise ConfigError.of(got.found)
    confirmations_from = "RELAYER_CONFIRMATIONS"
    if _optional(env, "RELAYER_CONFIRMATIONS") is None:
        known = preset(chain_id)
        confirmations_from = "default" if known is None else "chain preset"
        if known is not None:
            optional["confirmations"] = known.confirmations
    return Settings(
        chain_id=chain_id,
        rpc_urls=rpc_urls,
        contracts=contracts,
        abi_uri=abi_uri,
        pubsub_project=pubsub_project,
        topic=topic,
        start_block=start_block,
        relayer_id=relayer_id,
        default_id=_optional(env, "RELAYER_ID") is None,
        firestore_project=firestore_project,
        deadletter_topic=deadletter,
        ws_url=ws_url,
        confirmations_from=confirmations_from,
        **optional,
    )


def _check_follow(run_s: float, lease_s: float, poll_s: float) -> None:
    """A follower renews its lease at every look (and while publishing): the lease must
    outlast the wait between two looks with room for the look itself, so
    RELAYER_LEASE_SECONDS must exceed 2 x RELAYER_POLL_INTERVAL; it need not exceed the
    window (RELAYER_RUN_SECONDS)."""
    if run_s > 0 and lease_s <= 2 * poll_s:
        raise ConfigError(
            f"RELAYER_LEASE_SECONDS={lease_s:g} is too short for follow mode "
            f"(RELAYER_RUN_SECONDS={run_s:g}): a follower renews its lease at every look, so "
            f"it must exceed 2 x RELAYER_POLL_INTERVAL = {2 * poll_s:g}; raise "
            "RELAYER_LEASE_SECONDS or lower RELAYER_POLL_INTERVAL"
        )


def logging_settings(env: Mapping[str, str]) -> tuple[str, str, dict[str, str]]:
    """LOG_LEVEL, LOG_FORMAT and the Cloud Run labels alone, so that a configuration error
    can still be logged the way the operator asked."""
    level = (env.get("LOG_LEVEL", "") or _default("log_level")).strip().upper()
    fmt = (env.get("LOG_FORMAT", "") or _default("log_format")).strip().lower()
    labels = {
        label: env[name]
        for label, name in (
            ("run.googleapis.com/execution_name", "CLOUD_RUN_EXECUTION"),
            ("run.googleapis.com/task_index", "CLOUD_RUN_TASK_INDEX"),
        )
        if env.get(name)
    }
    level = level if level in LOG_LEVELS else _default("log_level")
    return (level, fmt if fmt in LOG_FORMATS else _default("log_format"), labels)


def log_identity(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Who this process is to Error Reporting and Cloud Trace (function/logs.py): the service
    its errors are grouped under (K_SERVICE of a function, CLOUD_RUN_JOB of a job) and the
    project its requests' traces live in (GOOGLE_CLOUD_PROJECT where it runs, else where its
    state is: FIRESTORE_PROJECT_ID, else PUBSUB_PROJECT_ID). Never an error: a project that
    is no project id names no trace."""
    service = (env.get("K_SERVICE") or env.get("CLOUD_RUN_JOB") or "").strip() or None
    project = next(
        (
            value
            for name in ("GOOGLE_CLOUD_PROJECT", "FIRESTORE_PROJECT_ID", "PUBSUB_PROJECT_ID")
            if (value := env.get(name, "").strip())
        ),
        None,
    )
    if project is not None and not _PROJECT.match(project):
        project = None
    return service, project


# Settings one relayer may set in a RELAYER_CONFIG file (the variables above), plus
# RPC_URL_ENV: the name of an environment variable holding that relayer's RPC URL, so
# that API keys stay in Secret Manager rather than in the file.
RELAYER_SETTINGS = (
    *_REQUIRED,
    "RPC_URL_ENV",
    *_DERIVED,
    *(name for name, _, _ in _OPTIONAL if name not in _PROCESS_WIDE),
)


@dataclass(frozen=True)
class Runtime:
    """How this process fits in a deployment: the relayers file and its Cloud Run task."""

    config_uri: str | None  # RELAYER_CONFIG
    task_index: int  # CLOUD_RUN_TASK_INDEX
    task_count: int  # CLOUD_RUN_TASK_COUNT
    execution: str | None = None  # CLOUD_RUN_EXECUTION: kept in each run's summary
    # RELAYER_BACKFILL_FROM/TO: this execution backfills the range, its slice per task
    backfill: tuple[int, int] | None = None


def load_runtime(env: Mapping[str, str]) -> Runtime:
    """RELAYER_CONFIG and the Cloud Run task position (0 of 1 outside Cloud Run)."""
    index = read_integer(env, "CLOUD_RUN_TASK_INDEX", 0, TASK_INDEX)
    count = read_integer(env, "CLOUD_RUN_TASK_COUNT", 1, TASK_COUNT)
    if index >= count:
        raise ConfigError(f"CLOUD_RUN_TASK_INDEX={index} is not below CLOUD_RUN_TASK_COUNT={count}")
    start = read_integer(env, "RELAYER_BACKFILL_FROM", None, BLOCK_NUMBER)
    end = read_integer(env, "RELAYER_BACKFILL_TO", None, BLOCK_NUMBER)
    if (start is None) != (end is None) or (start is not None and end is not None and end < start):
        raise ConfigError(
            f"RELAYER_BACKFILL_FROM={start} RELAYER_BACKFILL_TO={end}: set both, "
            "to the first and last block of the range to backfill"
        )
    return Runtime(
        _optional(env, "RELAYER_CONFIG"),
        index,
        count,
        _optional(env, "CLOUD_RUN_EXECUTION"),
        (start, end) if start is not None and end is not None else None,
    )
