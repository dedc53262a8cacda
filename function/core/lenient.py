"""eth-abi decoders that read a value as the EVM does, not as eth-abi's strict mode checks it.

Nothing on chain validates event data: Solidity never checks that a `string` is UTF-8, and
assembly (or another compiler) can leave junk above a small value. eth-abi rejects both; the
relayer must not stop on them (docs/CONTRACT.md §3), so it decodes what a contract reading the word
would get, the cleanup of Solidity's ABI coder v1 (`and`/`signextend`/`iszero(iszero)`):

- `uintN`, `intN`, `address`, `ufixed`/`fixed`: the low N bits of the word (signed types
  sign-extended from bit N-1); the bytes above them are ignored.
- `bool`: true when any bit of the word is set (viem throws on anything but 0 and 1, and
  Solidity's coder v2 reverts: neither is an option for a relayer).
- `bytesN` (and `function`): the first N bytes; the rest of the word is ignored.
- `string`, `bytes`: the declared length is read; the padding after it is not checked (nor
  is it required at the very end of the data); invalid UTF-8 has each invalid sequence
  replaced by U+FFFD, as viem and the WHATWG TextDecoder do.

Lengths and offsets still have to lie inside the data: a log that is too short for its
layout is a decode error, not a guess. Offsets may also point at the same bytes: an array of
2,000 offsets to one 2,000-word array is 128 kB of data that decodes to 4 million values
(seconds of CPU, a message over Pub/Sub's 10 MB). Honest data is read about once, so for
layouts where that can happen (arrays of dynamic values) decoding stops once it has read the
data several times over, and the log is a decode error (dead-lettered, never dropped).
Decoders are built once per ABI type and cached by the registry, so a log costs one call per
event, not a lookup per value.

Most events' data is static values, `string`, `bytes`, arrays of static values and structs
with a dynamic member of those: they are read here straight from their words, with the
registry's rules, and eth-abi is not even imported (about 0.2 s of a run's start, or of its
first such log: `abitypes`). Any other layout is decoded by eth-abi's
decoders with the EVM's rules above (`lenient_registry`), imported when an ABI has one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from function.core.abitypes import AbiType, AbiTypeError, parse

TupleDecode = Callable[[bytes], tuple[Any, ...]]

_ZERO_WORD = b"\0" * 32


class DataTooShortError(ValueError):
    """A length, an array or the head runs past the end of the data (eth-abi's
    InsufficientDataBytes on the same data)."""


class BadOffsetError(ValueError):
    """An offset points into the head or past the data (eth-abi's InvalidPointer)."""


def _aliasable(abi_type: AbiType) -> bool:
    """Whether offsets in this type's encoding can repeat: an array of dynamic values."""
    if abi_type.is_array and abi_type.item_type.is_dynamic:
        return True
    if abi_type.is_array:
        return _aliasable(abi_type.item_type)
    return any(_aliasable(c) for c in abi_type.components or ())


def _word_reader(abi_type: str) -> Callable[[bytes], Any] | None:
    """A static elementary type read straight from its 32-byte word, exactly as the
    registry's decoder above reads it (tests/unit/test_lenient_words.py), at a fraction of
    eth-abi's cost per value; None for any other type."""
    t = parse(abi_type)
    if t.is_array or t.components:
        return None
    base, sub = t.base, t.sub
    if base in ("uint", "int") and not isinstance(sub, int):
        raise AbiTypeError(f"{abi_type} has no size in bits")
    if base == "uint" and isinstance(sub, int):
        mask = (1 << sub) - 1
        return lambda w: int.from_bytes(w, "big") & mask
    if base == "int" and isinstance(sub, int):
        mask, sign, full = (1 << sub) - 1, 1 << (sub - 1), 1 << sub
        return lambda w: (v - full) if (v := int.from_bytes(w, "big") & mask) & sign else v
    if base == "address":
        return lambda w: "0x" + w[12:].hex()
    if base == "bool":
        return lambda w: w != _ZERO_WORD
    if base == "bytes" and isinstance(sub, int):
        return lambda w: w[:sub]
    return None


def _tail_reader(abi_type: str) -> Callable[[bytes, int], Any] | None:
    """A `string`, `bytes`, `T[]` of a static elementary T, or a dynamic tuple of what the
    words read, read at its offset with the registry's checks (the length inside the data,
    each item's word there, a tuple's offsets past its head and inside the data)."""
    t = parse(abi_type)
    if t.base in ("string", "bytes") and t.sub is None and not t.is_array:
        text = t.base == "string"

        def tail(data: bytes, at: int) -> Any:
            length = int.from_bytes(_word_at(data, at), "big")
            start = at + 32
            if length > len(data) - start:
                raise DataTooShortError(
                    f"a length of {length} bytes, only {len(data) - start} left in the data"
                )
            raw = data[start : start + length]
            return raw.decode("utf-8", "replace") if text else raw

        return tail
    if t.arrlist is not None and len(t.arrlist) == 1 and not t.arrlist[0]:
        item = _word_reader(t.item_type.to_type_str())
        if item is None:
            return None

        def array(data: bytes, at: int) -> Any:
            count = int.from_bytes(_word_at(data, at), "big")
            start = at + 32
            if count > (len(data) - start) // 32:
                raise DataTooShortError(f"an array of {count} words does not fit the data")
            return tuple(item(data[i : i + 32]) for i in range(start, start + 32 * count, 32))

        return array
    if t.components is not None and not t.is_array and t.is_dynamic:
        # A struct with a string, bytes or dynamic array: at its offset, laid out as the
        # data itself is (its own head, then its tails at offsets from its start).
        inner = _words_decoder([c.to_type_str() for c in t.components])
        if inner is None:
            return None
        decode_inner = inner

        def struct(data: bytes, at: int) -> Any:
            return decode_inner(data[at:])

        return struct
    return None


def _word_at(data: bytes, at: int) -> bytes:
    word = data[at : at + 32]
    if len(word) < 32:
        raise DataTooShortError(f"Tried to read 32 bytes, only got {len(word)} bytes.")
    return word


def _words_decoder(types: Sequence[str]) -> TupleDecode | None:
    """Data of static elementary values, `string`, `bytes` and arrays of static elementary
    values (most events): a word per value in the head, the others at their offsets. The
    registry's rules kept: an offset must point past the head and inside the data."""
    if not types:
        return None
    heads: list[Callable[[bytes], Any] | None] = []
    tails: list[Callable[[bytes, int], Any] | None] = []
    for t in types:
        head = _word_reader(t)
        tail = None if head is not None else _tail_reader(t)
        if head is None and tail is None:
            return None
        heads.append(head)
        tails.append(tail)
    head_size = 32 * len(types)

    def decode(data: bytes) -> tuple[Any, ...]:
        if len(data) < head_size:
            raise DataTooShortError(f"Tried to read {head_size} bytes, only got {len(data)} bytes.")
        offsets = []
        for i, tail in enumerate(tails):
            if tail is not None:
                at = int.from_bytes(data[32 * i : 32 * i + 32], "big")
                if at < head_size or at >= len(data):
                    raise BadOffsetError(f"Invalid pointer in tuple at location {32 * i}")
                offsets.append(at)
        out = []
        pointed = iter(offsets)
        for i, (head, tail) in enumerate(zip(heads, tails, strict=True)):
            if head is not None:
                out.append(head(data[32 * i : 32 * i + 32]))
            else:
                assert tail is not None
                out.append(tail(data, next(pointed)))
        return tuple(out)

    return decode


def tuple_decoder(types: Sequence[str]) -> TupleDecode:
    """Decode data laid out as `types` (one event's non-indexed values) the EVM's way."""
    fast = _words_decoder(types)
    if fast is not None:
        return fast
    parsed = [parse(t) for t in types]
    for t in parsed:
        _check_decodable(t)  # now, not at the first log: a bad ABI fails the start
    if importlib.util.find_spec("eth_abi") is None:  # found now, imported at the first log
        raise AbiTypeError("eth-abi, which decodes this layout, is not installed")
    aliasable = any(_aliasable(t) for t in parsed)
    built: list[TupleDecode] = []

    def decode(data: bytes) -> tuple[Any, ...]:
        # eth-abi is imported and its decoder built at the first log of this layout: a run
        # that meets none (an idle one) never pays for the import.
        if not built:
            from function.core.lenient_registry import registry_decoder

            built.append(registry_decoder(types, aliasable=aliasable))
        return built[0](data)

    return decode


_DECODED_BASES = frozenset(
    ("uint", "int", "address", "bool", "ufixed", "fixed", "bytes", "function", "string")
)  # what eth-abi's registry has decoders for


def _check_decodable(t: AbiType) -> None:
    """`AbiTypeError` for a type eth-abi's registry has no decoder for, as it would say."""
    if t.components is not None:
        for c in t.components:
            _check_decodable(c)
        return
    if t.base not in _DECODED_BASES:
        raise AbiTypeError(f"no decoder for {t.base!r}: not an ABI type")
    t.validate()


def value_decoder(abi_type: str) -> Callable[[bytes], Any]:
    """Decode one static value from its 32-byte word (an indexed topic) the EVM's way."""
    decode = tuple_decoder([abi_type])
    return lambda word: decode(word)[0]
