"""Converters from eth-abi values to the JSON forms of docs/CONTRACT.md §3.

Integers become decimal strings (uint256 does not fit a JSON number), addresses EIP-55,
bytes 0x-lowercase hex, tuples objects keyed by component name. A converter is built once
per ABI parameter, so decoding pays no type dispatch per value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from eth_hash.auto import keccak

Converter = Callable[[Any], Any]

_ARRAY_SUFFIX = re.compile(r"^(.*)\[(\d*)\]$")


_HEX40 = re.compile(r"0[xX][0-9a-fA-F]{40}")
_UPPER = frozenset("89abcdef")  # a hash digit of 8 or more capitalises its letter


@lru_cache(maxsize=1 << 16)
def checksum(address: str) -> str:
    """EIP-55 form of an address, cached: checksumming hashes and is costly per log. The
    hash is taken here (eth-utils validates and converts on top, several times the cost);
    anything but 0x and 40 hex digits goes to eth-utils, which says what is wrong."""
    if not _HEX40.fullmatch(address):
        from eth_utils.address import to_checksum_address  # its error says what is wrong

        return str(to_checksum_address(address))
    lower = address[2:].lower()
    digest = keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if d in _UPPER else c for c, d in zip(lower, digest[:40], strict=True)
    )


def checksum_typo(address: str) -> bool:
    """True for an address (0x and 40 hex digits) in mixed case that is not its EIP-55
    form: a typo. An address in one case carries no checksum."""
    digits = address[2:]
    return digits != digits.lower() and digits != digits.upper() and checksum(address) != address


def _same(value: Any) -> Any:
    return value


def _integer(value: Any) -> str:
    return str(value)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _address(value: str) -> str:
    return checksum(value)


def _fixed(value: Decimal) -> str:
    return format(value, "f")


def _array(item: Converter) -> Converter:
    def convert(values: Any) -> list[Any]:
        return [item(v) for v in values]

    return convert


def _tuple(names: list[str], items: list[Converter]) -> Converter:
    pairs = list(zip(names, items, strict=True))

    def convert(values: Any) -> dict[str, Any]:
        return {name: item(v) for (name, item), v in zip(pairs, values, strict=True)}

    return convert


def _scalar(abi_type: str) -> Converter:
    if abi_type.startswith(("uint", "int")):
        return _integer
    if abi_type == "address":
        return _address
    if abi_type.startswith("bytes"):
        return _hex
    if abi_type.startswith(("fixed", "ufixed")):
        return _fixed
    if abi_type in ("bool", "string"):
        return _same
    if abi_type == "function":  # 24 bytes: address + selector
        return _hex
    raise ValueError(f"unsupported ABI type {abi_type!r}")


def converter_for(param: dict[str, Any], abi_type: str | None = None) -> Converter:
    """A converter for one ABI parameter description (with `components` for tuples)."""
    abi_type = str(param.get("type", "")) if abi_type is None else abi_type
    array = _ARRAY_SUFFIX.match(abi_type)
    if array:
        return _array(converter_for(param, array.group(1)))
    if abi_type == "tuple":
        components = param.get("components") or []
        names = [str(c.get("name") or f"arg{i}") for i, c in enumerate(components)]
        return _tuple(names, [converter_for(c) for c in components])
    return _scalar(abi_type)


def _uint_topic(bits: int) -> Callable[[str], int]:
    mask = (1 << bits) - 1

    def read(topic: str) -> int:
        return int(topic, 16) & mask  # the EVM reads the low bits; junk above is ignored

    return read


def _int_topic(bits: int) -> Callable[[str], int]:
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)

    def read(topic: str) -> int:
        value = int(topic, 16) & mask
        return value - (1 << bits) if value & sign else value

    return read


def _address_topic(topic: str) -> str:
    return "0x" + topic[-40:].lower()


def _bool_topic(topic: str) -> bool:
    return int(topic, 16) != 0


def topic_reader(abi_type: str) -> Callable[[str], Any] | None:
    """Read a static indexed value straight from its 32-byte topic (hex), several times
    faster than a full ABI decode, as the EVM reads it (see `lenient`); None for the types
    left to the lenient eth-abi decoders."""
    sized = re.fullmatch(r"(u?int|bytes)(\d*)", abi_type)
    if sized and sized.group(1) != "bytes":
        bits = int(sized.group(2) or 256)
        return _uint_topic(bits) if sized.group(1) == "uint" else _int_topic(bits)
    if abi_type == "address":
        return _address_topic
    if abi_type == "bool":
        return _bool_topic
    if sized and sized.group(2):
        width = 2 * int(sized.group(2))
        return lambda topic: bytes.fromhex(topic[2 : 2 + width])
    return None
