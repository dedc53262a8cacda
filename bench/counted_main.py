"""`python main.py` with its billable operations counted: the follow phase's relayer process.

    python bench/counted_main.py RELAYER_ROOT

Runs RELAYER_ROOT/main.py as `python main.py` would, after wrapping the generated Google
clients' calls (every Firestore and Pub/Sub request the relayer makes goes through them) and
`requests.Session.post` (the JSON-RPC client's one way out). At exit it writes one JSON line
to stderr, `{"bench_ops": {...}}`, counted the way the price lists bill them:
- Firestore reads: documents returned by lookups (found or missing) and by queries, with a
  query that returns none billed as one read; writes: the writes of each commit;
- Pub/Sub: publish requests, messages, bytes (data, attribute keys and values, ordering
  key, 20 bytes of timestamp and 16 of message id each) and billed bytes (at least 1,000 a
  request);
- JSON-RPC: HTTP requests to RPC_URL's host and the calls in them (a batch counts each).
Only counting happens in the wrappers: what is sent and when is unchanged.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

COUNTS: Counter[str] = Counter()
MIN_BILLED_BYTES = 1000  # Pub/Sub bills at least this much per publish request
TIMESTAMP_BYTES, MESSAGE_ID_BYTES = 20, 16


def _streamed(responses: Iterable[Any], count: Callable[[Any], int], key: str) -> Iterator[Any]:
    for response in responses:
        COUNTS[key] += count(response)
        yield response


def _found(response: Any) -> int:
    return 1 if response._pb.WhichOneof("result") else 0


def _document(response: Any) -> int:
    return 1 if response._pb.HasField("document") else 0


class _Query:
    """One query's stream: billed one read per document, at least one."""

    def __init__(self, responses: Iterable[Any]) -> None:
        self._responses = iter(responses)
        self._docs = 0
        COUNTS["firestore_queries"] += 1
        COUNTS["firestore_reads"] += 1  # the minimum; later documents add to it

    def __iter__(self) -> _Query:
        return self

    def __next__(self) -> Any:
        response = next(self._responses)
        if _document(response):
            self._docs += 1
            if self._docs > 1:
                COUNTS["firestore_reads"] += 1
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._responses, name)


def _field(request: Any, name: str) -> Any:
    return request.get(name) if isinstance(request, dict) else getattr(request, name)


def _message_bytes(message: Any) -> int:
    attributes = dict(message.attributes)
    return (
        len(message.data)
        + sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
        + len(message.ordering_key.encode())
        + TIMESTAMP_BYTES
        + MESSAGE_ID_BYTES
    )


def install() -> None:
    """Wrap the clients' methods (classes, so every instance the relayer builds counts)."""
    import requests
    from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

    batch_get, run_query = FirestoreClient.batch_get_documents, FirestoreClient.run_query
    commit, begin = FirestoreClient.commit, FirestoreClient.begin_transaction
    from function.adapters.pubsub import Publisher  # the checkout's `function` (sys.path)

    publish, post = Publisher.publish, requests.Session.post
    rpc_hosts = {urlsplit(u.strip()).netloc for u in os.environ.get("RPC_URL", "").split(",")}

    def counted_batch_get(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["firestore_lookups"] += 1
        return _streamed(batch_get(self, *args, **kwargs), _found, "firestore_reads")

    def counted_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _Query(run_query(self, *args, **kwargs))

    def counted_commit(self: Any, request: Any = None, **kwargs: Any) -> Any:
        COUNTS["firestore_commits"] += 1
        COUNTS["firestore_writes"] += len(_field(request, "writes") or [])
        return commit(self, request=request, **kwargs)

    def counted_begin(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["firestore_transactions"] += 1
        return begin(self, *args, **kwargs)

    def counted_publish(self: Any, messages: Any, *args: Any, **kwargs: Any) -> Any:
        # The relayer's Publisher (one request a call), not the client: it writes its
        # requests in wire format on the client's channel (function/adapters/pubsub_wire.py).
        size = sum(_message_bytes(m) for m in messages)
        COUNTS["pubsub_publish_requests"] += 1
        COUNTS["pubsub_messages"] += len(messages)
        COUNTS["pubsub_bytes"] += size
        COUNTS["pubsub_billed_bytes"] += max(size, MIN_BILLED_BYTES)
        return publish(self, messages, *args, **kwargs)

    def counted_post(self: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        if urlsplit(str(url)).netloc in rpc_hosts:
            COUNTS["rpc_http_requests"] += 1
            body = kwargs.get("data") or kwargs.get("json")
            try:
                sent = json.loads(body) if isinstance(body, str | bytes) else body
            except ValueError:
                sent = None
            COUNTS["rpc_calls"] += len(sent) if isinstance(sent, list) else 1
        return post(self, url, *args, **kwargs)

    FirestoreClient.batch_get_documents = counted_batch_get  # type: ignore[method-assign]
    FirestoreClient.run_query = counted_query  # type: ignore[method-assign]
    FirestoreClient.commit = counted_commit  # type: ignore[method-assign]
    FirestoreClient.begin_transaction = counted_begin  # type: ignore[method-assign]
    Publisher.publish = counted_publish  # type: ignore[method-assign]
    requests.Session.post = counted_post  # type: ignore[method-assign]


def _report() -> None:
    sys.stderr.write(json.dumps({"bench_ops": dict(COUNTS)}) + "\n")
    sys.stderr.flush()


def main() -> None:
    root = Path(sys.argv[1]).resolve()
    sys.path[0] = str(root)  # as `python main.py` in root would have it
    sys.argv = [str(root / "main.py")]
    install()
    atexit.register(_report)
    runpy.run_path(str(root / "main.py"), run_name="__main__")


if __name__ == "__main__":
    main()
