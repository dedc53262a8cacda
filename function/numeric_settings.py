"""Numeric settings: one strict grammar, and bounds that keep every value usable downstream.

Python's `int()` and `float()` accept more than an operator means: `1_0`, `+5`, surrounding
whitespace, Arabic-Indic digits (`١٢`), `nan`, `inf`, `1e400`. And a value that parses can
still break a run long after the start: `now + timedelta(days=3000000)` passes year 9999,
Firestore integers are int64 (`next_block` and `chain_id` are stored), a chain id must fit
the JSON-safe range wallets and nodes use. So each number is read with ASCII digits only and
checked against a range chosen so that nothing later can overflow; a value outside it stops
the start with exit 2 (docs/CONTRACT.md §1) instead of failing every run after publishing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from function.errors import ConfigError

D = TypeVar("D", int, None)

MAX_BLOCK = 2**63 - 1  # Firestore stores integers as int64: next_block must fit
MAX_CHAIN_ID = 4_503_599_627_370_476  # EIP-2294's bound (what wallets and nodes accept)
MAX_LEASE_S = 7 * 24 * 3600.0  # Cloud Run's longest task (7 days): no run needs longer
MAX_POLL_S = 30 * 24 * 3600.0  # a monthly look is the slowest schedule that makes sense
MAX_TTL_DAYS = 36_500.0  # ~100 years: expire_at stays far below datetime's year 9999
MAX_TASKS = 10_000  # Cloud Run's most tasks per job execution

_INTEGER = re.compile(r"[0-9]{1,20}")  # 20 digits: more than any bound, far below int()'s limit
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


@dataclass(frozen=True)
class Integer:
    """An integer within low..high, written in ASCII digits alone."""

    low: int
    high: int
    why: str = ""  # where the upper bound comes from, shown in the error

    @property
    def expected(self) -> str:
        bound = f" ({self.why})" if self.why else ""
        return f"an integer from {self.low} to {self.high}{bound}, digits 0-9 only"

    def parse(self, raw: str) -> int:
        if not _INTEGER.fullmatch(raw):
            raise ValueError(raw)
        value = int(raw)
        if not self.low <= value <= self.high:
            raise ValueError(raw)
        return value


@dataclass(frozen=True)
class Positive:
    """A number of `unit` above 0 and at most `high` (fractions and 1e3 notation allowed)."""

    unit: str
    high: float
    why: str = ""

    @property
    def expected(self) -> str:
        bound = f" ({self.why})" if self.why else ""
        return f"a number of {self.unit} above 0 and at most {self.high:g}{bound}"

    def parse(self, raw: str) -> float:
        if not _DECIMAL.fullmatch(raw):
            raise ValueError(raw)  # nan, inf, +5, 1_0, ١٢, spaces
        value = float(raw)
        if not 0 < value <= self.high:  # 1e-400 reads as 0, 1e400 as inf: both out
            raise ValueError(raw)
        return value


@dataclass(frozen=True)
class NonNegative(Positive):
    """0 (off), or a number of `unit` above 0 and at most `high`."""

    @property
    def expected(self) -> str:
        bound = f" ({self.why})" if self.why else ""
        return f"0 (off) or a number of {self.unit} at most {self.high:g}{bound}"

    def parse(self, raw: str) -> float:
        mantissa = re.split("[eE]", raw)[0]
        if _DECIMAL.fullmatch(raw) and not any(c in "123456789" for c in mantissa):
            return 0.0  # written as a zero (not 1e-400, which only reads as one)
        return super().parse(raw)


CHAIN_ID = Integer(1, MAX_CHAIN_ID, "EIP-2294")
BLOCK_NUMBER = Integer(0, MAX_BLOCK, "below 2**63")
BLOCK_COUNT = Integer(1, MAX_BLOCK, "below 2**63")
CONFIRMATIONS = Integer(0, MAX_BLOCK, "below 2**63")
LEASE_SECONDS = Positive("seconds", MAX_LEASE_S, "7 days, Cloud Run's longest task")
POLL_SECONDS = Positive("seconds", MAX_POLL_S, "30 days")
RUN_SECONDS = NonNegative("seconds", MAX_LEASE_S, "7 days, Cloud Run's longest task")
TTL_DAYS = Positive("days", MAX_TTL_DAYS, "about 100 years")
TASK_INDEX = Integer(0, MAX_TASKS - 1, "Cloud Run runs at most 10000 tasks")
TASK_COUNT = Integer(1, MAX_TASKS, "Cloud Run runs at most 10000 tasks")


def invalid(name: str, value: str, expected: str) -> ConfigError:
    """The one line for a bad setting: the variable, its value (cut short) and what is expected."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    return ConfigError(f"{name}={shown!r} is invalid: expected {expected}")


def read_integer(env: Mapping[str, str], name: str, default: D, kind: Integer) -> int | D:
    """An integer setting within its bounds; unset or blank: `default`."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        return kind.parse(raw)
    except ValueError:
        raise invalid(name, raw, kind.expected) from None


def read_decimal(env: Mapping[str, str], name: str, default: float, kind: Positive) -> float:
    """A positive number setting within its bounds; unset or blank: `default`."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        return kind.parse(raw)
    except ValueError:
        raise invalid(name, raw, kind.expected) from None


def _raw(env: Mapping[str, str], name: str) -> str | None:
    # Read raw, not stripped: ' 5' is a typo to show, not a value to guess at.
    raw = env.get(name, "")
    return raw if raw.strip() else None
