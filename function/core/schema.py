"""A JSON Schema of the messages a relayer publishes for its ABI (docs/CONTRACT.md §3), pure.

Consumers validate what they receive against it (`relayer schema`); the tests validate every
message they receive, so the schema cannot drift from the messages. Values follow §3: integers
are decimal strings, addresses EIP-55 (checked as 40 hex digits: JSON Schema cannot check the
checksum), bytes lowercase 0x hex, arrays and tuples as arrays and objects. An indexed value of
a dynamic type is its topic: the keccak hash, 32 bytes of hex.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from function.core.catalogue import EventCatalogue

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_ARRAY = re.compile(r"^(.*)\[(\d*)\]$")
_HEX = "^0x([0-9a-f]{2})*$"
_HASH = "^0x[0-9a-f]{64}$"
_ADDRESS = "^0x[0-9a-fA-F]{40}$"

Schema = dict[str, Any]


def _string(pattern: str) -> Schema:
    return {"type": "string", "pattern": pattern}


def value_schema(param: Mapping[str, Any], abi_type: str | None = None) -> Schema:
    """The schema of one decoded ABI value (the same walk as `values.converter_for`)."""
    abi_type = str(param.get("type", "")) if abi_type is None else abi_type
    array = _ARRAY.match(abi_type)
    if array:
        items = value_schema(param, array.group(1))
        schema: Schema = {"type": "array", "items": items}
        if array.group(2):
            schema["minItems"] = schema["maxItems"] = int(array.group(2))
        return schema
    if abi_type == "tuple":
        components = list(param.get("components") or [])
        names = [str(c.get("name") or f"arg{i}") for i, c in enumerate(components)]
        return _object({n: value_schema(c) for n, c in zip(names, components, strict=True)})
    return _scalar(abi_type)


def _scalar(abi_type: str) -> Schema:
    if abi_type.startswith("uint"):
        return _string("^[0-9]+$")
    if abi_type.startswith("int"):
        return _string("^-?[0-9]+$")
    if abi_type == "address":
        return _string(_ADDRESS)
    if abi_type == "bool":
        return {"type": "boolean"}
    if abi_type == "string":
        return {"type": "string"}
    if abi_type.startswith(("fixed", "ufixed")):
        return _string("^-?[0-9]+(\\.[0-9]+)?$")
    if abi_type.startswith("bytes") and abi_type != "bytes":
        return _string(f"^0x[0-9a-f]{{{2 * int(abi_type[5:])}}}$")
    if abi_type == "function":
        return _string("^0x[0-9a-f]{48}$")
    return _string(_HEX)  # bytes


def _object(properties: Mapping[str, Schema], required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _args(inputs: list[Mapping[str, Any]]) -> Schema:
    properties: dict[str, Schema] = {}
    for n, p in enumerate(inputs):
        name = str(p.get("name") or f"arg{n}")
        kind = str(p.get("type", ""))
        hashed = bool(p.get("indexed")) and (
            kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("tuple")
        )
        properties[name] = _string(_HASH) if hashed else value_schema(p)
    return _object(properties)


def message_schema(
    catalogue: EventCatalogue,
    abi: Sequence[Mapping[str, Any]],
    chain_id: int,
    *,
    transaction: bool = False,
) -> Schema:
    """The schema of the `data` of every message for the selected events of `abi`."""
    common: dict[str, Schema] = {
        "event_id": _string(f"^{chain_id}:0x[0-9a-f]{{64}}:[0-9]+$"),
        "chain_id": {"const": chain_id},
        "contract": _string(_ADDRESS),
        "event": {"type": "string"},
        "args": {"type": "object"},
        "block_number": {"type": "integer", "minimum": 0},
        "block_hash": _string(_HASH),
        "block_timestamp": {"type": ["integer", "null"], "minimum": 0},
        "transaction_hash": _string(_HASH),
        "transaction_index": {"type": "integer", "minimum": 0},
        "log_index": {"type": "integer", "minimum": 0},
        "removed": {"type": "boolean"},
    }
    if transaction:
        common["transaction"] = _object(
            {
                "from": _string(_ADDRESS),
                "to": {"anyOf": [_string(_ADDRESS), {"type": "null"}]},
                "value": _string("^[0-9]+$"),
                "status": {"enum": [0, 1]},
            }
        )
    required = [k for k in common if k != "transaction"]
    seen: set[str] = set()
    layouts: list[Schema] = []
    for entry in abi:
        if entry.get("type") != "event" or entry.get("name") not in catalogue.selected:
            continue
        inputs = list(entry.get("inputs") or [])
        key = f"{entry['name']}({','.join(str(p.get('type')) for p in inputs)})" + ",".join(
            "i" if p.get("indexed") else "d" for p in inputs
        )
        if key in seen:
            continue
        seen.add(key)
        layouts.append(
            {
                "title": str(entry["name"]),
                "properties": {"event": {"const": entry["name"]}, "args": _args(inputs)},
            }
        )
    return {
        "$schema": DRAFT,
        "title": f"Relayer messages of chain {chain_id}",
        "description": "The `data` of each Pub/Sub message (docs/CONTRACT.md §3).",
        **_object(common, required),
        "anyOf": layouts,
    }
