"""The floor: the least work that relays a range of events, as one straight-line script.

No lease, no checkpoint, no Firestore, no framework: one raw `eth_getLogs` per range over a
plain HTTP connection, each event's data decoded by the relayer's own decoder
(`function.core.lenient.tuple_decoder`: static values and top-level strings, bytes and
arrays of static values read straight from their words, anything else by eth-abi), static
indexed topics read straight from the word, addresses checksummed by the relayer's cached
EIP-55 (`function.core.values.checksum`): whatever faster path the relayer takes, the floor
takes too, the message of CONTRACT §3 (the same data, attributes and ordering key the relayer
sends), and every message published and every answer awaited. What the relayer does beyond
this is the price of its guarantees; the bench compares the two. The garbage collector is set
as the job sets it (`function.ops.heap`: what the imports made frozen, collections less often).

Two ways to publish, `--publish`:
- `requests`: raw Pub/Sub `PublishRequest`s of up to 1,000 messages (9 MB), as the relayer
  sends them, written in protobuf's wire format by the relayer's own encoder
  (`function.adapters.pubsub_wire`; no protobuf classes, no `google.pubsub_v1` import), the
  constant attributes of a contract's event encoded once, and sent as bytes on a bare gRPC
  channel. One request in flight at a time, as one ordering key demands; the next
  request is built while the last one is on the wire, and its answer (the message ids) is
  awaited before the next is sent.
- `batching`: the client library's `PublisherClient` with message ordering, batches of up to
  1,000, every future awaited: what most code does.
The bench runs both and takes the faster as the floor (results.json says which).

`python -m bench.floor ...` prints one JSON line: counts and per-phase seconds. Run as a
process, its wall time includes the interpreter start and imports, like `python main.py`.
Publishing needs PUBSUB_EMULATOR_HOST (the bench's emulator, or a proxy in front of it).
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402 - timed from the first line
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterable, Iterator, Sequence  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import grpc  # type: ignore[import-untyped]  # noqa: E402
from eth_hash.auto import keccak  # noqa: E402 - as the relayer hashes (no eth-utils import)

from function.adapters.pubsub_wire import (  # noqa: E402 - the relayer's own wire format
    attribute,
    encode_request,
    field,
    message_ids,
)
from function.core.lenient import tuple_decoder  # noqa: E402 - the relayer's fast path
from function.core.values import checksum  # noqa: E402
from function.ops.heap import settle_for_one_run  # noqa: E402 - the collector as the job sets it

Convert = Callable[[Any], Any]
Outgoing = tuple[bytes, dict[str, str]]  # one message: data, attributes
Parts = tuple[bytes, "_Event", str, str, int, int]  # data, event, contract, id, block, time
PUBLISH_TIMEOUT_S = 120.0
MAX_MESSAGES = 1000  # Pub/Sub's limit per request, as the relayer cuts them
MAX_BYTES = 9_000_000  # under the 10 MB request limit, as the relayer keeps it
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"
PATHS = ("requests", "batching")
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # as the relayer


def _checksum(address: str) -> str:
    return checksum(address)


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
    """One ABI event, ready to decode: its data decoder is built once, as the relayer's is."""

    def __init__(self, entry: dict[str, Any]) -> None:
        params = entry["inputs"]
        self.name = str(entry["name"])
        signature = f"{self.name}({','.join(map(_type_of, params))})"
        self.topic0 = "0x" + keccak(signature.encode()).hex()
        self._decode = tuple_decoder([_type_of(p) for p in params if not p.get("indexed")])
        # (name, indexed, converter, topic reader); an indexed dynamic value (string, bytes,
        # array, tuple) is stored as its keccak hash and relayed as the topic itself
        self.params: list[tuple[str, bool, Convert, Callable[[str], Any] | None]] = []
        for p in params:
            t = _type_of(p)
            reader = _topic_reader(t) if p.get("indexed") else None
            convert = _converter(p) if reader or not p.get("indexed") else str.lower
            self.params.append((str(p["name"]), bool(p.get("indexed")), convert, reader))

    def args(self, log: dict[str, Any]) -> dict[str, Any]:
        data = iter(self._decode(bytes.fromhex(log["data"][2:])))
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


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    """One keep-alive HTTP connection to the node, and the request path (with its query)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return kind(parts.netloc, timeout=120), path


def get_logs(url: str, address: str, start: int, end: int, range_size: int) -> list[dict[str, Any]]:
    """Raw eth_getLogs, `range_size` blocks per call, on one connection."""
    connection, path = _connection(url)
    logs: list[dict[str, Any]] = []
    try:
        for lo in range(start, end + 1, range_size):
            params = {"fromBlock": hex(lo), "toBlock": hex(min(lo + range_size - 1, end)),
                      "address": address}  # fmt: skip
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [params]}
            connection.request("POST", path, json.dumps(body),
                               {"Content-Type": "application/json"})  # fmt: skip
            reply = json.loads(connection.getresponse().read())
            if "result" not in reply:
                raise RuntimeError(f"eth_getLogs failed: {reply.get('error')}")
            logs.extend(reply["result"])
    finally:
        connection.close()
    return logs


class Messages:
    """The §3 message of each log: its JSON data, and its attributes either as a dict (for the
    client library) or already in protobuf's wire format with the ordering key (for raw
    requests, where the attributes that only depend on the event and the contract are
    encoded once, not once per message)."""

    def __init__(self, events: dict[str, _Event], chain_id: int, ordering: bool) -> None:
        self._events = events
        self._chain_id = chain_id
        self._ordering = ordering
        self._constant: dict[tuple[str, str], bytes] = {}  # (topic0, address): encoded
        self._times: dict[int, bytes] = {}  # block timestamp: its encoded ce-time

    def key(self, address: str) -> str:
        return f"{self._chain_id}:{_checksum(address)}" if self._ordering else ""

    def parts(self, log: dict[str, Any]) -> Parts:
        """The message's data and what its attributes are made of."""
        event = self._events[log["topics"][0]]
        chain_id = self._chain_id
        contract = _checksum(log["address"])
        block_hash = log["blockHash"]
        log_index = int(log["logIndex"], 16)
        event_id = f"{chain_id}:{block_hash}:{log_index}"
        stamp = int(log["blockTimestamp"], 16)
        number = int(log["blockNumber"], 16)
        payload = {
            "event_id": event_id, "chain_id": chain_id, "contract": contract,
            "event": event.name, "args": event.args(log), "block_number": number,
            "block_hash": block_hash, "block_timestamp": stamp,
            "transaction_hash": log["transactionHash"],
            "transaction_index": int(log["transactionIndex"], 16), "log_index": log_index,
            "removed": False,
        }  # fmt: skip
        data = _COMPACT.encode(payload).encode()  # the relayer's encoder, built once
        return data, event, contract, event_id, number, stamp

    def _constant_attributes(self, event: _Event, contract: str) -> dict[str, str]:
        chain_id = self._chain_id
        return {
            "event": event.name, "chain_id": str(chain_id), "contract": contract,
            "removed": "false", "ce-specversion": "1.0",
            "ce-source": f"eip155:{chain_id}:{contract}", "ce-type": f"evm.event.{event.name}",
        }  # fmt: skip

    def with_attributes(self, log: dict[str, Any]) -> Outgoing:
        """Data and attributes, as the client library takes them."""
        data, event, contract, event_id, number, stamp = self.parts(log)
        attributes = {
            **self._constant_attributes(event, contract),
            "event_id": event_id, "block_number": str(number), "ce-id": event_id,
            "ce-time": datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }  # fmt: skip
        return data, attributes

    def encoded(self, log: dict[str, Any]) -> bytes:
        """The whole `PubsubMessage` in wire format."""
        return self.wire(self.parts(log))

    def wire(self, parts: Parts) -> bytes:
        """A message's parts in wire format: data = 1, attributes = 2 (map entries: key = 1,
        value = 2), ordering_key = 5."""
        data, event, contract, event_id, number, stamp = parts
        constant = self._constant.get((event.topic0, contract))
        if constant is None:
            fixed = self._constant_attributes(event, contract)
            key = self.key(contract)
            constant = b"".join(attribute(k, v) for k, v in fixed.items())
            constant += field(b"\x2a", key.encode()) if key else b""
            self._constant[(event.topic0, contract)] = constant
        when = self._times.get(stamp)
        if when is None:
            text = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            when = self._times[stamp] = attribute("ce-time", text)
        return b"".join((
            field(b"\x0a", data), attribute("event_id", event_id), attribute("ce-id", event_id),
            attribute("block_number", str(number)), when, constant,
        ))  # fmt: skip


def _requests(messages: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Encoded messages cut into requests of at most MAX_MESSAGES and MAX_BYTES."""
    batch: list[bytes] = []
    size = 0
    for m in messages:
        if batch and (len(batch) == MAX_MESSAGES or size + len(m) + 8 > MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(m)
        size += len(m) + 8
    if batch:
        yield batch


def _emulator_host() -> str:
    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        raise SystemExit("bench.floor publishes to an emulator: set PUBSUB_EMULATOR_HOST")
    return host


def publish_requests(topic_path: str, encoded: Iterable[bytes]) -> int:
    """Raw PublishRequests on a bare gRPC channel, one in flight; the messages published."""
    channel = grpc.insecure_channel(
        _emulator_host(),
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    channel.subscribe(lambda _: None, try_to_connect=True)  # connect while the logs arrive
    publish = channel.unary_unary(PUBLISH_METHOD)  # bytes in, bytes out
    published = 0
    in_flight: tuple[Any, int] | None = None  # the call on the wire, its message count
    try:
        for batch in _requests(encoded):
            body = encode_request(topic_path, batch)  # built while the last request is on the wire
            if in_flight is not None:
                published += _accepted(*in_flight)
            in_flight = publish.future(body, timeout=PUBLISH_TIMEOUT_S), len(batch)
        if in_flight is not None:
            published += _accepted(*in_flight)
    finally:
        channel.close()
    return published


def _accepted(call: Any, sent: int) -> int:
    ids = message_ids(call.result())
    if len(ids) != sent:
        raise RuntimeError(f"Pub/Sub answered {len(ids)} ids for {sent} messages")
    return len(ids)


def publish_batching(project: str, topic: str, outgoing: Iterable[Outgoing], key: str) -> int:
    """The client library's batching with ordering; every future awaited."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    client = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(
            max_messages=MAX_MESSAGES, max_bytes=MAX_BYTES, max_latency=0.01
        ),
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=bool(key)),
    )
    path = client.topic_path(project, topic)
    try:
        futures = [client.publish(path, d, ordering_key=key, **a) for d, a in outgoing]
        return len([f.result(timeout=PUBLISH_TIMEOUT_S) for f in futures])
    finally:
        client.stop()


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
    path: str = "requests",
) -> dict[str, Any]:
    """Fetch, decode and publish every event of `start..end`; seconds per phase. With raw
    requests decoding overlaps publishing (a request is built while the last one is on the
    wire), so `decode_publish_s` is the two together and `publish_s` is not separate."""
    t0 = time.perf_counter()
    messages = Messages(events_of(abi), chain_id, ordering)
    t1 = time.perf_counter()
    logs = get_logs(rpc_url, address, start, end, range_size)
    t2 = time.perf_counter()
    if path == "requests":
        topic_path = f"projects/{project}/topics/{topic}"
        published = publish_requests(topic_path, (messages.encoded(log) for log in logs))
    else:
        outgoing = (messages.with_attributes(log) for log in logs)
        published = publish_batching(project, topic, outgoing, messages.key(address))
    t3 = time.perf_counter()
    return {
        "events": len(logs),
        "published": published,
        "publish_path": path,
        "setup_s": t1 - t0,
        "get_logs_s": t2 - t1,
        "decode_publish_s": t3 - t2,
        "work_s": t3 - t1,
    }


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The arguments every floor takes (bench.guarded adds its own)."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--abi", required=True, help="artifact or ABI JSON file")
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--chain-id", type=int, default=31337)
    p.add_argument("--range-size", type=int, default=1000)
    return p


def common(a: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `relay` from those arguments, the ABI read; the collector
    set as `python main.py` sets it once its run is built."""
    document = json.loads(Path(a.abi).read_text())
    settle_for_one_run()
    return {
        "rpc_url": a.rpc_url, "address": a.address,
        "abi": document["abi"] if isinstance(document, dict) else document,
        "start": a.start, "end": a.end, "project": a.project, "topic": a.topic,
        "chain_id": a.chain_id, "range_size": a.range_size,
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    imports_s = time.perf_counter() - _T0
    p = parser("python -m bench.floor", __doc__)
    p.add_argument("--ordering", choices=("true", "false"), default="true")
    p.add_argument("--publish", choices=PATHS, default="requests")
    a = p.parse_args(argv)
    result = relay(**common(a), ordering=a.ordering == "true", path=a.publish)
    result["imports_s"] = imports_s
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
