"""Turn an ABI (plain array or a Hardhat/Foundry/Truffle artifact) into event specs.

Parsing is pure (`event_specs`); reading the document from a file or Cloud Storage lives in
`abi_source`. Each spec is compiled once into the type strings and value converters that the
decoder needs, so decoding a log is a dictionary lookup and one eth-abi call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.grammar import parse as parse_abi_type
from eth_utils.crypto import keccak

from .errors import AbiError
from .values import Converter, converter_for, topic_reader

AbiEntry = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """One event parameter, ready to decode."""

    name: str
    abi_type: str  # canonical, tuples spelled out: "(uint8,string)[]"
    indexed: bool
    convert: Converter
    hashed_in_topic: bool  # indexed dynamic values are stored as their keccak hash
    from_topic: Callable[[str], Any] | None = None  # a static value read from its topic


@dataclass(frozen=True)
class EventSpec:
    """A non-anonymous event of the ABI."""

    name: str
    signature: str
    topic0: str  # 0x lowercase hex
    params: tuple[Param, ...]

    @property
    def indexed(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.indexed)

    @property
    def data_types(self) -> tuple[str, ...]:
        return tuple(p.abi_type for p in self.params if not p.indexed)


def abi_entries(document: Any, source: str) -> list[AbiEntry]:
    """The ABI array inside a parsed JSON document: a plain array or an artifact's `abi`."""
    abi = document.get("abi") if isinstance(document, dict) else document
    if isinstance(abi, str):  # some Truffle-era tools store the ABI as a JSON string
        try:
            abi = json.loads(abi)
        except ValueError:
            abi = None
    if not isinstance(abi, list) or not all(isinstance(e, dict) for e in abi):
        raise AbiError(
            f"ABI_URI {source} is not an ABI: expected a JSON array of ABI entries or an "
            "artifact object with an 'abi' array (Hardhat, Foundry, Truffle)"
        )
    return abi


def _canonical_type(param: AbiEntry) -> str:
    abi_type = str(param.get("type", ""))
    if abi_type.startswith("tuple"):
        components = param.get("components")
        if not isinstance(components, list):
            raise ValueError(f"tuple parameter {param.get('name')!r} has no components")
        inner = ",".join(_canonical_type(c) for c in components)
        return f"({inner}){abi_type[len('tuple') :]}"
    return abi_type


def _param(entry: AbiEntry, index: int) -> Param:
    abi_type = _canonical_type(entry)
    parsed = parse_abi_type(abi_type)  # raises on a type it cannot parse
    parsed.validate()  # raises on one it parses but does not exist (uint7)
    indexed = bool(entry.get("indexed", False))
    return Param(
        name=str(entry.get("name") or f"arg{index}"),
        abi_type=abi_type,
        indexed=indexed,
        convert=converter_for(entry),
        from_topic=topic_reader(abi_type) if indexed else None,
        hashed_in_topic=indexed
        and (parsed.is_dynamic or parsed.is_array or bool(getattr(parsed, "components", None))),
    )


def _spec(entry: AbiEntry) -> EventSpec:
    name = str(entry.get("name", ""))
    inputs = entry.get("inputs", [])
    if not name or not isinstance(inputs, list):
        raise ValueError("event entry without a name or inputs")
    params = tuple(_param(p, i) for i, p in enumerate(inputs))
    signature = f"{name}({','.join(p.abi_type for p in params)})"
    return EventSpec(name, signature, "0x" + keccak(text=signature).hex(), params)


def event_specs(
    entries: Sequence[AbiEntry], selected: Sequence[str], source: str
) -> dict[str, EventSpec]:
    """Specs of the selected events (all when none are selected), keyed by topic0."""
    specs: dict[str, EventSpec] = {}
    for entry in entries:
        if entry.get("type") != "event" or entry.get("anonymous"):
            continue  # anonymous events have no topic0 to filter or recognise them by
        try:
            spec = _spec(entry)
        except Exception as e:
            name = entry.get("name")
            raise AbiError(f"ABI_URI {source} has a malformed event {name!r}: {e}") from e
        specs[spec.topic0] = spec
    available = sorted({s.name for s in specs.values()})
    if selected:
        missing = [n for n in selected if n not in available]
        if missing:
            raise AbiError(
                f"RELAYER_EVENTS names {', '.join(missing)} which the ABI at {source} does not "
                f"define; it defines: {', '.join(available) or 'no events'}"
            )
        specs = {t: s for t, s in specs.items() if s.name in selected}
    if not specs:
        raise AbiError(f"ABI_URI {source} defines no non-anonymous events to relay")
    return specs


def load_specs(
    read: Callable[[str], bytes], uri: str, selected: Sequence[str]
) -> dict[str, EventSpec]:
    """Read, parse and compile the ABI at `uri` with the given reader."""
    raw = read(uri)
    try:
        document = json.loads(raw)
    except ValueError as e:
        raise AbiError(f"ABI_URI {uri} is not valid JSON: {e}") from e
    return event_specs(abi_entries(document, uri), selected, uri)
