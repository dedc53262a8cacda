"""The naive relayer: what people write first, as the reference point a user would otherwise have.

web3's `get_logs` and `ContractEvent.process_log`; for each event a Firestore transaction
that checks and records its id, then one `publish(...).result()`. It produces the same
message data as CONTRACT §3 (so the bench compares equal work), but pays per event what the
relayer pays per block or per batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eth_utils.abi import event_abi_to_log_topic
from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]
from web3 import Web3

PUBLISH_TIMEOUT_S = 60.0


def jsonable(value: Any) -> Any:
    """web3's decoded values in the JSON forms of §3 (integers as decimal strings)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):  # web3's AttributeDict for structs
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    raise TypeError(f"unexpected value {value!r}")


class NaiveRelayer:
    """One event at a time: decode, claim in a transaction, publish, wait."""

    def __init__(
        self,
        w3: Web3,
        address: str,
        abi: Sequence[dict[str, Any]],
        db: firestore.Client,
        publisher: pubsub_v1.PublisherClient,
        topic_path: str,
        collection: str,
    ) -> None:
        self.w3 = w3
        self.contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
        self.events = {
            "0x" + event_abi_to_log_topic(e).hex(): self.contract.events[e["name"]]()  # type: ignore[arg-type]
            for e in abi
            if e.get("type") == "event"
        }
        self.db = db
        self.seen = db.collection(collection)
        self.publisher = publisher
        self.topic_path = topic_path
        self.chain_id = w3.eth.chain_id

    def relay(self, from_block: int, to_block: int) -> int:
        """Relay the range; the number of messages published."""
        logs = self.w3.eth.get_logs(
            {"fromBlock": from_block, "toBlock": to_block, "address": self.contract.address}
        )
        published = 0
        for log in logs:
            event = self.events[log["topics"][0].to_0x_hex()].process_log(log)
            event_id = f"{self.chain_id}:{log['blockHash'].to_0x_hex()}:{log['logIndex']}"
            if not self._claim(event_id):
                continue
            timestamp = int(log["blockTimestamp"], 16)  # type: ignore[typeddict-item]  # anvil sends it
            payload = {
                "event_id": event_id, "chain_id": self.chain_id,
                "contract": event["address"], "event": event["event"],
                "args": jsonable(dict(event["args"])), "block_number": event["blockNumber"],
                "block_hash": event["blockHash"].to_0x_hex(), "block_timestamp": timestamp,
                "transaction_hash": event["transactionHash"].to_0x_hex(),
                "transaction_index": event["transactionIndex"], "log_index": event["logIndex"],
                "removed": False,
            }  # fmt: skip
            self.publisher.publish(
                self.topic_path,
                json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
                event_id=event_id,
                event=event["event"],
                chain_id=str(self.chain_id),
                contract=event["address"],
                block_number=str(event["blockNumber"]),
                **{"ce-time": datetime.fromtimestamp(timestamp, UTC).isoformat()},
            ).result(timeout=PUBLISH_TIMEOUT_S)
            published += 1
        return published

    def _claim(self, event_id: str) -> bool:
        """True when this run recorded the event id first (a transaction per event)."""
        ref = self.seen.document(event_id)

        @firestore.transactional
        def claim(txn: firestore.Transaction) -> bool:
            if ref.get(transaction=txn).exists:
                return False
            txn.set(ref, {"published_at": datetime.now(UTC)})
            return True

        result: bool = claim(self.db.transaction())
        return result
