"""RELAYER_ARG_FILTERS (docs/CONTRACT.md §1): only events whose indexed arguments match.

`Event.arg=value[|value...]`, several parts joined by `;`: values of one part are
alternatives (OR), parts are all required (AND), so `Transfer.from=A;Transfer.to=B|C` relays
the transfers from A to B or C. Two steps, both pure:

- here, the grammar, read with the settings (no ABI yet: `function.config` uses it, so this
  module imports nothing but the errors), every bad part a problem of its own
  (`ConfigError.problems`);
- `argtopics`, the check against the ABI once it is loaded, and the topics each value is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from function.errors import ConfigError

VARIABLE = "RELAYER_ARG_FILTERS"
_NAME = r"[A-Za-z_$][A-Za-z0-9_$]*"
_PART = re.compile(rf"\s*({_NAME})\.({_NAME})\s*=(.*)", re.DOTALL)
_FORM = (
    "expected Event.argument=value[|value...], parts joined by ';' "
    "(e.g. Transfer.to=0xAbc...|0xDef...;Approval.owner=0xAbc...)"
)


@dataclass(frozen=True)
class ArgFilter:
    """One part: an indexed argument of an event and the values it may have."""

    event: str
    arg: str
    values: tuple[str, ...]

    @property
    def text(self) -> str:
        """The part as an operator reads it (errors, /status)."""
        return f"{self.event}.{self.arg}={'|'.join(self.values)}"


def parse_arg_filters(raw: str) -> tuple[ArgFilter, ...]:
    """The parts of a RELAYER_ARG_FILTERS value, or a `ConfigError` with a problem per bad
    part. Spaces around names and values are ignored; an empty part (a trailing `;`) too."""
    filters: list[ArgFilter] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for part in (p for p in raw.split(";") if p.strip()):
        match = _PART.fullmatch(part)
        values = [v.strip() for v in match.group(3).split("|")] if match else []
        if match is None or not all(values):
            problems.append(f"{VARIABLE} part {part.strip()!r} is invalid: {_FORM}")
            continue
        key = (match.group(1), match.group(2))
        if key in seen:
            problems.append(
                f"{VARIABLE} part {part.strip()!r} filters {key[0]}.{key[1]} twice: join its "
                "values with | in one part"
            )
            continue
        seen.add(key)
        filters.append(ArgFilter(key[0], key[1], tuple(dict.fromkeys(values))))
    if problems:
        raise ConfigError.of(problems)
    return tuple(filters)


def unselected(filters: Sequence[ArgFilter], events: Sequence[str]) -> list[str]:
    """A problem for every part on an event that RELAYER_EVENTS (when set) leaves out."""
    if not events:
        return []
    return [
        f"{VARIABLE} part {f.text!r} filters {f.event}, which RELAYER_EVENTS does not select "
        f"({', '.join(events)}): add {f.event} to RELAYER_EVENTS or remove the part"
        for f in filters
        if f.event not in events
    ]
