"""ABI type strings parsed as eth-abi's grammar parses them, without importing eth-abi.

Importing eth-abi costs a run about 0.2 s of CPU (it pulls in eth-utils, pydantic and a
parser generator): a scheduled run that finds nothing new spent a quarter of its time on
it. Most events only need their types' shapes, and their data is read straight from the
words (`lenient`); eth-abi is imported only for the layouts that need its decoders.

The grammar is eth-abi's (`eth_abi.grammar`): a tuple `(T,...)` or a basic type (letters,
then a size `M` or `MxN` with no leading zero), either followed by array dimensions `[k]`
(k > 0) or `[]`. Like eth-abi's `parse`, it accepts any base name (`foo`, `uint7`): what a
base means is checked where it is decoded. `tests/unit/test_abitypes.py` compares both
parsers on every shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

Dims = tuple[tuple[int, ...], ...]  # each dimension: (k,) for [k], () for []

_BASIC = re.compile(r"([A-Za-z]+)(?:([1-9][0-9]*)(?:x([1-9][0-9]*))?)?")
_DIM = re.compile(r"\[([1-9][0-9]*)?\]")


class AbiTypeError(ValueError):
    """A type string the grammar does not allow."""


@dataclass(frozen=True)
class AbiType:
    """One parsed type: a basic one (`base`, `sub`) or a tuple (`components`)."""

    base: str | None
    sub: int | tuple[int, int] | None
    components: tuple[AbiType, ...] | None  # None: a basic type
    arrlist: Dims | None  # None: not an array

    @property
    def is_array(self) -> bool:
        return bool(self.arrlist)

    @property
    def item_type(self) -> AbiType:
        """The type of one item of an array (its last dimension removed)."""
        if not self.arrlist:
            raise AbiTypeError(f"{self.to_type_str()} is not an array")
        rest = self.arrlist[:-1] or None
        return AbiType(self.base, self.sub, self.components, rest)

    @property
    def is_dynamic(self) -> bool:
        if self.arrlist:
            return not self.arrlist[-1] or self.item_type.is_dynamic
        if self.components is not None:
            return any(c.is_dynamic for c in self.components)
        return self.base == "string" or (self.base == "bytes" and self.sub is None)

    def validate(self) -> None:
        """`AbiTypeError` for a type the grammar parses that does not exist (`uint7`,
        `bytes33`), by eth-abi's rules; unknown base names pass, as there."""
        if self.components is not None:
            for c in self.components:
                c.validate()
            return
        problem = _problem(self.base or "", self.sub)
        if problem is not None:
            raise AbiTypeError(f"{self.to_type_str()}: {problem}")

    def to_type_str(self) -> str:
        if self.components is not None:
            head = "(" + ",".join(c.to_type_str() for c in self.components) + ")"
        else:
            sub = self.sub
            size = (
                "" if sub is None else f"{sub[0]}x{sub[1]}" if isinstance(sub, tuple) else str(sub)
            )
            head = f"{self.base}{size}"
        dims = "".join(f"[{d[0]}]" if d else "[]" for d in self.arrlist or ())
        return head + dims


def _problem(base: str, sub: int | tuple[int, int] | None) -> str | None:
    if base == "string" and sub is not None:
        return "string type cannot have suffix"
    if base == "bytes" and isinstance(sub, tuple):
        return "bytes type must have either no suffix or a numerical suffix"
    if base == "bytes" and isinstance(sub, int) and sub > 32:
        return "maximum 32 bytes for fixed-length bytes"
    if base in ("int", "uint"):
        if not isinstance(sub, int):
            return "integer type must have numerical suffix"
        if sub < 8 or sub > 256:
            return "integer size out of bounds (max 256 bits)"
        if sub % 8:
            return "integer size must be multiple of 8"
    if base in ("fixed", "ufixed"):
        if not isinstance(sub, tuple):
            return "fixed type must have suffix of form <bits>x<exponent>, e.g. 128x19"
        bits, exponent = sub
        if bits < 8 or bits > 256:
            return "fixed size out of bounds (max 256 bits)"
        if bits % 8:
            return "fixed size must be multiple of 8"
        if exponent < 1 or exponent > 80:
            return f"fixed exponent size out of bounds, {exponent} must be in 1-80"
    if base == "hash" and not isinstance(sub, int):
        return "hash type must have numerical suffix"
    if base == "address" and sub is not None:
        return "address cannot have suffix"
    return None


@lru_cache(maxsize=1024)
def parse(type_str: str) -> AbiType:
    """The type `type_str` names; `AbiTypeError` when the grammar does not allow it."""
    parsed, at = _type(type_str, 0)
    if at != len(type_str):
        raise AbiTypeError(f"cannot parse {type_str[at:]!r} at column {at + 1} of {type_str!r}")
    return parsed


def _type(text: str, at: int) -> tuple[AbiType, int]:
    if text.startswith("(", at):
        components, at = _components(text, at)
        dims, at = _dims(text, at)
        return AbiType(None, None, components, dims), at
    basic = _BASIC.match(text, at)
    if basic is None:
        raise AbiTypeError(f"cannot parse {text[at:]!r} at column {at + 1} of {text!r}")
    base, size, frac = basic.groups()
    sub: int | tuple[int, int] | None = None
    if frac is not None:
        sub = (int(size), int(frac))
    elif size is not None:
        sub = int(size)
    dims, end = _dims(text, basic.end())
    return AbiType(base, sub, None, dims), end


def _components(text: str, at: int) -> tuple[tuple[AbiType, ...], int]:
    if text.startswith("()", at):
        raise AbiTypeError(f'zero-sized tuple types "()" are not supported ({text!r})')
    at += 1  # "("
    items = []
    while True:
        item, at = _type(text, at)
        items.append(item)
        if text.startswith(",", at):
            at += 1
            continue
        if text.startswith(")", at):
            return tuple(items), at + 1
        raise AbiTypeError(f"cannot parse {text[at:]!r} at column {at + 1} of {text!r}")


def _dims(text: str, at: int) -> tuple[Dims | None, int]:
    dims: list[tuple[int, ...]] = []
    while (dim := _DIM.match(text, at)) is not None:
        dims.append((int(dim.group(1)),) if dim.group(1) else ())
        at = dim.end()
    return (tuple(dims) if dims else None), at
