"""What one JSON-RPC request is, and how it can fail, for `rpc` and its callers.

`RpcCallError` and `RangeTooLargeError` reach the callers; `Retry` and `BatchTooLarge` stay
inside the client (fail over, or split the batch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from function.errors import RpcError

Validator = Callable[[Any], None]  # raises ValueError when an answer cannot be right


@dataclass(frozen=True)
class Call:
    """One JSON-RPC request, with an optional check of its answer."""

    method: str
    params: list[Any]
    check: Validator | None = None


class RpcCallError(RpcError):
    """The node refused a request for good (bad parameters, a refused key)."""

    def __init__(self, host: str, method: str, code: int | None, message: str) -> None:
        super().__init__(f"{method} failed on {host}: {message} (code {code})")
        self.host = host
        self.method = method
        self.code = code


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
