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
"""

# mypy: allow-untyped-calls
# (eth-abi's registry and decoder classes carry no annotations)

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eth_abi import decoding
from eth_abi.exceptions import InsufficientDataBytes, InvalidPointer
from eth_abi.grammar import parse
from eth_abi.registry import BaseEquals, registry

TupleDecode = Callable[[bytes], tuple[Any, ...]]

_ZERO_WORD = b"\0" * 32


class _HighBytesIgnored:
    """The bytes outside the value's width are padding the EVM never reads."""

    def validate_padding_bytes(self, value: Any, padding_bytes: bytes) -> None:
        return None


class _Uint(_HighBytesIgnored, decoding.UnsignedIntegerDecoder):
    pass


class _Int(_HighBytesIgnored, decoding.SignedIntegerDecoder):
    pass


class _Address(_HighBytesIgnored, decoding.AddressDecoder):
    pass


class _Ufixed(_HighBytesIgnored, decoding.UnsignedFixedDecoder):
    pass


class _Fixed(_HighBytesIgnored, decoding.SignedFixedDecoder):
    pass


class _BytesN(_HighBytesIgnored, decoding.BytesDecoder):
    pass


class _Bool(decoding.BooleanDecoder):
    value_bit_size = 256  # the whole word is the value: no padding to split off

    @staticmethod
    def decoder_fn(data: bytes) -> bool:
        return data != _ZERO_WORD


class _DeclaredLength:
    """Read exactly the declared length of a `bytes`/`string` tail, whatever its padding."""

    def read_data_from_stream(self, stream: decoding.ContextFramesBytesIO) -> bytes:
        length = decoding.decode_uint_256(stream)
        left = len(stream.getbuffer()) - stream.tell()
        if length > left:  # checked first: a hostile length may not fit a read() argument
            raise InsufficientDataBytes(f"a length of {length} bytes, only {left} left in the data")
        data: bytes = stream.read(length)
        return data


class _ByteString(_DeclaredLength, decoding.ByteStringDecoder):
    pass


class _String(_DeclaredLength, decoding.StringDecoder):
    def __init__(self) -> None:
        super().__init__(handle_string_errors="replace")  # eth-abi's knob: U+FFFD per sequence


def _registry() -> Any:
    evm = registry.copy()
    for label, lookup, decoder in (
        ("uint", BaseEquals("uint"), _Uint),
        ("int", BaseEquals("int"), _Int),
        ("address", BaseEquals("address"), _Address),
        ("bool", BaseEquals("bool"), _Bool),
        ("ufixed", BaseEquals("ufixed"), _Ufixed),
        ("fixed", BaseEquals("fixed"), _Fixed),
        ("bytes<M>", BaseEquals("bytes", with_sub=True), _BytesN),
        ("bytes", BaseEquals("bytes", with_sub=False), _ByteString),
        ("function", BaseEquals("function"), _BytesN),
        ("string", BaseEquals("string"), _String),
    ):
        evm.unregister_decoder(label)
        evm.register_decoder(lookup, decoder, label=label)
    return evm


EVM_REGISTRY = _registry()


READ_BUDGET = 4  # times the data a decode may read before it counts as aliased offsets
_READ_SLACK = 4096


class _Budgeted(decoding.ContextFramesBytesIO):  # type: ignore[misc]
    """A stream that refuses to be read more than `READ_BUDGET` times over."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._left = READ_BUDGET * len(data) + _READ_SLACK

    def read(self, size: int | None = -1) -> bytes:
        chunk: bytes = super().read(size)
        self._left -= len(chunk)
        if self._left < 0:
            raise ValueError(
                f"its offsets point at the same bytes again and again (more than "
                f"{READ_BUDGET} times its {len(self.getbuffer())} bytes read): it would "
                "decode to far more than the log holds"
            )
        return chunk


def _aliasable(abi_type: Any) -> bool:
    """Whether offsets in this type's encoding can repeat: an array of dynamic values."""
    if abi_type.is_array and abi_type.item_type.is_dynamic:
        return True
    if abi_type.is_array:
        return _aliasable(abi_type.item_type)
    return any(_aliasable(c) for c in getattr(abi_type, "components", None) or ())


def _word_reader(abi_type: str) -> Callable[[bytes], Any] | None:
    """A static elementary type read straight from its 32-byte word, exactly as the
    registry's decoder above reads it (tests/unit/test_lenient_words.py), at a fraction of
    eth-abi's cost per value; None for any other type."""
    t = parse(abi_type)
    if t.is_array or getattr(t, "components", None):
        return None
    base, sub = t.base, t.sub
    if base == "uint":
        mask = (1 << sub) - 1
        return lambda w: int.from_bytes(w, "big") & mask
    if base == "int":
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
    """A top-level `string`, `bytes` or `T[]` of a static elementary T, read at its offset
    with the registry's checks (the length inside the data, each item's word there)."""
    t = parse(abi_type)
    if getattr(t, "base", None) in ("string", "bytes") and t.sub is None and not t.is_array:
        text = t.base == "string"

        def tail(data: bytes, at: int) -> Any:
            length = int.from_bytes(_word_at(data, at), "big")
            start = at + 32
            if length > len(data) - start:
                raise InsufficientDataBytes(
                    f"a length of {length} bytes, only {len(data) - start} left in the data"
                )
            raw = data[start : start + length]
            return raw.decode("utf-8", "replace") if text else raw

        return tail
    if t.is_array and len(t.arrlist) == 1 and not t.arrlist[0]:
        item = _word_reader(t.item_type.to_type_str())
        if item is None:
            return None

        def array(data: bytes, at: int) -> Any:
            count = int.from_bytes(_word_at(data, at), "big")
            start = at + 32
            if count > (len(data) - start) // 32:
                raise InsufficientDataBytes(f"an array of {count} words does not fit the data")
            return tuple(item(data[i : i + 32]) for i in range(start, start + 32 * count, 32))

        return array
    return None


def _word_at(data: bytes, at: int) -> bytes:
    word = data[at : at + 32]
    if len(word) < 32:
        raise InsufficientDataBytes(f"Tried to read 32 bytes, only got {len(word)} bytes.")
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
            raise InsufficientDataBytes(
                f"Tried to read {head_size} bytes, only got {len(data)} bytes."
            )
        offsets = []
        for i, tail in enumerate(tails):
            if tail is not None:
                at = int.from_bytes(data[32 * i : 32 * i + 32], "big")
                if at < head_size or at >= len(data):
                    raise InvalidPointer(f"Invalid pointer in tuple at location {32 * i}")
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
    decoder = EVM_REGISTRY.get_tuple_decoder(*types)
    stream = (
        _Budgeted if any(_aliasable(parse(t)) for t in types) else decoding.ContextFramesBytesIO
    )

    def decode(data: bytes) -> tuple[Any, ...]:
        values: tuple[Any, ...] = decoder(stream(data))
        return values

    return decode


def value_decoder(abi_type: str) -> Callable[[bytes], Any]:
    """Decode one static value from its 32-byte word (an indexed topic) the EVM's way."""
    decode = tuple_decoder([abi_type])
    return lambda word: decode(word)[0]
