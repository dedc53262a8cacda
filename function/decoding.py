"""Decode raw logs into `Event`s with eth-abi directly (no web3 contract objects).

Decoding is pure and fast: a spec lookup by topic0, one `eth_abi.decode` of the data, the
indexed values from the topics, and the per-parameter converters compiled in `abi`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_abi.abi import decode as abi_decode

from .abi import EventSpec, Param
from .errors import DecodeError
from .records import Event, RawLog
from .values import checksum


def event_id(chain_id: int, block_hash: str, log_index: int) -> str:
    """The key consumers deduplicate on: `{chain_id}:{block hash}:{log index}`."""
    return f"{chain_id}:{block_hash.lower()}:{log_index}"


def _indexed_value(param: Param, topic: str) -> Any:
    if param.hashed_in_topic:  # the topic holds keccak(value): the value is not in the log
        return topic.lower()
    if param.from_topic is not None:
        return param.from_topic(topic)
    return abi_decode([param.abi_type], bytes.fromhex(topic[2:]))[0]


def decode_log(log: RawLog, specs: Mapping[str, EventSpec], chain_id: int) -> Event:
    """Decode one log of a configured contract, or raise `DecodeError` saying why."""
    topics = log.get("topics") or []
    spec = specs.get(topics[0].lower()) if topics else None
    where = f"log {log.get('logIndex')} of block {log.get('blockHash')}"
    if spec is None:
        raise DecodeError(f"{where} has topic0 {topics[:1]} which matches no selected ABI event")
    indexed = spec.indexed
    if len(topics) != len(indexed) + 1:
        raise DecodeError(
            f"{where} ({spec.name}) has {len(topics) - 1} indexed topics, "
            f"the ABI says {len(indexed)}"
        )
    try:
        data = abi_decode(spec.data_types, bytes.fromhex(log["data"][2:]))
        from_topics = [_indexed_value(p, t) for p, t in zip(indexed, topics[1:], strict=True)]
    except Exception as e:  # eth-abi raises several unrelated types for malformed data
        raise DecodeError(f"{where} ({spec.name}) cannot be decoded: {e}") from e
    args: dict[str, Any] = {}
    data_iter = iter(data)
    topic_iter = iter(from_topics)
    for p in spec.params:
        if p.indexed:
            value = next(topic_iter)
            args[p.name] = value if p.hashed_in_topic else p.convert(value)
        else:
            args[p.name] = p.convert(next(data_iter))
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
