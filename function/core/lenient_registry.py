"""eth-abi's decoders with the EVM's rules (`lenient`): for the layouts the words alone do
not read (tuples, nested and fixed-size arrays of dynamic values, ...). Imported only when an
ABI has such a layout: eth-abi costs a run's start about 0.2 s.
"""

# mypy: allow-untyped-calls
# (eth-abi's registry and decoder classes carry no annotations)

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eth_abi import decoding
from eth_abi.exceptions import InsufficientDataBytes
from eth_abi.registry import BaseEquals, registry

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


def registry_decoder(
    types: Sequence[str], *, aliasable: bool
) -> Callable[[bytes], tuple[Any, ...]]:
    """Decode data laid out as `types` with the registry; `aliasable`: offsets may point at
    the same bytes again (the read is budgeted)."""
    decoder = EVM_REGISTRY.get_tuple_decoder(*types)
    stream = _Budgeted if aliasable else decoding.ContextFramesBytesIO

    def decode(data: bytes) -> tuple[Any, ...]:
        values: tuple[Any, ...] = decoder(stream(data))
        return values

    return decode
