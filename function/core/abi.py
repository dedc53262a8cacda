"""Turn an ABI (plain array or a Hardhat/Foundry/Truffle artifact) into an event catalogue.

Parsing is pure (`event_catalogue`); reading the document from a file or Cloud Storage lives
in `abi_source`. Each event is compiled once into the type strings, decoders and value
converters that decoding needs (`specs`), so decoding a log is a lookup and one decoder call.
Every event of the ABI is kept, anonymous ones and every layout of one topic0 included: the
choice between them is made per log (`catalogue`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from eth_hash.auto import keccak

from function.core.abitypes import AbiType
from function.core.abitypes import parse as parse_abi_type
from function.core.argfilters import ArgFilter
from function.core.argtopics import apply_arg_filters
from function.core.catalogue import EventCatalogue
from function.core.lenient import tuple_decoder, value_decoder
from function.core.specs import EventSpec, Param
from function.core.values import converter_for, topic_reader
from function.errors import AbiError

AbiEntry = dict[str, Any]


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


def _head_size(parsed: AbiType) -> int:
    """Bytes a value takes in the data's head: an offset for a dynamic one."""
    if parsed.is_dynamic:
        return 32
    if parsed.arrlist:
        return int(parsed.arrlist[-1][0]) * _head_size(parsed.item_type)
    if parsed.components is not None:
        return sum(_head_size(c) for c in parsed.components)
    return 32


def _param(entry: AbiEntry, index: int) -> tuple[Param, AbiType]:
    abi_type = _canonical_type(entry)
    parsed = parse_abi_type(abi_type)  # raises on a type it cannot parse
    parsed.validate()  # raises on one it parses but does not exist (uint7)
    indexed = bool(entry.get("indexed", False))
    hashed = indexed and (parsed.is_dynamic or parsed.is_array or parsed.components is not None)
    from_topic = None
    if indexed and not hashed:
        from_topic = topic_reader(abi_type) or _word_reader(value_decoder(abi_type))
    param = Param(
        name=str(entry.get("name") or f"arg{index}"),
        abi_type=abi_type,
        indexed=indexed,
        convert=converter_for(entry),
        from_topic=from_topic,
        hashed_in_topic=hashed,
    )
    return param, parsed


def _word_reader(decode: Callable[[bytes], Any]) -> Callable[[str], Any]:
    return lambda topic: decode(bytes.fromhex(topic[2:]))


def _spec(entry: AbiEntry) -> EventSpec:
    # Names become message keys: one that is not Unicode text (a lone surrogate from a
    # "\ud800" escape) would fail every message of the event, not the start.
    json.dumps(entry, ensure_ascii=False).encode("utf-8")
    name = str(entry.get("name", ""))
    inputs = entry.get("inputs", [])
    if not name or not isinstance(inputs, list):
        raise ValueError("event entry without a name or inputs")
    compiled = [_param(p, i) for i, p in enumerate(inputs)]
    params = tuple(p for p, _ in compiled)
    data = [parsed for p, parsed in compiled if not p.indexed]
    signature = f"{name}({','.join(p.abi_type for p in params)})"
    return EventSpec(
        name=name,
        signature=signature,
        topic0="0x" + keccak(signature.encode()).hex(),
        params=params,
        anonymous=bool(entry.get("anonymous", False)),
        decode_data=tuple_decoder([p.abi_type for p in params if not p.indexed]),
        head_size=sum(_head_size(t) for t in data),
        static_data=not any(t.is_dynamic for t in data),
    )


def _layout_key(spec: EventSpec) -> tuple[str, bool, tuple[bool, ...]]:
    return spec.signature, spec.anonymous, tuple(p.indexed for p in spec.params)


def event_catalogue(
    entries: Sequence[AbiEntry], selected: Sequence[str], source: str
) -> EventCatalogue:
    """Every event of the ABI, and the selected ones (all when none are selected)."""
    named: dict[str, list[EventSpec]] = {}
    anonymous: list[EventSpec] = []
    seen: set[tuple[str, bool, tuple[bool, ...]]] = set()
    for entry in entries:
        if entry.get("type") != "event":
            continue
        try:
            spec = _spec(entry)
        except Exception as e:
            name = entry.get("name")
            raise AbiError(f"ABI_URI {source} has a malformed event {name!r}: {e}") from e
        if _layout_key(spec) in seen:
            continue  # the same event in two merged ABIs: the first one's names are used
        seen.add(_layout_key(spec))
        if spec.anonymous:
            anonymous.append(spec)
        else:
            named.setdefault(spec.topic0, []).append(spec)
    every = [*(s for specs in named.values() for s in specs), *anonymous]
    available = sorted({s.name for s in every})
    if not available:
        raise AbiError(f"ABI_URI {source} defines no events to relay")
    missing = [n for n in selected if n not in available]
    if missing:
        raise AbiError(
            f"RELAYER_EVENTS names {', '.join(missing)} which the ABI at {source} does not "
            f"define; it defines: {', '.join(available)}"
        )
    return EventCatalogue(
        named={t: tuple(specs) for t, specs in named.items()},
        anonymous=tuple(anonymous),
        selected=frozenset(selected or available),
        chosen=bool(selected),
    )


def load_specs(
    read: Callable[[str], bytes],
    uri: str,
    selected: Sequence[str],
    arg_filters: Sequence[ArgFilter] = (),
) -> EventCatalogue:
    """Read, parse and compile the ABI at `uri` (several comma-separated URIs are merged)
    with the given reader; RELAYER_ARG_FILTERS are checked against it (a `ConfigError`)."""
    return apply_arg_filters(event_catalogue(load_abi(read, uri), selected, uri), arg_filters, uri)


def load_abi(read: Callable[[str], bytes], uri: str) -> list[AbiEntry]:
    """The entries of the ABI at `uri`, several comma-separated URIs merged in order."""
    entries: list[AbiEntry] = []
    for one in (u.strip() for u in uri.split(",")):
        if not one:
            continue
        raw = read(one)
        try:
            document = json.loads(raw)
        except ValueError as e:
            raise AbiError(f"ABI_URI {one} is not valid JSON: {e}") from e
        entries.extend(abi_entries(document, one))
    return entries
