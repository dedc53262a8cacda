"""A JSON-RPC proxy in front of anvil that misbehaves like a hosted provider, on command.

Hosted providers put the API key in the URL path (`/v2/<key>`) while anvil serves only `/`, so
the proxy answers on any path and forwards bodies unchanged. On command (thread-safe methods)
it refuses wide eth_getLogs ranges or large results with a real provider's error body, rate
limits, fails (5xx, empty or cut bodies, dropped connections), delays, or lags behind the head
like one node of a load-balanced pool; it caps batches as nodes do, strips `blockTimestamp`
from logs as older nodes do, repeats a log in an answer, or stalls one request; and it
records every call. The bodies come from devstack/rpcproxy/bodies.py, the per-call decisions
from devstack/rpcproxy/calls.py, the whole-request faults from devstack/rpcproxy/replies.py.

In a batch, a per-call refusal (range, results, lag) answers only that entry, with HTTP 200 as
a batch answer must; a lone call gets the provider's own status (QuickNode 413, Alchemy 400).
Whole-request faults (429, 5xx, bodies, connections) hit the next HTTP requests in the order
they were armed. `faults` is the older hook: a callable that may return (status, body).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from devstack.rpcproxy.bodies import (
    BATCH_BODIES,
    FAILURES,
    RANGE_BODIES,
    RATE_BODIES,
    RESULT_BODIES,
    batch_refusal,
)
from devstack.rpcproxy.calls import (
    REPEATS,
    Head,
    Limits,
    judge,
    numeric_bounds,
    plan_call,
    reshape_logs,
)
from devstack.rpcproxy.replies import Armed, encode, misbehave, reply

Fault = Callable[[bytes], tuple[int, bytes] | None]


@dataclass(frozen=True)
class SeenCall:
    """One JSON-RPC call the proxy received, and what answered it."""

    method: str
    params: list[Any]
    path: str
    in_batch: bool
    answer: str  # "upstream", "range", "results", "lag", "rate_limit", "batch", "stall",
    # "repeat", or a FAILURES kind
    request: int = 0  # which HTTP request carried it (an index into requests_seen)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 makes a burst of clients wait for SYN retries


class RpcProxy:
    """Forwards JSON-RPC on any path to `upstream`, misbehaving when told; stop() when done."""

    def __init__(self, upstream: str, faults: Fault | None = None) -> None:
        self.upstream = upstream
        self.faults = faults
        self.requests_seen: list[str] = []
        self.calls: list[SeenCall] = []
        self._lock = threading.Lock()
        self._armed: deque[Armed] = deque()
        self._limits = Limits()
        self._delay: tuple[float, int | None] | None = None
        self._repeat: tuple[str, int | None] | None = None
        self._closing = threading.Event()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._closing.set()  # ends stalls
        self._server.shutdown()
        self._server.server_close()

    # Commands -----------------------------------------------------------------------------
    def limit_log_range(self, max_blocks: int | None, provider: str = "alchemy") -> None:
        """Refuse eth_getLogs spanning more than `max_blocks` blocks (None lifts the limit)."""
        limit = None if max_blocks is None else (max_blocks, _known(provider, RANGE_BODIES))
        self._update(range=limit)

    def limit_log_results(self, max_logs: int | None, provider: str = "infura") -> None:
        """Refuse eth_getLogs whose answer would hold more than `max_logs` logs."""
        limit = None if max_logs is None else (max_logs, _known(provider, RESULT_BODIES))
        self._update(results=limit)

    def lag(self, blocks: int, *, logs: str = "error") -> None:
        """Serve a head `blocks` behind anvil's: newer blocks are null by number or hash, and
        eth_getLogs past the head is refused as geth does ("error") or silently stops at it as
        an older node does ("truncate"). Receipts and transactions are not hidden."""
        if logs not in ("error", "truncate"):
            raise ValueError("logs must be 'error' or 'truncate'")
        self._update(lag=(blocks, logs) if blocks > 0 else None)

    def rate_limit(
        self,
        count: int = 1,
        *,
        retry_after: float | None = 1.0,
        provider: str = "alchemy",
        method: str | None = None,
    ) -> None:
        """Answer the next `count` requests (that contain `method`, if given) as rate limited."""
        armed = Armed("rate_limit", method, _known(provider, RATE_BODIES), retry_after)
        with self._lock:
            self._armed.extend([armed] * count)

    def fail(self, count: int = 1, *, kind: str = "http_502", method: str | None = None) -> None:
        """Fail the next `count` requests (that contain `method`, if given) in a FAILURES way."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {', '.join(FAILURES)}")
        with self._lock:
            self._armed.extend([Armed(kind, method)] * count)

    def delay(self, seconds: float, count: int | None = None) -> None:
        """Hold the next `count` requests (every one if None; 0 seconds to stop) `seconds`."""
        with self._lock:
            self._delay = (seconds, count) if seconds > 0 else None

    def cap_batches(self, size: int | None, provider: str = "geth") -> None:
        """Refuse a batch of more than `size` calls as a whole, as `provider` does."""
        self._update(batch=None if size is None else (size, _known(provider, BATCH_BODIES)))

    def strip_timestamps(self, on: bool = True) -> None:
        """Send logs without `blockTimestamp`, as nodes before it existed do."""
        self._update(strip_timestamps=on)

    def repeat_logs(self, kind: str | None, count: int | None = None) -> None:
        """Repeat the first log of the next `count` non-empty eth_getLogs answers (every one
        if None; None kind to stop): an exact "copy" or a different log at its "shared_index"."""
        if kind is not None and kind not in REPEATS:
            raise ValueError(f"unknown repeat {kind!r}; one of {', '.join(REPEATS)}")
        with self._lock:
            self._repeat = None if kind is None else (kind, count)

    def stall(self, seconds: float, *, method: str | None = None, count: int = 1) -> None:
        """Hold the next `count` requests (that contain `method`, if given) `seconds` before
        answering them normally; they are recorded when they arrive."""
        with self._lock:
            self._armed.extend([Armed("stall", method, retry_after=seconds)] * count)

    def clear(self) -> None:
        """Behave again: no limits, no lag, no delay, no pending faults."""
        with self._lock:
            self._armed.clear()
            self._limits, self._delay, self._repeat = Limits(), None, None

    # Observations -------------------------------------------------------------------------
    def count(self, method: str | None = None) -> int:
        """How many calls (of `method`) arrived, whatever answered them."""
        with self._lock:
            return sum(1 for c in self.calls if method is None or c.method == method)

    def log_ranges(self) -> list[tuple[int, int]]:
        """(from, to) of every eth_getLogs asked with numeric bounds, in arrival order."""
        with self._lock:
            params = [c.params for c in self.calls if c.method == "eth_getLogs"]
        return [r for r in map(numeric_bounds, params) if r is not None]

    def reset_counts(self) -> None:
        """Forget the calls and paths seen so far."""
        with self._lock:
            self.calls.clear()
            self.requests_seen.clear()

    # Serving ------------------------------------------------------------------------------
    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._limits = Limits(**{**self._limits.__dict__, **changes})

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        with self._lock:
            self.requests_seen.append(handler.path)
            where = (len(self.requests_seen) - 1, handler.path)
        answer = self.faults(body) if self.faults else None
        if answer is not None:
            return reply(handler, *answer)
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        batch = isinstance(parsed, list)
        calls = [c for c in (parsed if batch else [parsed]) if isinstance(c, dict)]
        with self._lock:
            cap = self._limits.batch
        if batch and cap is not None and len(calls) > cap[0]:
            self._record(where, calls, batch, ["batch"] * len(calls))
            refusal = batch_refusal(cap[1], calls[0].get("id"), cap[0], len(calls))
            return reply(handler, 200, json.dumps(refusal).encode())
        armed, pause = self._take([str(c.get("method")) for c in calls])
        time.sleep(pause)
        if armed is not None and armed.kind == "stall":
            self._record(where, calls, batch, ["stall"] * len(calls))
            if self._closing.wait(armed.retry_after or 0.0):
                return  # the proxy is stopping (its upstream may be gone already)
            return reply(handler, *self._answer(body, calls, batch)[:2])
        if armed is not None and armed.kind not in ("truncated", "incomplete"):
            self._record(where, calls, batch, [armed.kind] * len(calls))
            return misbehave(handler, armed, calls, batch)
        status, payload, outcomes = self._answer(body, calls, batch)
        self._record(where, calls, batch, outcomes)
        if armed is None:
            return reply(handler, status, payload)
        cut = payload[: len(payload) // 2]
        if armed.kind == "truncated":  # a proxy cut the body and fixed the length: bad JSON
            return reply(handler, status, cut)
        return reply(handler, status, cut, length=len(payload), hang_up=True)

    def _take(self, methods: list[str]) -> tuple[Armed | None, float]:
        with self._lock:
            pause = 0.0
            if self._delay is not None:
                pause, left = self._delay
                if left is not None:
                    self._delay = (pause, left - 1) if left > 1 else None
            for armed in self._armed:
                if armed.method is None or armed.method in methods:
                    self._armed.remove(armed)
                    return armed, pause
            return None, pause

    def _record(
        self, where: tuple[int, str], calls: list[dict[str, Any]], batch: bool, outs: list[str]
    ) -> None:
        request, path = where
        seen = [
            SeenCall(str(c.get("method")), list(c.get("params") or []), path, batch, out, request)
            for c, out in zip(calls, outs, strict=True)
        ]
        with self._lock:
            self.calls.extend(seen)

    def _answer(
        self, body: bytes, calls: list[dict[str, Any]], batch: bool
    ) -> tuple[int, bytes, list[str]]:
        """Answer call by call: refuse what the provider would, forward the rest to anvil."""
        with self._lock:
            limits, repeat = self._limits, self._repeat
        if not calls or (limits == Limits() and repeat is None):
            status, payload = self._post(body)
            return status, payload, ["upstream"] * len(calls)
        head = Head(self._post, limits)
        plans = [plan_call(call, limits, head) for call in calls]
        sent = [plan for plan in plans if plan.answer is None]
        if sent:
            # anvil answers a batch in request order; ids may repeat, so match by position.
            answers = json.loads(self._post(json.dumps([p.call for p in sent]).encode())[1])
            for i, plan in enumerate(sent):
                plan.answer = answers[i] if isinstance(answers, list) else answers
                judge(plan, limits, head)
                self._reshape(plan, limits)
        status = 200 if batch else plans[0].status
        return status, encode([p.answer or {} for p in plans], batch), [p.out for p in plans]

    def _reshape(self, plan: Any, limits: Limits) -> None:
        """Strip timestamps from, or repeat a log in, an eth_getLogs answer, as told."""
        result = (plan.answer or {}).get("result")
        if plan.call.get("method") != "eth_getLogs" or not isinstance(result, list):
            return
        kind = None
        with self._lock:
            if self._repeat is not None and result:
                kind, left = self._repeat
                if left is not None:
                    self._repeat = (kind, left - 1) if left > 1 else None
        plan.answer = {**plan.answer, "result": reshape_logs(result, limits.strip_timestamps, kind)}
        plan.out = "repeat" if kind else plan.out

    def _post(self, body: bytes) -> tuple[int, bytes]:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        headers = {"Content-Type": "application/json"}
        answer = session.post(self.upstream, data=body, headers=headers, timeout=60)
        return answer.status_code, answer.content


def _known(name: str, catalogue: Mapping[str, object]) -> str:
    if name not in catalogue:
        raise ValueError(f"unknown provider {name!r}; one of {', '.join(catalogue)}")
    return name
