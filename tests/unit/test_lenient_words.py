"""The word-slicing decoder of static data reads every value exactly as the registry's
lenient eth-abi decoder does (function/core/lenient.py), on edge and random words."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi.exceptions import InsufficientDataBytes

from function.core import lenient

TYPES = ["uint8", "uint64", "uint256", "int8", "int24", "int256", "address", "bool",
         "bytes1", "bytes4", "bytes32"]  # fmt: skip
EDGES = [b"\0" * 32, b"\xff" * 32, b"\0" * 31 + b"\x01", b"\x80" + b"\0" * 31,
         b"\0" * 31 + b"\x80", b"\x7f" + b"\xff" * 31]  # fmt: skip


def registry(types: list[str]) -> Any:
    decoder = lenient.EVM_REGISTRY.get_tuple_decoder(*types)
    return lambda data: decoder(lenient.decoding.ContextFramesBytesIO(data))


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
    for decode in (lenient.tuple_decoder(types), registry(types)):
        with pytest.raises(InsufficientDataBytes):
            decode(b"\0" * 63)


def test_only_static_elementary_layouts_take_the_word_path() -> None:
    assert lenient._words_decoder(["uint256", "address"]) is not None
    for types in (["string"], ["uint256", "bytes"], ["uint256[2]"], ["(uint256,bool)"], []):
        assert lenient._words_decoder(types) is None
