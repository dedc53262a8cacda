"""What one JSON-RPC request is, and how it can fail, for `rpc` and its callers.

`RpcCallError` and `RangeTooLargeError` (in `function.errors`) reach the callers; `Retry` and
`BatchTooLarge` here are the client's own control flow (fail over, or split the batch) and
never leave it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Validator = Callable[[Any], None]  # raises ValueError when an answer cannot be right


@dataclass(frozen=True)
class Call:
    """One JSON-RPC request, with an optional check of its answer."""

    method: str
    params: list[Any]
    check: Validator | None = None


class BatchTooLarge(Exception):
    """The node refused a batch for its length; `stated` is the cap it gave, if any."""

    def __init__(self, stated: int | None) -> None:
        super().__init__(f"batch too large (cap {stated})")
        self.stated = stated


class Retry(Exception):
    """A failure worth retrying or failing over (network, 5xx, 429, garbage)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
