"""Provider faults the audit found, as a `faults` hook of devstack/rpcproxy.py's RpcProxy.

`ProviderHook(upstream)` is a callable on the raw request body. Told to, it:
- refuses a JSON-RPC batch of more than N calls as geth does: HTTP 200 and one item,
  `{"id": <the first call's id>, "error": {"code": -32600, "message": "batch too large"}}`;
- strips `blockTimestamp` from eth_getLogs answers (older nodes), so the relayer must ask
  for the headers, in batches the cap refuses;
- repeats a log in eth_getLogs answers: an exact copy, or a different log at the same index
  (`shared_index`);
- stalls the next request of a method (a slow provider), until the stall ends or `stop()`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests

REPEATS = ("copy", "shared_index")


class ProviderHook:
    """RpcProxy(upstream, faults=ProviderHook(upstream)): misbehaves as configured."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.batch_cap: int | None = None
        self.strip_timestamps = False
        self.repeat: str | None = None
        self.refused_batches = 0
        self.repeated = 0
        self.stalled_at: float | None = None
        self._stall: tuple[str, float] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._local = threading.local()

    def stall(self, method: str, seconds: float) -> None:
        """Hold the next request that calls `method` for `seconds`, then answer it."""
        with self._lock:
            self._stall = (method, seconds)
            self.stalled_at = None

    def clear(self) -> None:
        with self._lock:
            self.batch_cap, self.strip_timestamps, self.repeat = None, False, None
            self._stall = None

    def stop(self) -> None:
        self._stopping.set()

    def __call__(self, body: bytes) -> tuple[int, bytes] | None:
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            return None
        listed = parsed if isinstance(parsed, list) else [parsed]
        calls = [c for c in listed if isinstance(c, dict)]
        methods = {str(c.get("method")) for c in calls}
        with self._lock:
            stall = self._stall if self._stall and self._stall[0] in methods else None
            if stall:
                self._stall, self.stalled_at = None, time.time()
            cap, strip, repeat = self.batch_cap, self.strip_timestamps, self.repeat
        if stall:
            self._stopping.wait(stall[1])
        if isinstance(parsed, list) and cap is not None and len(parsed) > cap:
            with self._lock:
                self.refused_batches += 1
            first = calls[0].get("id") if calls else None
            error = {"code": -32600, "message": "batch too large"}
            return 200, json.dumps([{"jsonrpc": "2.0", "id": first, "error": error}]).encode()
        if "eth_getLogs" not in methods or not (strip or repeat):
            return None
        answer = self._post(body)
        items = answer if isinstance(answer, list) else [answer]
        for call, item in zip(calls, items, strict=False):
            result = item.get("result") if isinstance(item, dict) else None
            if call.get("method") == "eth_getLogs" and isinstance(result, list):
                item["result"] = self._reshape(result, strip, repeat)
        return 200, json.dumps(answer).encode()

    def _reshape(self, logs: list[Any], strip: bool, repeat: str | None) -> list[Any]:
        out = [{k: v for k, v in e.items() if not (strip and k == "blockTimestamp")} for e in logs]
        if repeat and out:
            with self._lock:
                self.repeated += 1
            if repeat == "copy":
                out.append(dict(out[len(out) // 2]))
            else:  # another log at the index of the first one: different data
                data = str(out[0]["data"])
                other = data[:-1] + ("1" if data[-1:] != "1" else "2") if len(data) > 2 else "0x01"
                out.append({**out[0], "data": other})
        return out

    def _post(self, body: bytes) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        reply = session.post(self.upstream, data=body, timeout=60,
                             headers={"Content-Type": "application/json"})  # fmt: skip
        return reply.json()
