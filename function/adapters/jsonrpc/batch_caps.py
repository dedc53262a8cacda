"""How many calls one JSON-RPC batch may hold on an endpoint: learned from refusals.

Nodes cap batches and refuse a longer one as a whole, each in its own shape (the bodies, with
sources, are in devstack/rpcproxy/bodies.py): geth and bor answer HTTP 200 with a one-item
array carrying the first call's id (-32600 "batch too large"), Erigon one object with id null
("batch limit 100 exceeded ..."), NodeReal -32005 (Infura's rate-limit code) "batch size
exceed limit 500", jsonrpsee (reth) "The batch request was too large" with the limit in data.
So a refusal is read from its words, before anything else is made of the answer. The cap a
refusal states is taken as is; one that states none halves the batch. Pure: no I/O.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from function.core.provider_errors import error_text

_REFUSAL = re.compile(
    r"batch (?:is )?too large|batch request was too large|batch (?:size |request )?limit"
    r"|batch size (?:exceeds?|is too)|too many (?:requests|calls) in (?:a |the )?batch",
    re.IGNORECASE,
)
_STATED = (
    re.compile(r"batch (?:request )?limit (?:of )?(\d+)", re.IGNORECASE),  # Erigon
    re.compile(r"batch size exceeds? (?:the )?limit (?:of )?(\d+)", re.IGNORECASE),  # NodeReal
    re.compile(r"exceeded max limit of (\d+)", re.IGNORECASE),  # jsonrpsee
    re.compile(r"(?:at most|maximum(?: batch size)?(?: is)?:?) (\d+)", re.IGNORECASE),
)


def refused_batch(answers: Any, sent: int) -> tuple[bool, int | None]:
    """Whether `answers` (the parsed body) refuses a batch of `sent` calls as too long, and
    the cap it states. A batch answered call by call is never a refusal, whatever it says."""
    if sent < 2:
        return False, None
    if isinstance(answers, list):
        if len(answers) >= sent or len(answers) == 0:
            return False, None
        errors = [a.get("error") for a in answers if isinstance(a, dict)]
    elif isinstance(answers, dict):
        errors = [answers.get("error")]
    else:
        return False, None
    for error in errors:
        if error is None:
            continue
        text = error_text(error)
        if _REFUSAL.search(text):
            return True, stated_cap(text)
    return False, None


def stated_cap(text: str) -> int | None:
    """The largest batch a refusal says the node accepts, if it says."""
    for pattern in _STATED:
        match = pattern.search(text)
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return None


def shrunk(sent: int, stated: int | None) -> int:
    """The cap to use after a batch of `sent` calls was refused; below `sent`, at least 1."""
    if stated is not None and 0 < stated < sent:
        return stated
    return max(1, sent // 2)


def first_part(pending: int, cap: int | None) -> int:
    """How many of `pending` calls go in the next request. Parts are cut from the end, so the
    last calls of a batch (a range end's header and its eth_getLogs) stay in one request."""
    if cap is None or pending <= cap:
        return pending
    return pending % cap or cap


def parts(calls: int, cap: int | None) -> list[int]:
    """The request sizes `first_part` cuts `calls` calls into, in order."""
    sizes: list[int] = []
    while calls > 0:
        sizes.append(first_part(calls, cap))
        calls -= sizes[-1]
    return sizes


class BatchCaps:
    """The learned cap of every endpoint host, kept for the process: every run of a
    long-lived process (the `relay` function) starts at what worked."""

    def __init__(self, known: dict[str, int] | None = None) -> None:
        self._caps = dict(known or {})
        self._lock = threading.Lock()

    def cap(self, host: str) -> int | None:
        with self._lock:
            return self._caps.get(host)

    def refused(self, host: str, sent: int, stated: int | None) -> int:
        """Learn from a refusal of `sent` calls; the new cap."""
        new = shrunk(sent, stated)
        with self._lock:
            self._caps[host] = min(new, self._caps.get(host, new))
            return self._caps[host]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._caps)


PROCESS_CAPS = BatchCaps()
