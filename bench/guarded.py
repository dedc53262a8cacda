"""The floor with the least guard a relayer must keep: what no relayer on Firestore can beat.

`bench.floor` does the relayer's work without its guarantees. This script does the floor's
work, the same way (its `get_logs`, decoder, §3 messages and raw publish requests, one in
flight), plus the part of the guard that CONTRACT §4 and §7 make unavoidable, each piece
in the cheapest form found:
- the Firestore client library (`google-cloud-firestore`, a required package), imported and
  built as the relayer builds it;
- a lease: the relayer document read, then written with the lease (one commit);
- the processed-event set: one document per block with events, as the relayer lays it out
  (`events` as lines, the messages in `messages_zlib`, zlib level 1), filled straight into
  protobuf (`function.adapters.firestore.wire.set_write`), written only once all of the
  block's messages were accepted (a block a request cuts waits for the next request);
- the checkpoint: in the same commit as those records, the relayer document's `next_block`
  moved past them with `recent_blocks` (the last 128 recorded blocks) and the hash of the
  last recorded block, conditioned on the version the last commit left (the fence: nothing lands
  once another run wrote the document), so there is no commit beyond the records' own; the
  last commit also releases the lease.
Commits go one at a time from one thread, while the main thread publishes the next request
(a record waits for its messages' acceptance, never the other way round).

Nothing else: no reorganisation check, no consistency reads, no retries, no summary, no
status fields, no range planning, no stop handling, blocks assumed to fit one document
(the bench chain's ~100 events a block do). The gap between this and the floor is the least
that the guarantees cost with these libraries on this machine; the gap between the relayer
and this is what the relayer spends beyond it.

`python -m bench.guarded ...` takes the floor's arguments (raw requests only) and
`--relayer-id`, and prints one JSON line like the floor's, with `recorded` (the events its
commits wrote) and `commits`.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import queue  # noqa: E402
import threading  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from datetime import (  # noqa: E402
    UTC,
    datetime,
    timedelta,
)
from typing import Any, NamedTuple  # noqa: E402

import grpc  # type: ignore[import-untyped]  # noqa: E402
from google.cloud import firestore  # noqa: E402
from google.cloud.firestore_v1.types import write as write_types  # noqa: E402

from bench import floor  # noqa: E402
from function.adapters.firestore.wire import set_write  # noqa: E402
from function.adapters.pubsub_wire import encode_request, message_ids  # noqa: E402

LEASE = timedelta(seconds=300)  # RELAYER_LEASE_SECONDS' default
RECENT = 128  # blocks kept in `recent_blocks`, as the relayer keeps them


class _Entry(NamedTuple):
    """An accepted message, as its block's record needs it."""

    block_number: int
    block_hash: str
    line: str  # the record's line: event id, log index, transaction, event, message id, state
    data: bytes


class _Recorder:
    """One thread that commits the records of whole blocks with the checkpoint past them,
    each commit fenced on the version the last one left."""

    def __init__(self, db: firestore.Client, relayer: Any, version: Any) -> None:
        self._db = db
        self._relayer = relayer
        self._blocks = relayer.collection("blocks")
        self._version = version
        self._work: queue.Queue[tuple[list[_Entry], int, bool] | None] = queue.Queue()
        self._error: BaseException | None = None
        self.recorded = 0
        self.commits = 0
        self._recent: list[str] = []
        self._thread = threading.Thread(target=self._run, name="records", daemon=True)
        self._thread.start()

    def record(self, entries: list[_Entry], next_block: int, last: bool) -> None:
        self._work.put((entries, next_block, last))

    def finish(self) -> None:
        self._work.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            if self._error is None:
                try:
                    self._commit(*item)
                except BaseException as e:  # raised in the main thread by finish()
                    self._error = e

    def _commit(self, entries: list[_Entry], next_block: int, last: bool) -> None:
        now = datetime.now(UTC)
        blocks: dict[tuple[int, str], tuple[list[str], list[bytes]]] = {}
        for e in entries:
            lines, datas = blocks.setdefault((e.block_number, e.block_hash), ([], []))
            lines.append(e.line)
            datas.append(e.data)
        batch = self._db.batch()
        writes = []
        for (number, block_hash), (lines, datas) in blocks.items():
            path = self._blocks.document(f"{number:012d}-{block_hash}")._document_path
            fields = {"block_number": number, "block_hash": block_hash, "events": lines,
                      "messages_zlib": zlib.compress(b"\n".join(datas), 1), "part": 0,
                      "parts": 1, "recorded_at": now}  # fmt: skip
            writes.append(set_write(path, fields))
        batch._add_write_pbs([write_types.Write.pb(w) for w in writes])
        self._recent = [*self._recent, *(f"{n}:{h}" for n, h in blocks)][-RECENT:]
        # The last recorded block's hash, where the relayer stores the hash of the block
        # before `next_block` (read with the logs, in the same batch: no round trip more).
        checkpoint: dict[str, Any] = {"next_block": next_block, "updated_at": now,
                                      "recent_blocks": self._recent}  # fmt: skip
        if self._recent:
            checkpoint["checkpoint_block_hash"] = self._recent[-1].partition(":")[2]
        if last:
            checkpoint["lease"] = None
        fence = self._db.write_option(last_update_time=self._version)
        batch.update(self._relayer, checkpoint, option=fence)
        results = batch.commit()
        self._version = results[-1].update_time
        self.recorded += len(entries)
        self.commits += 1


def relay(
    *,
    rpc_url: str,
    address: str,
    abi: Sequence[dict[str, Any]],
    start: int,
    end: int,
    project: str,
    topic: str,
    relayer_id: str,
    chain_id: int,
    range_size: int,
) -> dict[str, Any]:
    """The floor's relay over raw requests, with the least guard."""
    t0 = time.perf_counter()
    db = firestore.Client(project=project)
    relayer = db.collection("relayers").document(relayer_id)
    relayer.get()  # the lease is taken from what the document says: one read
    lease = {"owner": "guarded", "expires_at": datetime.now(UTC) + LEASE, "fence": 1}
    leased = relayer.set({"lease": lease, "next_block": start}, merge=True)
    recorder = _Recorder(db, relayer, leased.update_time)
    messages = floor.Messages(floor.events_of(abi), chain_id, True)
    t1 = time.perf_counter()
    logs = floor.get_logs(rpc_url, address, start, end, range_size)
    t2 = time.perf_counter()
    published = _publish(f"projects/{project}/topics/{topic}", messages, logs, recorder, end)
    recorder.finish()
    t3 = time.perf_counter()
    return {
        "events": len(logs),
        "published": published,
        "recorded": recorder.recorded,
        "commits": recorder.commits,
        "publish_path": "requests",
        "setup_s": t1 - t0,
        "get_logs_s": t2 - t1,
        "decode_publish_s": t3 - t2,
        "work_s": t3 - t1,
    }


def _publish(
    topic_path: str,
    messages: floor.Messages,
    logs: list[dict[str, Any]],
    recorder: _Recorder,
    end: int,
) -> int:
    """The floor's raw requests, one in flight; each request's accepted blocks recorded."""
    channel = grpc.insecure_channel(
        floor._emulator_host(),
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    channel.subscribe(lambda _: None, try_to_connect=True)
    publish = channel.unary_unary(floor.PUBLISH_METHOD)
    published = 0
    waiting: list[_Entry] = []  # accepted, of a block not yet wholly accepted
    in_flight: tuple[Any, list[tuple[int, str, str, bytes]]] | None = None

    def accepted(call: Any, sent: list[tuple[int, str, str, bytes]], last: bool) -> int:
        ids = message_ids(call.result())
        if len(ids) != len(sent):
            raise RuntimeError(f"Pub/Sub answered {len(ids)} ids for {len(sent)} messages")
        waiting.extend(
            _Entry(number, block_hash, f"{head} {message_id} published", data)
            for (number, block_hash, head, data), message_id in zip(sent, ids, strict=True)
        )
        if last:
            whole, next_block = waiting[:], end + 1
        else:
            cut = waiting[-1].block_number  # its block may go on in the next request
            whole = [e for e in waiting if e.block_number < cut]
            next_block = cut
        del waiting[: len(whole)]
        if whole or last:
            recorder.record(whole, next_block, last)
        return len(ids)

    try:
        batch: list[bytes] = []
        sent: list[tuple[int, str, str, bytes]] = []
        for i, log in enumerate(logs):
            parts = messages.parts(log)
            data, event, _, event_id, number, _ = parts
            batch.append(messages.wire(parts))
            head = f"{event_id} {int(log['logIndex'], 16)} {log['transactionHash']} {event.name}"
            sent.append((number, log["blockHash"], head, data))
            if len(batch) == floor.MAX_MESSAGES or i == len(logs) - 1:
                call = publish.future(
                    encode_request(topic_path, batch), timeout=floor.PUBLISH_TIMEOUT_S
                )
                if in_flight is not None:
                    published += accepted(*in_flight, last=False)
                in_flight, batch, sent = (call, sent), [], []
        if in_flight is not None:
            published += accepted(*in_flight, last=True)
        else:
            recorder.record([], end + 1, True)
    finally:
        channel.close()
    return published


def main(argv: Sequence[str] | None = None) -> int:
    imports_s = time.perf_counter() - _T0
    p = floor.parser("python -m bench.guarded", __doc__)
    p.add_argument("--relayer-id", required=True)
    a = p.parse_args(argv)
    result = relay(**floor.common(a), relayer_id=a.relayer_id)
    result["imports_s"] = imports_s
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
