"""What an RPC provider's refusal means: shrink the log range, wait, retry elsewhere, or stop.

Providers cap eth_getLogs by block span or by result count and say so only in prose, each in
its own words (tests/unit/test_provider_errors.py lists the real messages and where each was seen).
Codes and statuses are overloaded, so the text is read first: -32005 is Infura's rate limit
but also its "more than 10000 results" and MaticVigil's range cap; QuickNode refuses a range
with HTTP 413 and Alchemy with HTTP 400. Pure: no I/O, and the clock only for an HTTP-date
Retry-After when the caller passes no `now`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class FailureKind(StrEnum):
    """How the caller reacts: split the range, back off, retry or fail over, or stop."""

    RANGE_TOO_LARGE = "range_too_large"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified failure with whatever hints the provider gave."""

    kind: FailureKind
    retry_after_s: float | None = None
    suggested: tuple[int, int] | None = None  # from/to block range the provider says will work
    max_range: int | None = None  # most blocks (inclusive count) one request may span


_N = r"(\d{1,3}(?:,\d{3})+|\d+)(\s*k\b)?"  # 10000, 10,000, 2K, 1k
# Phrases that state a block-span limit; each has one number (_N). Providers in comments.
_LIMITS = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"up to an? {_N} block range",  # Alchemy
        # QuickNode, BlockPI, 1RPC ("limited to 0 - 10000 blocks range"), zkEVM
        rf"limited to (?:an? )?(?:\d[\d,]*\s*-\s*)?{_N}\s*(?:blocks?\s*)?range",
        rf"max(?:imum)? block range\s*(?:[:=]|of|is)?\s*{_N}",  # geth/BSC/PublicNode, reth, Morph
        rf"too wide \(maximum {_N}\)",  # Moonbeam
        rf"range \d[\d,]* (?:exceeds limit of|is bigger than range limit) {_N}",  # Infura, Tenderly
        rf"max range: {_N}",  # Cloudflare
        rf"maximum allowed (?:number of requested blocks )?is {_N}",  # thirdweb, Sei
        rf"maximum is set to {_N}",  # Avalanche
        rf"limit the query to at most {_N} blocks",  # Coinbase
        rf"blocks distance: {_N}",  # Ankr (newer chains)
        rf"allowed for your plan \(\d+ > {_N}\)",  # Blast
        rf"blocks allowed for your plan: {_N}",  # MaticVigil
        rf"max is {_N} blocks",  # Merkle, LlamaRPC
        rf"range: \d+, max: {_N}",
        rf"block range limit \({_N} blocks\)",  # POKT
        rf"more than {_N} blocks at once",  # POKT
        rf"ranges over {_N} blocks",  # dRPC
    )
)
# Range or result-size refusals that may state no number at all.
_RANGE_WORDS = re.compile(
    r"block range (?:is )?too (?:wide|large|high|big)|range (?:is )?too large|block range limit"
    r"|block range is (?:bigger|larger|greater) than|exceeds? the range allowed"
    r"|returned more than \d[\d,]* results|exceeds max results|logs matched by query exceeds"
    r"|response size (?:exceeded|should not)|response too large|too many logs"
    r"|more than \d[\d,]* logs|response is too big|query timeout exceeded|log query timed out"
    r"|no backend is currently healthy",  # Base's public RPC, for too wide a range (Ponder)
    re.IGNORECASE,
)
_HEX_PAIR = re.compile(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]", re.IGNORECASE)
_DEC_PAIR = re.compile(r"retry with the range (\d+)\s*-\s*(\d+)", re.IGNORECASE)

_RATE_CODES = frozenset({429, -32005, -32007, -32090})
_RATE_WORDS = re.compile(
    r"rate.?limit|too many requests|request limit reached|compute units per second"
    r"|request rate exceeded|reduce calls per second",
    re.IGNORECASE,
)
_AUTH_WORDS = re.compile(
    r"invalid (?:api|project) (?:key|id)|must be authenticated|unauthori[sz]ed|forbidden"
    r"|project id settings|monthly capacity limit|app is inactive",
    re.IGNORECASE,
)
# A load-balanced node behind the others, or the network: the same call may work next time.
_TRANSIENT_WORDS = re.compile(
    r"header not found|unknown block|extends beyond current head|beyond latest executed block"
    r"|still syncing|timeout|timed out|temporarily unavailable"
    r"|service unavailable|bad gateway|connection reset|reset by peer|socket hang up"
    r"|internal error|overloaded",
    re.IGNORECASE,
)
_FATAL_CODES = frozenset({-32700, -32600, -32601, -32602, -32002, 3})
_FATAL_WORDS = re.compile(
    r"invalid argument|invalid params|invalid request|invalid block range|method not found"
    r"|not supported|not whitelisted|not available on|chain id|execution reverted",
    re.IGNORECASE,
)
_RETRY_TEXT = (
    re.compile(r"backoff_seconds\W{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE),  # Infura's error data
    re.compile(r"(?:retry|try again) (?:after|in) (\d+(?:\.\d+)?)\s*s(?:ec(?:ond)?s?)?\b", re.I),
)
_GO_DURATION = re.compile(r"retry in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)
_GO_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def classify(
    http_status: int | None,
    rpc_code: int | None,
    message: str,
    retry_after_header: str | None = None,
    *,
    now: datetime | None = None,
) -> Failure:
    """Classify one failed request; `message` should carry the error's data too (`error_text`).

    RANGE_TOO_LARGE on a call without a block range (not eth_getLogs) is best treated as
    TRANSIENT: some wordings (Base's "no backend is currently healthy") are also said in general.
    """
    range_failure = _range_failure(message)
    if range_failure is not None:
        return range_failure
    wait = _retry_after(retry_after_header, message, now)
    if http_status == 429 or rpc_code in _RATE_CODES or _RATE_WORDS.search(message):
        return Failure(FailureKind.RATE_LIMITED, retry_after_s=wait)
    if http_status in (401, 403) or _AUTH_WORDS.search(message):
        return Failure(FailureKind.FATAL)
    if _TRANSIENT_WORDS.search(message):
        return Failure(FailureKind.TRANSIENT, retry_after_s=wait)
    if http_status == 413:  # QuickNode's range refusal: our small request is not what is large
        return Failure(FailureKind.RANGE_TOO_LARGE)
    if http_status is not None and (http_status >= 500 or http_status == 408):
        return Failure(FailureKind.TRANSIENT, retry_after_s=wait)
    if http_status is not None and http_status >= 400:
        return Failure(FailureKind.FATAL)
    if rpc_code in _FATAL_CODES or _FATAL_WORDS.search(message):
        return Failure(FailureKind.FATAL)
    return Failure(FailureKind.TRANSIENT, retry_after_s=wait)


def next_range(start: int, end: int, failure: Failure) -> int:
    """The end block to ask for next, never below `start`; `end` itself means "cannot shrink"."""
    if end < start:
        raise ValueError(f"empty block range {start}..{end}")
    if failure.kind is not FailureKind.RANGE_TOO_LARGE or end == start:
        return end
    if failure.suggested is not None:
        low, high = failure.suggested
        if start <= low <= high < end:  # a suggestion that echoes our range is no suggestion
            return start + (high - low)
    if failure.max_range is not None and start + failure.max_range - 1 < end:
        return start + max(failure.max_range, 1) - 1
    return start + (end - start) // 2


def error_text(error: object) -> str:
    """One string of a JSON-RPC error's message and data: some providers put the hint in data."""
    if not isinstance(error, dict):
        return str(error)
    message = str(error.get("message", ""))
    data = error.get("data")
    if data is None or data == "":
        return message
    extra = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
    return f"{message} {extra}"


def _range_failure(message: str) -> Failure | None:
    limit = _max_range(message)
    suggested = _suggested(message)
    if limit is None and not _RANGE_WORDS.search(message):
        return None
    return Failure(FailureKind.RANGE_TOO_LARGE, suggested=suggested, max_range=limit)


def _max_range(message: str) -> int | None:
    for pattern in _LIMITS:
        match = pattern.search(message)
        if match:
            value = int(match.group(1).replace(",", "")) * (1000 if match.group(2) else 1)
            if value > 0:
                return value
    return None


def _suggested(message: str) -> tuple[int, int] | None:
    match = _HEX_PAIR.search(message)
    pair = (int(match[1], 16), int(match[2], 16)) if match else None
    if pair is None and (match := _DEC_PAIR.search(message)):
        pair = (int(match[1]), int(match[2]))
    return pair if pair is not None and pair[0] <= pair[1] else None


def _retry_after(header: str | None, message: str, now: datetime | None) -> float | None:
    if header and header.strip():
        text = header.strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    for pattern in _RETRY_TEXT:
        match = pattern.search(message)
        if match:
            return float(match.group(1))
    match = _GO_DURATION.search(message)
    if match:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", match.group(1).lower())
        return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)
    return None
