"""One ABI event compiled for decoding: its parameters, its layout in a log, its decoders.

A spec is built once per event of the ABI (`abi`), so decoding a log costs one call of the
compiled data decoder and one cheap reader per indexed topic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from function.core.lenient import TupleDecode
from function.core.values import Converter


@dataclass(frozen=True)
class Param:
    """One event parameter, ready to decode."""

    name: str
    abi_type: str  # canonical, tuples spelled out: "(uint8,string)[]"
    indexed: bool
    convert: Converter
    hashed_in_topic: bool  # indexed dynamic values are stored as their keccak hash
    from_topic: Callable[[str], Any] | None = None  # a static value read from its topic


@dataclass(frozen=True)
class EventSpec:
    """An event of the ABI in one indexed layout (one topic0 may have several)."""

    name: str
    signature: str
    topic0: str  # 0x lowercase hex; an anonymous event's log does not carry it
    params: tuple[Param, ...]
    anonymous: bool
    decode_data: TupleDecode  # the non-indexed values, the EVM's way (`lenient`)
    head_size: int  # bytes of the data's head: all of it when every data value is static
    static_data: bool
    # RELAYER_ARG_FILTERS: (topic position, the topics it may hold), every one required;
    # empty: every log of the layout is relayed (`argfilters`).
    arg_topics: tuple[tuple[int, frozenset[str]], ...] = ()

    @cached_property  # asked per log: computed once
    def indexed(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.indexed)

    @property
    def data_types(self) -> tuple[str, ...]:
        return tuple(p.abi_type for p in self.params if not p.indexed)

    @cached_property  # asked per log: computed once
    def topic_count(self) -> int:
        """The topics its log has: topic0 (unless anonymous), then one per indexed value."""
        return len(self.indexed) + (0 if self.anonymous else 1)

    @property
    def layout(self) -> str:
        """How an operator recognises it in a message: `Transfer(address indexed from, ...)`."""
        inner = ", ".join(
            f"{p.abi_type}{' indexed' if p.indexed else ''} {p.name}" for p in self.params
        )
        return f"{self.name}({inner}){' anonymous' if self.anonymous else ''}"

    def admits(self, topics: Sequence[str]) -> bool:
        """Whether a log with these topics passes the layout's argument filters: the exact
        words a node's topic filter compares."""
        return all(
            position < len(topics) and topics[position].lower() in allowed
            for position, allowed in self.arg_topics
        )

    def fits(self, data: bytes) -> bool:
        """Whether `data` is laid out as this event's: the exact size when every value is
        static, otherwise a head that fits and a tail that decodes."""
        if self.static_data:
            return len(data) == self.head_size
        if len(data) < self.head_size:
            return False
        try:
            self.decode_data(data)
        except Exception:  # eth-abi raises several unrelated types for data that is not it
            return False
        return True
