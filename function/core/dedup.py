"""Replay protection, pure: which events of a chunk still need publishing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from function.core.model import DONE


class _Identified(Protocol):
    @property
    def event_id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


@dataclass(frozen=True, slots=True)
class Selection(Generic[T]):
    """Items of a chunk split by what the processed-event set already says of them."""

    to_publish: list[T]
    duplicates: list[T]


def select_unpublished(items: Iterable[T], processed: Mapping[str, str]) -> Selection[T]:
    """Replay protection: an event recorded as published (or dead-lettered) is never sent
    again; one recorded as removed by a reorganisation may come back."""
    fresh: list[T] = []
    seen: list[T] = []
    for item in items:
        (seen if processed.get(item.event_id) in DONE else fresh).append(item)
    return Selection(fresh, seen)
