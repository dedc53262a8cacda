"""The word-slicing decoder of static data reads every value exactly as the registry's
lenient eth-abi decoder does (function/core/lenient.py), on edge and random words."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi.exceptions import InsufficientDataBytes

from function.core import lenient, lenient_registry

TYPES = ["uint8", "uint64", "uint256", "int8", "int24", "int256", "address", "bool",
         "bytes1", "bytes4", "bytes32"]  # fmt: skip
EDGES = [b"\0" * 32, b"\xff" * 32, b"\0" * 31 + b"\x01", b"\x80" + b"\0" * 31,
         b"\0" * 31 + b"\x80", b"\x7f" + b"\xff" * 31]  # fmt: skip


def registry(types: list[str]) -> Any:
    decoder = lenient_registry.EVM_REGISTRY.get_tuple_decoder(*types)
    return lambda data: decoder(lenient_registry.decoding.ContextFramesBytesIO(data))


@pytest.mark.parametrize("abi_type", TYPES)
def test_each_static_type_reads_as_the_registry_reads_it(abi_type: str) -> None:
    types = [abi_type, "uint256", abi_type]
    fast, slow = lenient.tuple_decoder(types), registry(types)
    assert fast is not None
    rng = random.Random(abi_type)
    words = EDGES + [rng.randbytes(32) for _ in range(500)]
    for first in words:
        for last in (EDGES[0], EDGES[1], rng.randbytes(32)):
            data = first + rng.randbytes(32) + last + rng.randbytes(rng.choice((0, 5)))
            assert fast(data) == slow(data)


def test_data_too_short_is_refused_as_the_registry_refuses_it() -> None:
    types = ["address", "uint256"]
    with pytest.raises(lenient.DataTooShortError):
        lenient.tuple_decoder(types)(b"\0" * 63)
    with pytest.raises(InsufficientDataBytes):
        registry(types)(b"\0" * 63)


def test_only_static_elementary_layouts_take_the_word_path() -> None:
    assert lenient._words_decoder(["uint256", "address"]) is not None
    assert lenient._words_decoder(["(uint8,string)", "bytes"]) is not None
    for types in (
        ["uint256[2]"],
        ["(uint256,bool)"],
        ["string[]"],
        ["uint256[][]"],
        [],
        ["(uint256,bool)[]"],
        ["((uint8,bool),string)"],
        ["(string,uint256[2])"],
    ):
        assert lenient._words_decoder(types) is None


LAYOUTS = [
    ["uint256", "string", "bytes32", "address[]"],
    ["string"],
    ["bytes", "bool"],
    ["address", "uint256", "uint256", "string"],
    ["int8[]", "bytes"],
    ["(uint8,string,bytes,uint64)"],  # the escrow's DisputeRaised
    ["uint256", "(address,string)", "bytes"],
    ["((uint8,string),bytes)", "bool"],
    ["(string,address[])", "(bytes,uint256)"],
]


def _value(abi_type: str, rng: random.Random) -> Any:
    if abi_type.startswith("("):
        from function.core.abitypes import parse

        parts = parse(abi_type).components or ()
        return tuple(_value(c.to_type_str(), rng) for c in parts)
    return {
        "uint256": lambda: rng.randrange(2**256),
        "string": lambda: rng.choice(["", "hi", "ünï" * rng.randrange(20)]),
        "bytes32": lambda: rng.randbytes(32),
        "address[]": lambda: ["0x" + rng.randbytes(20).hex() for _ in range(rng.randrange(4))],
        "bytes": lambda: rng.randbytes(rng.randrange(70)),
        "bool": lambda: rng.random() < 0.5,
        "address": lambda: "0x" + rng.randbytes(20).hex(),
        "int8[]": lambda: [rng.randrange(-128, 128) for _ in range(rng.randrange(5))],
        "uint8": lambda: rng.randrange(256),
        "uint64": lambda: rng.randrange(2**64),
    }[abi_type]()


def _mangled(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(4)):
        kind = rng.randrange(4)
        if kind == 0 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif kind == 1:
            out = out[: rng.randrange(len(out) + 1)]
        elif kind == 2:
            out += rng.randbytes(rng.randrange(40))
        else:  # a small number (an offset, a length) where a word was
            at = rng.randrange(max(1, len(out) // 32)) * 32
            out[at : at + 32] = rng.randrange(300).to_bytes(32, "big")
    return bytes(out)


@pytest.mark.parametrize("types", LAYOUTS, ids=",".join)
def test_dynamic_values_read_and_fail_as_the_registry_reads_them(types: list[str]) -> None:
    """Valid encodings, then bytes flipped, cut, appended and offsets or lengths replaced:
    both decoders give the same values, or both refuse."""
    from eth_abi import encode

    fast, slow = lenient.tuple_decoder(types), registry(types)
    assert lenient._words_decoder(types) is not None
    rng = random.Random(",".join(types))
    for _ in range(1500):
        data = _mangled(encode(types, [_value(t, rng) for t in types]), rng)
        try:
            expected: Any = slow(data)
        except Exception:
            expected = "refused"
        try:
            got: Any = fast(data)
        except Exception:
            got = "refused"
        assert got == expected, data.hex()
