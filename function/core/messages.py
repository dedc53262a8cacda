"""Build the Pub/Sub message of an event (docs/CONTRACT.md §3): JSON data, attributes and
ordering key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from function.core.model import DeadLetter, Event


@dataclass(frozen=True, slots=True)
class Message:
    """What the publisher sends for one event."""

    data: bytes
    attributes: dict[str, str]
    ordering_key: str


def event_payload(event: Event) -> dict[str, Any]:
    """The JSON object of §3, in the documented key order; `transaction` last, when read
    (RELAYER_INCLUDE)."""
    payload = {
        "event_id": event.event_id,
        "chain_id": event.chain_id,
        "contract": event.contract,
        "event": event.name,
        "args": event.args,
        "block_number": event.block_number,
        "block_hash": event.block_hash,
        "block_timestamp": event.block_timestamp,
        "transaction_hash": event.transaction_hash,
        "transaction_index": event.transaction_index,
        "log_index": event.log_index,
        "removed": event.removed,
    }
    if event.transaction is not None:
        payload["transaction"] = event.transaction
    return payload


@lru_cache(maxsize=1024)
def rfc3339(timestamp: int) -> str | None:
    """Block time as RFC 3339 in UTC, the form CloudEvents `time` requires; None for a time
    RFC 3339 cannot write (after 9999-12-31: a devnet's clock may say anything). Cached:
    the events of a block share its time."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def ordering_key(chain_id: int, contract: str) -> str:
    """One key per contract: Pub/Sub then delivers each contract's events in chain order."""
    return f"{chain_id}:{contract}"


def attributes_of(payload: dict[str, Any], *, replay: bool = False) -> dict[str, str]:
    """Message attributes, CloudEvents binary-mode ones included, from a §3 payload."""
    chain_id = payload["chain_id"]
    contract = payload["contract"]
    attributes = {
        "event_id": payload["event_id"],
        "event": payload["event"],
        "chain_id": str(chain_id),
        "contract": contract,
        "block_number": str(payload["block_number"]),
        "removed": "true" if payload["removed"] else "false",
        "ce-specversion": "1.0",
        "ce-id": payload["event_id"],
        "ce-source": f"eip155:{chain_id}:{contract}",
        "ce-type": f"evm.event.{payload['event']}",
    }
    if payload.get("block_timestamp") is not None:
        when = rfc3339(int(payload["block_timestamp"]))
        if when is not None:  # the time stays in `data` whatever it is
            attributes["ce-time"] = when
    if replay:
        attributes["replay"] = "true"
    return attributes


# One encoder for every message: json.dumps with options builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes kept for rebuilding a retraction later."""
    return _COMPACT.encode(payload).encode()


def dead_letter_message(dead: DeadLetter, chain_id: int, relayer_id: str) -> Message:
    """The raw log and the reason, for the dead-letter topic (no ordering key)."""
    payload = {
        "event_id": dead.event_id,
        "chain_id": chain_id,
        "contract": dead.contract,
        "relayer_id": relayer_id,
        "reason": dead.reason,
        "block_number": dead.block_number,
        "block_hash": dead.block_hash,
        "transaction_hash": dead.transaction_hash,
        "log_index": dead.log_index,
        "log": dict(dead.log),
    }
    attributes = {
        "event_id": dead.event_id,
        "chain_id": str(chain_id),
        "contract": dead.contract,
        "block_number": str(dead.block_number),
        "relayer_id": relayer_id,
        "reason": dead.reason[:1000],
    }
    return Message(encode(payload), attributes, "")


def build_message(event: Event, *, ordering: bool, replay: bool = False) -> Message:
    """The message for one event; without ordering the key is empty (Pub/Sub's "none")."""
    payload = event_payload(event)
    key = ordering_key(event.chain_id, event.contract) if ordering else ""
    return Message(encode(payload), attributes_of(payload, replay=replay), key)
