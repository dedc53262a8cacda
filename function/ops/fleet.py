"""Several relayers in one deployment: the RELAYER_CONFIG file, and who runs what.

The file (JSON or YAML) lists relayers, each with the settings of the single-relayer
variables; the environment gives the defaults. A Cloud Run Job with N tasks shares the
relayers among them: each relayer on exactly one task, by a hash of its id, so adding a
relayer moves no other. Each has its own state and lease, so even a relayer run twice
(a changed task count mid-deployment) never publishes twice.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from function.config import RELAYER_SETTINGS, Settings, load_settings
from function.errors import ConfigError


def parse_entries(raw: bytes, uri: str) -> list[dict[str, str]]:
    """The relayer entries of a RELAYER_CONFIG document, as variable -> text."""
    import yaml  # only deployments with a relayers file pay for it

    try:
        # BaseLoader keeps every scalar a string, as an environment variable is: YAML 1.1
        # would read an unquoted 0x... address as a number.
        document = json.loads(raw) if uri.endswith(".json") else yaml.load(raw, yaml.BaseLoader)
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"RELAYER_CONFIG {uri} is not valid JSON or YAML: {e}") from None
    entries = document.get("relayers") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"RELAYER_CONFIG {uri} lists no relayers: expected a list under 'relayers:', "
            "each with settings such as CONTRACT_ADDRESS and PUBSUB_TOPIC"
        )
    parsed: list[dict[str, str]] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"RELAYER_CONFIG {uri} relayers[{n}] is not a mapping of settings")
        settings = {str(k).upper(): _text(v, str(k).upper()) for k, v in entry.items()}
        unknown = sorted(set(settings) - set(RELAYER_SETTINGS))
        if unknown:
            raise ConfigError(
                f"RELAYER_CONFIG {uri} relayers[{n}] has unknown settings {', '.join(unknown)}; "
                f"known: {', '.join(RELAYER_SETTINGS)}"
            )
        parsed.append(settings)
    return parsed


def _text(value: Any, name: str = "") -> str:
    if name == "RELAYER_ARG_FILTERS":
        return _arg_filters_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _arg_filters_text(value: Any) -> str:
    """RELAYER_ARG_FILTERS as its variable writes it, from the variable's text, a list of its
    parts, or a mapping of `Event.arg` to a value or a list of values."""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return ";".join(
            f"{k}={'|'.join(str(x) for x in v) if isinstance(v, list) else v}"
            for k, v in value.items()
        )
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Misconfigured:
    """A RELAYER_CONFIG entry that cannot run (a missing secret, a bad value): the job
    refuses the deployment for it, status shows it as an unhealthy relayer."""

    position: int
    relayer_id: str | None  # its RELAYER_ID, when the entry names one
    problems: tuple[str, ...]  # the lines the job logs for it

    @property
    def label(self) -> str:
        """How status names it: its id, else its place in the file."""
        return self.relayer_id or f"relayers[{self.position}]"


def fleet_entries(
    env: Mapping[str, str], uri: str | None, read: Callable[[str], bytes]
) -> list[Settings | Misconfigured]:
    """Every relayer of the deployment in the file's order, those that cannot run as
    `Misconfigured`; a file that cannot be read or parsed still raises (see `distinct`
    for two relayers with one id)."""
    if uri is None:
        return [load_settings(env)]
    found: list[Settings | Misconfigured] = []
    for n, entry in enumerate(parse_entries(read(uri), uri)):
        own_id = entry.get("RELAYER_ID") or None
        merged = {**env, **entry}
        if "RPC_URL_ENV" in entry:
            name = entry["RPC_URL_ENV"]
            if not env.get(name):
                problem = (
                    f"RELAYER_CONFIG relayers[{n}] takes its RPC URL from {name}, which is not "
                    "set: set it (e.g. from Secret Manager) or fix RPC_URL_ENV"
                )
                found.append(Misconfigured(n, own_id, (problem,)))
                continue
            merged["RPC_URL"] = env[name]
        try:
            found.append(load_settings(merged))
        except ConfigError as e:
            prefixed = e.prefixed(f"RELAYER_CONFIG {uri} relayers[{n}]: ").problems
            found.append(Misconfigured(n, own_id, prefixed))
    return found


def distinct(uri: str | None, fleet: Sequence[Settings]) -> None:
    """Two relayers must not share state: raise when the file names an id twice."""
    ids = [s.relayer_id for s in fleet]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(
            f"RELAYER_CONFIG {uri} names relayer {', '.join(twice)} more than once: give each "
            "a distinct RELAYER_ID (two relayers must not share state)"
        )


def load_fleet(
    env: Mapping[str, str], uri: str | None, read: Callable[[str], bytes]
) -> list[Settings]:
    """Every relayer of the deployment: the file's entries over the environment's defaults,
    or the environment's single relayer when there is no file. One entry that cannot run
    refuses them all (exit 2, every entry's problems a line each); status shows the others."""
    entries = fleet_entries(env, uri, read)
    # every relayer's problems, so that one run shows them all
    problems = [p for e in entries if isinstance(e, Misconfigured) for p in e.problems]
    if problems:
        raise ConfigError.of(problems)
    fleet = [e for e in entries if isinstance(e, Settings)]
    distinct(uri, fleet)
    return fleet


def task_of(relayer_id: str, task_count: int) -> int:
    """The task that runs a relayer: stable for its id whatever the others are."""
    return zlib.crc32(relayer_id.encode()) % task_count


def shard(fleet: Sequence[Settings], task_index: int, task_count: int) -> list[Settings]:
    """The relayers this task runs."""
    return [s for s in fleet if task_of(s.relayer_id, task_count) == task_index]
