"""Decode raw logs into `Event`s with eth-abi directly (no web3 contract objects).

Decoding is pure and fast: the catalogue's choice of event (usually one lookup by topic0),
one call of the event's compiled data decoder, the indexed values read from the topics, and
the per-parameter converters compiled in `abi`. Values are read as the EVM reads them
(`lenient`), so only a log that does not fit its event's layout is a `DecodeError`.
"""

from __future__ import annotations

from typing import Any

from function.core.catalogue import EventCatalogue
from function.core.model import Event, RawLog
from function.core.values import checksum
from function.errors import DecodeError


def event_id(chain_id: int, block_hash: str, log_index: int) -> str:
    """The key consumers deduplicate on: `{chain_id}:{block hash}:{log index}`."""
    return f"{chain_id}:{block_hash.lower()}:{log_index}"


def where(log: RawLog) -> str:
    """A log as an operator finds it: `log 7 of block 9505701 (0xab…)`."""
    try:
        return (
            f"log {int(log['logIndex'], 16)} of block {int(log['blockNumber'], 16)} "
            f"({log['blockHash']})"
        )
    except (KeyError, TypeError, ValueError):
        return f"log {log.get('logIndex')} of block {log.get('blockHash')}"


def decode_log(log: RawLog, specs: EventCatalogue, chain_id: int) -> Event | None:
    """Decode one log of a configured contract; None for a log of an event that is not
    selected; a `DecodeError` that says what is wrong with the log otherwise."""
    topics = log.get("topics") or []
    try:
        data = bytes.fromhex(log["data"][2:])
    except (KeyError, ValueError) as e:
        raise DecodeError(f"{where(log)} has data that is not hex: {e}") from e
    try:
        spec = specs.choose(topics, data)
    except DecodeError as e:
        raise DecodeError(f"{where(log)} {e}") from None
    if spec is None:
        return None
    try:
        values = iter(spec.decode_data(data))
        args: dict[str, Any] = {}
        topic_iter = iter(topics[0 if spec.anonymous else 1 :])
        for p in spec.params:
            if not p.indexed:
                args[p.name] = p.convert(next(values))
            elif p.hashed_in_topic:  # the topic holds keccak(value): the value is not in the log
                args[p.name] = next(topic_iter).lower()
            else:
                assert p.from_topic is not None
                args[p.name] = p.convert(p.from_topic(next(topic_iter)))
    except Exception as e:  # eth-abi raises several unrelated types for malformed data
        raise DecodeError(
            f"{where(log)} ({spec.name}) does not fit the ABI's layout {spec.layout} "
            f"({len(data)} bytes of data): {e}"
        ) from e
    block_hash = log["blockHash"].lower()
    log_index = int(log["logIndex"], 16)
    stamp = log.get("blockTimestamp")
    return Event(
        event_id=event_id(chain_id, block_hash, log_index),
        chain_id=chain_id,
        contract=checksum(log["address"]),
        name=spec.name,
        args=args,
        block_number=int(log["blockNumber"], 16),
        block_hash=block_hash,
        block_timestamp=int(stamp, 16) if stamp else None,
        transaction_hash=log["transactionHash"].lower(),
        transaction_index=int(log["transactionIndex"], 16),
        log_index=log_index,
        removed=bool(log.get("removed", False)),
    )
