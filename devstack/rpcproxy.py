"""A JSON-RPC proxy in front of anvil that misbehaves like a hosted provider, on command.

Hosted providers put the API key in the URL path (`/v2/<key>`) while anvil serves only `/`, so
the proxy answers on any path and forwards bodies unchanged. On command (thread-safe methods)
it refuses wide eth_getLogs ranges or large results with a real provider's error body, rate
limits, fails (5xx, empty or cut bodies, dropped connections), delays, or lags behind the head
like one node of a load-balanced pool; and it records every call. The bodies are quoted from
public sources (tests/test_provider_errors.py names them); the status is 200 where no source
recorded another.

In a batch, a per-call refusal (range, results, lag) answers only that entry, with HTTP 200 as
a batch answer must; a lone call gets the provider's own status (QuickNode 413, Alchemy 400).
Whole-request faults (429, 5xx, bodies, connections) hit the next HTTP requests in the order
they were armed. `faults` is the older hook: a callable that may return (status, body).
"""

from __future__ import annotations

import json
import math
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import requests

Fault = Callable[[bytes], tuple[int, bytes] | None]


class Body(NamedTuple):
    """A provider's refusal: HTTP status for a lone call, JSON-RPC code, message template."""

    status: int
    code: int
    text: str  # str.format fields: lo, hi, n (the limit), fit (last block that would work), wait


_ALCHEMY_SIZE = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
    "and no limit on the response size, or you can request any block range with a cap of {nk} "
    "logs in the response. Based on your parameters and the response size limit, this block "
    "range should work: [{lo:#x}, {fit:#x}]"
)
# Too many blocks in one eth_getLogs.
RANGE_BODIES = {
    "alchemy": Body(400, -32600, "You can make eth_getLogs requests with up to a {n} block range. "
                    "Based on your parameters, this block range should work: [{lo:#x}, {fit:#x}]"),
    "quicknode": Body(413, -32614, "eth_getLogs is limited to a {n:,} range"),
    "infura": Body(200, -32602, "range {span} exceeds limit of {n}"),
    "blockpi": Body(200, -32602, "eth_getLogs is limited to {n} block range. Please check the "
                    "parameter requirements at  https://docs.blockpi.io/documentations/api-reference"),
    "publicnode": Body(200, -32000, "exceed maximum block range: {n}"),
    "reth": Body(200, -32602, "query exceeds max block range {n}"),
    "cloudflare": Body(200, -32047, "Invalid eth_getLogs request. 'fromBlock'-'toBlock' range "
                       "too large. Max range: {n}"),
    "ankr": Body(200, -32600, "block range is too wide"),
    "chainstack": Body(200, -32602, "Block range limit exceeded. See more details at "
                       "https://docs.chainstack.com/docs/limits#evm-range-limits"),
}  # fmt: skip
# Too many logs in one answer; `fit` is the last block that keeps the answer within the cap.
RESULT_BODIES = {
    "infura": Body(200, -32005, "query returned more than {n} results. Try with this block range "
                   "[0x{lo:X}, 0x{fit:X}]."),
    "alchemy": Body(400, -32602, _ALCHEMY_SIZE),
    "reth": Body(200, -32602, "query exceeds max results {n}, retry with the range {lo}-{fit}"),
    "arbitrum": Body(200, -32000, "logs matched by query exceeds limit of {n}"),
    "geth": Body(200, -32005, "query returned more than {n} results"),
}  # fmt: skip
# Rate limits. "base" answers each call inside HTTP 200, as sepolia.base.org does.
RATE_BODIES = {
    "alchemy": Body(429, 429, "Your app has exceeded its compute units per second capacity. If "
                    "you have retries enabled, you can safely ignore this message. If not, check "
                    "out https://docs.alchemy.com/reference/throughput"),
    "infura": Body(429, -32005, "daily request count exceeded, request rate limited"),
    "quicknode": Body(429, -32007, "300/second request limit reached - reduce calls per second "
                      "or upgrade your account at quicknode.com"),
    "ankr": Body(429, -32090, "Too many requests, reason: call rate limit exhausted, retry in "
                 "{wait}"),
    "base": Body(200, -32007, "25/second request limit reached - reduce calls per second"),
}  # fmt: skip
_NGINX = "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>\r\n"
_NGINX += "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
PAGES = {
    500: b"Internal Server Error",
    502: _NGINX.format("502 Bad Gateway").encode(),
    503: b"Service Unavailable",
    504: _NGINX.format("504 Gateway Time-out").encode(),
}
FAILURES: tuple[str, ...] = ("http_500", "http_502", "http_503", "http_504", "empty")
FAILURES += ("truncated", "incomplete", "drop", "reset")
HEAD_RACE = {"code": -32602, "message": "block range extends beyond current head block"}  # geth


@dataclass(frozen=True)
class SeenCall:
    """One JSON-RPC call the proxy received, and what answered it."""

    method: str
    params: list[Any]
    path: str
    in_batch: bool
    answer: str  # "upstream", "range", "results", "lag", "rate_limit", or a FAILURES kind


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 makes a burst of clients wait for SYN retries


@dataclass(frozen=True)
class _Armed:
    kind: str  # "rate_limit" or one of FAILURES
    method: str | None
    provider: str = "alchemy"
    retry_after: float | None = None


@dataclass(frozen=True)
class _Limits:
    range: tuple[int, str] | None = None
    results: tuple[int, str] | None = None
    lag: tuple[int, str] | None = None


class RpcProxy:
    """Forwards JSON-RPC on any path to `upstream`, misbehaving when told; stop() when done."""

    def __init__(self, upstream: str, faults: Fault | None = None) -> None:
        self.upstream = upstream
        self.faults = faults
        self.requests_seen: list[str] = []
        self.calls: list[SeenCall] = []
        self._lock = threading.Lock()
        self._armed: deque[_Armed] = deque()
        self._limits = _Limits()
        self._delay: tuple[float, int | None] | None = None
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
        armed = _Armed("rate_limit", method, _known(provider, RATE_BODIES), retry_after)
        with self._lock:
            self._armed.extend([armed] * count)

    def fail(self, count: int = 1, *, kind: str = "http_502", method: str | None = None) -> None:
        """Fail the next `count` requests (that contain `method`, if given) in a FAILURES way."""
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r}; one of {', '.join(FAILURES)}")
        with self._lock:
            self._armed.extend([_Armed(kind, method)] * count)

    def delay(self, seconds: float, count: int | None = None) -> None:
        """Hold the next `count` requests (every one if None; 0 seconds to stop) `seconds`."""
        with self._lock:
            self._delay = (seconds, count) if seconds > 0 else None

    def clear(self) -> None:
        """Behave again: no limits, no lag, no delay, no pending faults."""
        with self._lock:
            self._armed.clear()
            self._limits, self._delay = _Limits(), None

    # Observations -------------------------------------------------------------------------
    def count(self, method: str | None = None) -> int:
        """How many calls (of `method`) arrived, whatever answered them."""
        with self._lock:
            return sum(1 for c in self.calls if method is None or c.method == method)

    def log_ranges(self) -> list[tuple[int, int]]:
        """(from, to) of every eth_getLogs asked with numeric bounds, in arrival order."""
        with self._lock:
            params = [c.params for c in self.calls if c.method == "eth_getLogs"]
        return [r for r in map(_numeric_bounds, params) if r is not None]

    def reset_counts(self) -> None:
        """Forget the calls and paths seen so far."""
        with self._lock:
            self.calls.clear()
            self.requests_seen.clear()

    # Serving ------------------------------------------------------------------------------
    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._limits = _Limits(**{**self._limits.__dict__, **changes})

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        with self._lock:
            self.requests_seen.append(handler.path)
        answer = self.faults(body) if self.faults else None
        if answer is not None:
            return _reply(handler, *answer)
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        batch = isinstance(parsed, list)
        calls = [c for c in (parsed if batch else [parsed]) if isinstance(c, dict)]
        armed, pause = self._take([str(c.get("method")) for c in calls])
        time.sleep(pause)
        if armed is not None and armed.kind not in ("truncated", "incomplete"):
            self._record(handler.path, calls, batch, [armed.kind] * len(calls))
            return _misbehave(handler, armed, calls, batch)
        status, payload, outcomes = self._answer(body, calls, batch)
        self._record(handler.path, calls, batch, outcomes)
        if armed is None:
            return _reply(handler, status, payload)
        cut = payload[: len(payload) // 2]
        if armed.kind == "truncated":  # a proxy cut the body and fixed the length: bad JSON
            return _reply(handler, status, cut)
        return _reply(handler, status, cut, length=len(payload), hang_up=True)

    def _take(self, methods: list[str]) -> tuple[_Armed | None, float]:
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

    def _record(self, path: str, calls: list[dict[str, Any]], batch: bool, outs: list[str]) -> None:
        seen = [
            SeenCall(str(c.get("method")), list(c.get("params") or []), path, batch, out)
            for c, out in zip(calls, outs, strict=True)
        ]
        with self._lock:
            self.calls.extend(seen)

    def _answer(
        self, body: bytes, calls: list[dict[str, Any]], batch: bool
    ) -> tuple[int, bytes, list[str]]:
        """Answer call by call: refuse what the provider would, forward the rest to anvil."""
        with self._lock:
            limits = self._limits
        if not calls or limits == _Limits():
            status, payload = self._post(body)
            return status, payload, ["upstream"] * len(calls)
        head = _Head(self, limits)
        plans = [_plan(call, limits, head) for call in calls]
        sent = [plan for plan in plans if plan.answer is None]
        if sent:
            # anvil answers a batch in request order; ids may repeat, so match by position.
            answers = json.loads(self._post(json.dumps([p.call for p in sent]).encode())[1])
            for i, plan in enumerate(sent):
                plan.answer = answers[i] if isinstance(answers, list) else answers
                _judge(plan, limits, head)
        status = 200 if batch else plans[0].status
        return status, _encode([p.answer or {} for p in plans], batch), [p.out for p in plans]

    def _post(self, body: bytes) -> tuple[int, bytes]:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        headers = {"Content-Type": "application/json"}
        answer = session.post(self.upstream, data=body, headers=headers, timeout=60)
        return answer.status_code, answer.content


class _Head:
    """The head this node admits to, asked of anvil once per request and never recorded."""

    def __init__(self, proxy: RpcProxy, limits: _Limits) -> None:
        self._proxy, self._behind = proxy, limits.lag[0] if limits.lag else 0
        self._value: int | None = None

    def served(self) -> int:
        if self._value is None:
            call = {"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}
            payload = self._proxy._post(json.dumps(call).encode())[1]
            self._value = max(0, int(json.loads(payload)["result"], 16) - self._behind)
        return self._value


@dataclass
class _Plan:
    call: dict[str, Any]  # what goes to anvil, rewritten where this node would read it so
    answer: dict[str, Any] | None = None  # set once answered, by the proxy or by anvil
    status: int = 200
    out: str = "upstream"
    log_range: tuple[int, int] | None = None


def _plan(call: dict[str, Any], limits: _Limits, head: _Head) -> _Plan:
    """Decide one call before anvil sees it: answer it here, rewrite it, or pass it on."""
    plan = _Plan(call)
    method, params = call.get("method"), list(call.get("params") or [])
    if limits.lag is not None and method == "eth_blockNumber":
        return _local(plan, "lag", result=hex(head.served()))
    if limits.lag is not None and method == "eth_getBlockByNumber" and params:
        if params[0] in ("latest", "pending"):
            plan.call, plan.out = {**call, "params": [hex(head.served()), *params[1:]]}, "lag"
        elif _is_hex(params[0]) and int(params[0], 16) > head.served():
            return _local(plan, "lag", result=None)  # geth: null for a block it does not have
        return plan
    query = params[0] if method == "eth_getLogs" and params else None
    if not isinstance(query, dict) or "blockHash" in query:
        return plan
    low = _resolve(query.get("fromBlock", "latest"), head)
    high = _resolve(query.get("toBlock", "latest"), head)
    if low is None or high is None:
        return plan
    if limits.range is not None and high - low + 1 > limits.range[0]:
        n, provider = limits.range
        return _refuse(plan, "range", RANGE_BODIES[provider], lo=low, hi=high, n=n, fit=low + n - 1)
    if limits.lag is not None and high > head.served():
        if limits.lag[1] == "error":
            return _local(plan, "lag", error=HEAD_RACE)
        if low > head.served():
            return _local(plan, "lag", result=[])
        high, plan.out = head.served(), "lag"
    plan.call = {**call, "params": [{**query, "fromBlock": hex(low), "toBlock": hex(high)}]}
    plan.log_range = (low, high)
    return plan


def _judge(plan: _Plan, limits: _Limits, head: _Head) -> None:
    """Read anvil's answer as the provider would: count the logs, hide blocks past the head."""
    result = (plan.answer or {}).get("result")
    if plan.log_range and limits.results and isinstance(result, list):
        n, provider = limits.results
        if len(result) > n:
            low, high = plan.log_range
            over = sorted(int(log["blockNumber"], 16) for log in result)[n]
            fit = max(low, over - 1)
            _refuse(plan, "results", RESULT_BODIES[provider], lo=low, hi=high, n=n, fit=fit)
    block = result if plan.call.get("method") == "eth_getBlockByHash" else None
    if limits.lag and isinstance(block, dict) and int(block["number"], 16) > head.served():
        _local(plan, "lag", result=None)


def _refuse(plan: _Plan, out: str, body: Body, **values: int) -> _Plan:
    error: dict[str, Any] = {"code": body.code, "message": _format(body, **values)}
    if body is RESULT_BODIES["infura"]:
        data = {"from": f"0x{values['lo']:X}", "limit": values["n"], "to": f"0x{values['fit']:X}"}
        error["data"] = data
    return _local(plan, out, status=body.status, error=error)


def _format(body: Body, **values: Any) -> str:
    n = values.get("n", 0)
    span = values.get("hi", 0) - values.get("lo", 0)
    nk = f"{n // 1000}K" if n and n % 1000 == 0 else str(n)
    return body.text.format(span=span, nk=nk, **values)


def _local(plan: _Plan, out: str, *, status: int = 200, **answer: Any) -> _Plan:
    plan.answer = {"jsonrpc": "2.0", "id": plan.call.get("id"), **answer}
    plan.status, plan.out = status, out
    return plan


def _misbehave(
    handler: BaseHTTPRequestHandler, armed: _Armed, calls: list[dict[str, Any]], batch: bool
) -> None:
    """Answer a whole request with the armed fault instead of anvil."""
    if armed.kind == "rate_limit":
        body, wait = RATE_BODIES[armed.provider], armed.retry_after
        error: dict[str, Any] = {"code": body.code, "message": _format(body, wait=_go(wait))}
        if armed.provider == "infura":
            rate = {"allowed_rps": 1, "backoff_seconds": wait or 0, "current_rps": 2.2}
            error["data"] = {"rate": rate, "see": "https://infura.io/dashboard"}
        headers = {} if wait is None else {"Retry-After": str(math.ceil(wait))}
        if body.status == 200 and calls:  # refused call by call inside a normal answer
            answers = [{"jsonrpc": "2.0", "id": c.get("id"), "error": error} for c in calls]
            return _reply(handler, 200, _encode(answers, batch))
        if armed.provider == "quicknode":  # QuickNode's 429 carries the bare error object
            return _reply(handler, body.status, json.dumps(error).encode(), headers=headers)
        one_id = calls[0].get("id") if len(calls) == 1 and not batch else None
        envelope = {"jsonrpc": "2.0", "id": one_id, "error": error}
        return _reply(handler, body.status, json.dumps(envelope).encode(), headers=headers)
    if armed.kind.startswith("http_"):
        status = int(armed.kind.removeprefix("http_"))
        return _reply(handler, status, PAGES[status], content_type="text/html")
    if armed.kind == "empty":
        return _reply(handler, 200, b"")
    handler.close_connection = True
    if armed.kind == "reset":  # linger 0: close() sends RST instead of FIN
        linger = struct.pack("ii", 1, 0)
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        handler.connection.close()
    else:
        handler.connection.shutdown(socket.SHUT_RDWR)


def _reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: bytes,
    *,
    length: int | None = None,
    hang_up: bool = False,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload) if length is None else length))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)
    if hang_up:  # `length` promised more than was sent: the client reads a cut body
        handler.close_connection = True
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)


def _encode(answers: list[dict[str, Any]], batch: bool) -> bytes:
    return json.dumps(answers if batch else answers[0]).encode()


def _go(seconds: float | None) -> str:
    """A Go duration, as Ankr writes its waits ("10s", "10m0s")."""
    whole = max(0, math.ceil(seconds or 0))
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _resolve(tag: Any, head: _Head) -> int | None:
    if tag in ("latest", "pending"):
        return head.served()
    if tag == "earliest":
        return 0
    return int(tag, 16) if _is_hex(tag) else None


def _is_hex(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("0x") and len(value) > 2


def _numeric_bounds(params: list[Any]) -> tuple[int, int] | None:
    query = params[0] if params and isinstance(params[0], dict) else {}
    low, high = query.get("fromBlock"), query.get("toBlock")
    return (int(str(low), 16), int(str(high), 16)) if _is_hex(low) and _is_hex(high) else None


def _known(name: str, catalogue: dict[str, Body]) -> str:
    if name not in catalogue:
        raise ValueError(f"unknown provider {name!r}; one of {', '.join(catalogue)}")
    return name
