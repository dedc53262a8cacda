"""RELAYER_ARG_FILTERS against the ABI, pure: each part's event, argument and values checked,
and the topics each filtered layout must carry (`EventSpec.arg_topics`).

Checked when the ABI is loaded: the event (in the ABI, and selected), the argument (indexed
in every layout of the event: a layout without it could not be filtered in its topics), each
value against the argument's type (`topicvalues`). Every part the ABI refutes is reported at
once, each with the fix (a `ConfigError`, exit 2).

The catalogue then pushes the filters into the eth_getLogs topics (`log_queries`) and checks
every log against them again (`EventCatalogue.choose`), so a log that does not match is never
relayed, whatever a node answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from function.core.argfilters import VARIABLE, ArgFilter
from function.core.catalogue import EventCatalogue
from function.core.specs import EventSpec, Param
from function.core.topicvalues import topic_for
from function.errors import ConfigError


def apply_arg_filters(
    catalogue: EventCatalogue, filters: Sequence[ArgFilter], source: str = "ABI_URI"
) -> EventCatalogue:
    """The catalogue with each filtered layout's `arg_topics`, or a `ConfigError` naming
    every part the ABI refutes."""
    if not filters:
        return catalogue
    layouts = [*(s for specs in catalogue.named.values() for s in specs), *catalogue.anonymous]
    wanted: dict[str, dict[int, frozenset[str]]] = {}  # layout -> topic position -> topics
    problems: list[str] = []
    for f in filters:
        mine = [s for s in layouts if s.name == f.event]
        try:
            positions = _positions(f, mine, catalogue, layouts, source)
        except ValueError as e:
            problems.append(f"{VARIABLE} part {f.text!r}: {e}")
            continue
        for spec, position in positions:
            wanted.setdefault(spec.layout, {})[position] = _topics(f, spec, position)
    if problems:
        raise ConfigError.of(problems)

    def filtered(spec: EventSpec) -> EventSpec:
        topics = wanted.get(spec.layout)
        return replace(spec, arg_topics=tuple(sorted(topics.items()))) if topics else spec

    return replace(
        catalogue,
        named={t: tuple(filtered(s) for s in specs) for t, specs in catalogue.named.items()},
        anonymous=tuple(filtered(s) for s in catalogue.anonymous),
    )


def _positions(
    f: ArgFilter,
    mine: Sequence[EventSpec],
    catalogue: EventCatalogue,
    layouts: Sequence[EventSpec],
    source: str,
) -> list[tuple[EventSpec, int]]:
    """Each layout of the event with the topic position of the argument, or a `ValueError`
    that says what is wrong and what to do."""
    if not mine:
        names = ", ".join(sorted({s.name for s in layouts}))
        raise ValueError(f"the ABI at {source} has no event {f.event}; it defines: {names}")
    if f.event not in catalogue.selected:
        chosen = ", ".join(sorted(catalogue.selected))
        raise ValueError(
            f"event {f.event} is not relayed: RELAYER_EVENTS selects {chosen}; add {f.event} "
            "to RELAYER_EVENTS or remove the part"
        )
    indexed = list(dict.fromkeys(p.name for s in mine for p in s.indexed))
    if not any(p.name == f.arg for s in mine for p in s.params):
        raise ValueError(
            f"{f.event} has no argument {f.arg}; its indexed arguments: "
            f"{', '.join(indexed) or 'none'}"
        )
    found: list[tuple[EventSpec, int]] = []
    for spec in mine:
        position = _position(spec, f.arg)
        if position is None:
            present = any(p.name == f.arg for p in spec.params)
            where = f" in {spec.layout}" if len(mine) > 1 else ""
            raise ValueError(
                f"argument {f.arg} of {f.event} is {'not indexed' if present else 'missing'}"
                f"{where}: only indexed arguments are topics eth_getLogs can filter on, in every "
                f"layout of the event; {f.event}'s indexed arguments: "
                f"{', '.join(indexed) or 'none'}"
            )
        found.append((spec, position))
    for spec, position in found:
        _topics(f, spec, position)  # every value checked against every layout's type
    return found


def _position(spec: EventSpec, arg: str) -> int | None:
    """The topic an indexed argument is in: after topic0 (unless anonymous), in order."""
    first = 0 if spec.anonymous else 1
    for i, p in enumerate(spec.indexed):
        if p.name == arg:
            return first + i
    return None


def _param(spec: EventSpec, position: int) -> Param:
    return spec.indexed[position - (0 if spec.anonymous else 1)]


def _topics(f: ArgFilter, spec: EventSpec, position: int) -> frozenset[str]:
    param = _param(spec, position)
    topics: set[str] = set()
    for value in f.values:
        try:
            topics.add(topic_for(param.abi_type, value))
        except ValueError as e:
            raise ValueError(
                f"value {value!r} does not fit {f.event}.{f.arg} ({param.abi_type}): expected {e}"
            ) from None
    return frozenset(topics)
