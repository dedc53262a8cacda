"""The relayer's ABI type parser (`function/core/abitypes.py`) against eth-abi's grammar:
the same strings accepted, with the same shape (base, size, dimensions, components, whether
dynamic), the same refused."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi.grammar import TupleType
from eth_abi.grammar import parse as eth_parse

from function.core.abitypes import AbiTypeError, parse

KNOWN = [
    "uint", "uint256", "uint7", "uint264", "int8", "int", "address", "address[]",
    "bool[2][]", "bytes", "bytes32", "bytes33", "bytes0", "string", "string[3]",
    "fixed128x18", "fixed", "ufixed8x1", "fixed8x81", "function", "(uint256,string)",
    "(uint256,(bool,address[]))[2]", "tuple", "uint256[0]", "uint256[01]", " uint256",
    "uint256 ", "foo", "(uint256)", "()", "bytes1[2][3]", "address payable", "byte",
    "((uint8,string)[],bytes)[][3]", "(", ")", "(uint256", "uint256)", "(,)", "(uint256,)",
    "[]", "uint256[", "uint256]", "uint256[2", "x", "x1", "1x", "uint8x", "uint8x0",
    "uint0", "Uint256", "uint256[][]", "((()))", "(bytes)[1]", "string[][2][]", "",
    "string8", "bytes8x1", "int264", "fixed7x1", "fixed8x0", "ufixed264x10", "hash",
    "hash32", "address20", "(uint7,bool)", "(bool,(string1))[]", "uint8[2]",
]  # fmt: skip


def shape(t: Any) -> Any:
    """What the relayer reads of a parsed type, from either parser."""
    components = getattr(t, "components", None)
    return (
        getattr(t, "base", None) if components is None else None,
        getattr(t, "sub", None) if components is None else None,
        None if components is None else tuple(shape(c) for c in components),
        tuple(tuple(d) for d in t.arrlist) if t.arrlist else None,
        t.is_dynamic,
        t.is_array,
        t.to_type_str(),
        shape(t.item_type) if t.is_array else None,
    )


def eth_shape(text: str) -> Any:
    try:
        parsed = eth_parse(text)
    except Exception:
        return "refused"
    assert isinstance(parsed, TupleType) or not hasattr(parsed, "components")
    try:
        parsed.validate()
    except Exception:
        return "invalid", shape(parsed)
    return shape(parsed)


def ours(text: str) -> Any:
    try:
        parsed = parse(text)
    except AbiTypeError:
        return "refused"
    try:
        parsed.validate()
    except AbiTypeError:
        return "invalid", shape(parsed)
    return shape(parsed)


@pytest.mark.parametrize("text", KNOWN, ids=[repr(k) for k in KNOWN])
def test_each_known_string_parses_as_eth_abi_parses_it(text: str) -> None:
    assert ours(text) == eth_shape(text)


def test_random_type_strings_parse_as_eth_abi_parses_them() -> None:
    rng = random.Random(13)
    pieces = ["uint", "int", "bytes", "string", "address", "bool", "fixed", "x", "0", "1",
              "8", "18", "256", "(", ")", ",", "[", "]", "[2]", "[]", " ", "a"]  # fmt: skip
    checked = accepted = valid = 0
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        got = ours(text)
        assert got == eth_shape(text), text
        checked += 1
        accepted += got != "refused"
        valid += got != "refused" and got[0] != "invalid"
    assert checked == 20_000 and accepted > 1_000 and 0 < valid < accepted  # all three ways


def test_a_refusal_names_the_string() -> None:
    with pytest.raises(AbiTypeError, match="uint256 "):
        parse("uint256 ")
    with pytest.raises(AbiTypeError, match="zero-sized"):
        parse("(uint256,())")
