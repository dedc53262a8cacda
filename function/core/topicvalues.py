"""A RELAYER_ARG_FILTERS value as the 32-byte topic the EVM writes for it, pure.

A node's topic filter compares whole words, so a value is encoded exactly as Solidity emits
it (eth-abi's encoding of one value): an address or integer right-aligned, sign-extended for
`intN`, `bytesN` left-aligned. An indexed `string` or `bytes` is stored as the keccak-256 of its
value, so the filter takes the value (a string's UTF-8 text as written, bytes as 0x hex) and
hashes it. An indexed array or tuple is hashed from an encoding of its own; messages show its
topic (`args`), and the filter takes that topic, 0x and 64 hex digits.

A value is written as messages write it (docs/CONTRACT.md §3): integers in decimal, addresses
0x-hex (EIP-55 or one case), bools `true`/`false`, bytes 0x-hex.
"""

from __future__ import annotations

import re

from eth_hash.auto import keccak

from function.core.abitypes import parse as parse_abi_type
from function.core.values import checksum_typo

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DECIMAL = re.compile(r"-?[0-9]{1,80}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_WORD = re.compile(r"0x[0-9a-fA-F]{64}")
_SIZED = re.compile(r"(u?int|bytes)([0-9]*)")


def topic_for(abi_type: str, value: str) -> str:
    """The topic (0x, 64 lowercase hex digits) of `value` as an indexed `abi_type`; a
    `ValueError` saying what a value of that type looks like otherwise."""
    parsed = parse_abi_type(abi_type)
    if parsed.is_array or parsed.components is not None:
        if not _WORD.fullmatch(value):
            raise ValueError(
                "0x and 64 hex digits: an indexed array or tuple is stored as a hash, so filter "
                "on the topic its messages show"
            )
        return value.lower()
    if abi_type == "string":
        return "0x" + keccak(value.encode()).hex()
    if abi_type == "bytes":
        return "0x" + keccak(_hex_bytes(value)).hex()
    from eth_abi.abi import encode  # eth-abi only with RELAYER_ARG_FILTERS (`abitypes`)

    return "0x" + encode([abi_type], [_static(abi_type, value)]).hex()


def _static(abi_type: str, value: str) -> object:
    """The Python value eth-abi encodes for a static type."""
    if abi_type == "address":
        return _address(value)
    if abi_type == "bool":
        if value.lower() not in ("true", "false"):
            raise ValueError("true or false")
        return value.lower() == "true"
    sized = _SIZED.fullmatch(abi_type)
    if sized and sized.group(1) == "bytes":
        width = int(sized.group(2))
        if not re.fullmatch(f"0x[0-9a-fA-F]{{{2 * width}}}", value):
            raise ValueError(f"0x and {2 * width} hex digits ({width} bytes)")
        return bytes.fromhex(value[2:])
    if sized:
        return _integer(sized.group(1) == "int", int(sized.group(2) or 256), value)
    raise ValueError(f"a value of a type filters support: filtering on {abi_type} is not supported")


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError("an address: 0x followed by 40 hex digits")
    if checksum_typo(value):
        raise ValueError("an address with a valid EIP-55 checksum (or in one case): a typo?")
    return value.lower()


def _integer(signed: bool, bits: int, value: str) -> int:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    expected = f"a decimal integer from {low} to {high}"
    if not _DECIMAL.fullmatch(value):
        raise ValueError(expected)
    number = int(value)
    if not low <= number <= high:
        raise ValueError(expected)
    return number


def _hex_bytes(value: str) -> bytes:
    if not _HEX.fullmatch(value):
        raise ValueError("0x and an even number of hex digits (the bytes, whose hash is the topic)")
    return bytes.fromhex(value[2:])
