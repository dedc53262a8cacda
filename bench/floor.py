"""The floor: the least work that relays a range of events, as one straight-line script.

No lease, no checkpoint, no Firestore, no framework: raw `eth_getLogs` over HTTP, eth-abi
decoding (addresses checksummed through a cache), the message of CONTRACT §3 (the same data,
attributes and ordering key the relayer sends), every message handed to the Pub/Sub client
(batches of up to 1,000) and every future awaited. What the relayer does beyond this is the
price of its guarantees; the bench compares the two.

`python -m bench.floor ...` prints one JSON line: counts and per-phase seconds. Run as a
process, its wall time includes the interpreter start and imports, like `python main.py`.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402 - timed from the first line
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from functools import cache  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402
from eth_abi.abi import decode  # noqa: E402
from eth_utils.address import to_checksum_address  # noqa: E402
from eth_utils.crypto import keccak  # noqa: E402
from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # noqa: E402

Convert = Callable[[Any], Any]
PUBLISH_TIMEOUT_S = 120.0
BATCH = pubsub_v1.types.BatchSettings(max_messages=1000, max_bytes=9_000_000, max_latency=0.01)


@cache
def _checksum(address: str) -> str:
    return str(to_checksum_address(address))


def _type_of(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_type_of(c) for c in param["components"]) + ")" + t[5:]
    return t


def _converter(param: dict[str, Any], t: str | None = None) -> Convert:
    """eth-abi value -> the JSON form of CONTRACT §3, compiled once per parameter."""
    t = str(param["type"]) if t is None else t
    if t.endswith("]"):
        item = _converter(param, t[: t.rindex("[")])
        return lambda vs: [item(v) for v in vs]
    if t == "tuple":
        parts = [(str(c["name"]), _converter(c)) for c in param["components"]]
        return lambda vs: {n: f(v) for (n, f), v in zip(parts, vs, strict=True)}
    if t.startswith(("uint", "int")):
        return str
    if t == "address":
        return _checksum
    if t.startswith("bytes"):
        return lambda v: "0x" + v.hex()
    return lambda v: v  # bool, string


def _topic_reader(t: str) -> Callable[[str], Any] | None:
    """A topic of a static elementary type is one word: read it without eth-abi's machinery."""
    if t == "address":
        return lambda w: "0x" + w[26:]
    if t == "bool":
        return lambda w: int(w, 16) != 0
    if t.startswith("uint"):
        return lambda w: int(w, 16)
    if t.startswith("int"):
        return lambda w: int(w, 16) - (1 << 256) if w[2] in "89abcdef" else int(w, 16)
    if t.startswith("bytes") and t != "bytes":
        size = int(t[5:])
        return lambda w: bytes.fromhex(w[2 : 2 + 2 * size])
    return None


class _Event:
    """One ABI event, ready to decode."""

    def __init__(self, entry: dict[str, Any]) -> None:
        params = entry["inputs"]
        self.name = str(entry["name"])
        self.topic0 = "0x" + keccak(text=f"{self.name}({','.join(map(_type_of, params))})").hex()
        self.data_types = [_type_of(p) for p in params if not p.get("indexed")]
        # (name, indexed, converter, topic reader); an indexed dynamic value (string, bytes,
        # array, tuple) is stored as its keccak hash and relayed as the topic itself
        self.params: list[tuple[str, bool, Convert, Callable[[str], Any] | None]] = []
        for p in params:
            t = _type_of(p)
            reader = _topic_reader(t) if p.get("indexed") else None
            convert = _converter(p) if reader or not p.get("indexed") else str.lower
            self.params.append((str(p["name"]), bool(p.get("indexed")), convert, reader))

    def args(self, log: dict[str, Any]) -> dict[str, Any]:
        data = iter(decode(self.data_types, bytes.fromhex(log["data"][2:])))
        topics = iter(log["topics"][1:])
        out: dict[str, Any] = {}
        for name, indexed, convert, reader in self.params:
            if indexed:
                word = next(topics)
                out[name] = convert(reader(word) if reader else word)
            else:
                out[name] = convert(next(data))
        return out


def events_of(abi: Sequence[dict[str, Any]]) -> dict[str, _Event]:
    return {
        e.topic0: e
        for e in (_Event(x) for x in abi if x.get("type") == "event" and not x.get("anonymous"))
    }


def get_logs(
    session: requests.Session, url: str, address: str, start: int, end: int, range_size: int
) -> list[dict[str, Any]]:
    """Raw eth_getLogs, `range_size` blocks per call."""
    logs: list[dict[str, Any]] = []
    for lo in range(start, end + 1, range_size):
        params = {"fromBlock": hex(lo), "toBlock": hex(min(lo + range_size - 1, end)),
                  "address": address}  # fmt: skip
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [params]}
        reply = session.post(url, data=json.dumps(body), timeout=120,
                             headers={"Content-Type": "application/json"}).json()  # fmt: skip
        if "result" not in reply:
            raise RuntimeError(f"eth_getLogs failed: {reply.get('error')}")
        logs.extend(reply["result"])
    return logs


def message(
    log: dict[str, Any], events: dict[str, _Event], chain_id: int
) -> tuple[bytes, dict[str, str]]:
    """Data and attributes of the §3 message for one log."""
    event = events[log["topics"][0]]
    contract = _checksum(log["address"])
    block_hash = log["blockHash"]
    log_index = int(log["logIndex"], 16)
    event_id = f"{chain_id}:{block_hash}:{log_index}"
    stamp = int(log["blockTimestamp"], 16)
    number = int(log["blockNumber"], 16)
    payload = {
        "event_id": event_id, "chain_id": chain_id, "contract": contract, "event": event.name,
        "args": event.args(log), "block_number": number, "block_hash": block_hash,
        "block_timestamp": stamp, "transaction_hash": log["transactionHash"],
        "transaction_index": int(log["transactionIndex"], 16), "log_index": log_index,
        "removed": False,
    }  # fmt: skip
    attributes = {
        "event_id": event_id, "event": event.name, "chain_id": str(chain_id),
        "contract": contract, "block_number": str(number), "removed": "false",
        "ce-specversion": "1.0", "ce-id": event_id,
        "ce-source": f"eip155:{chain_id}:{contract}", "ce-type": f"evm.event.{event.name}",
        "ce-time": datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }  # fmt: skip
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return data, attributes


def relay(
    *,
    rpc_url: str,
    address: str,
    abi: Sequence[dict[str, Any]],
    start: int,
    end: int,
    project: str,
    topic: str,
    chain_id: int,
    range_size: int,
    ordering: bool,
) -> dict[str, Any]:
    """Fetch, decode and publish every event of `start..end`; seconds per phase."""
    t0 = time.perf_counter()
    events = events_of(abi)
    client = pubsub_v1.PublisherClient(
        batch_settings=BATCH,
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=ordering),
    )
    topic_path = client.topic_path(project, topic)
    session = requests.Session()
    session.trust_env = False
    t1 = time.perf_counter()
    logs = get_logs(session, rpc_url, address, start, end, range_size)
    t2 = time.perf_counter()
    messages = [message(log, events, chain_id) for log in logs]
    t3 = time.perf_counter()
    key = f"{chain_id}:{_checksum(address)}" if ordering else ""
    futures = [client.publish(topic_path, d, ordering_key=key, **a) for d, a in messages]
    ids = [f.result(timeout=PUBLISH_TIMEOUT_S) for f in futures]
    t4 = time.perf_counter()
    client.stop()
    return {
        "events": len(logs),
        "published": len(ids),
        "setup_s": t1 - t0,
        "get_logs_s": t2 - t1,
        "decode_s": t3 - t2,
        "publish_s": t4 - t3,
        "work_s": t4 - t1,
    }


def main(argv: Sequence[str] | None = None) -> int:
    imports_s = time.perf_counter() - _T0
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--abi", required=True, help="artifact or ABI JSON file")
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--chain-id", type=int, default=31337)
    p.add_argument("--range-size", type=int, default=1000)
    p.add_argument("--ordering", choices=("true", "false"), default="true")
    a = p.parse_args(argv)
    document = json.loads(Path(a.abi).read_text())
    result = relay(
        rpc_url=a.rpc_url,
        address=a.address,
        abi=document["abi"] if isinstance(document, dict) else document,
        start=a.start,
        end=a.end,
        project=a.project,
        topic=a.topic,
        chain_id=a.chain_id,
        range_size=a.range_size,
        ordering=a.ordering == "true",
    )
    result["imports_s"] = imports_s
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
