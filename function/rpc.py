"""JSON-RPC over HTTP with batching and failover across the endpoints of RPC_URL.

Raw JSON-RPC instead of web3's provider: web3's result formatting and import cost dominate a
scheduled run (see LOCAL-STACK.md), and batching lets a run ask for the chain id, the head
and block headers in one round trip. Every endpoint's chain id is checked on first use, in
the same batch as the first request sent to it. Endpoints are named by host only.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from .errors import ChainMismatchError, RpcError
from .redact import host_of, scrub

log = logging.getLogger(__name__)

Call = tuple[str, list[Any]]


class RpcCallError(RpcError):
    """The node answered a request with a JSON-RPC error object."""

    def __init__(self, host: str, method: str, code: int, message: str) -> None:
        super().__init__(f"{method} failed on {host}: {message} (code {code})")
        self.host = host
        self.method = method
        self.code = code
        self.rpc_message = message


class _Transient(Exception):
    """A failure worth retrying or failing over (network, 5xx, 429, garbage body)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class _Endpoint:
    url: str
    host: str
    verified: bool = False


class JsonRpc:
    """A JSON-RPC client that batches calls and fails over between endpoints."""

    def __init__(
        self,
        urls: Sequence[str],
        expected_chain_id: int,
        *,
        timeout_s: float = 15.0,
        attempts: int = 3,
        session: requests.Session | None = None,
    ) -> None:
        self._endpoints = [_Endpoint(u, host_of(u)) for u in urls]
        self._current = 0
        self._chain_id = expected_chain_id
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._session = session or requests.Session()
        self._next_id = 1

    @property
    def host(self) -> str:
        """The endpoint in use, by host."""
        return self._endpoints[self._current].host

    def call(self, method: str, params: list[Any]) -> Any:
        """One call; raises `RpcCallError` when the node answers with an error."""
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Several calls in one HTTP request, results in order; any error raises."""
        results = self.batch_results(calls)
        for result in results:
            if isinstance(result, RpcCallError):
                raise result
        return results

    def batch_results(self, calls: Sequence[Call]) -> list[Any]:
        """Like `batch`, but JSON-RPC errors come back in place as `RpcCallError` values."""
        last: _Transient | None = None
        for attempt in range(self._attempts):
            for _ in range(len(self._endpoints)):
                endpoint = self._endpoints[self._current]
                try:
                    return self._send(endpoint, calls)
                except _Transient as e:
                    last = e
                    log.warning(
                        "RPC endpoint %s failed (%s); trying %s",
                        endpoint.host,
                        e,
                        "the next endpoint" if len(self._endpoints) > 1 else "again",
                    )
                    self._current = (self._current + 1) % len(self._endpoints)
                    if e.retry_after:
                        time.sleep(min(e.retry_after, 10.0))
            time.sleep(min(0.25 * 2**attempt, 4.0) * (0.5 + random.random()))
        hosts = ", ".join(e.host for e in self._endpoints)
        raise RpcError(f"RPC_URL endpoints ({hosts}) all failed: {last}")

    def _send(self, endpoint: _Endpoint, calls: Sequence[Call]) -> list[Any]:
        check = not endpoint.verified
        wire: list[Call] = ([("eth_chainId", [])] if check else []) + list(calls)
        first_id = self._next_id
        self._next_id += len(wire)
        body = [
            {"jsonrpc": "2.0", "id": first_id + i, "method": m, "params": p}
            for i, (m, p) in enumerate(wire)
        ]
        answers = self._post(endpoint, body)
        by_id: dict[int, Any] = {}
        for answer in answers:
            if isinstance(answer, dict) and isinstance(answer.get("id"), int):
                by_id[answer["id"]] = answer
        results: list[Any] = []
        for i, (method, _) in enumerate(wire):
            answer = by_id.get(first_id + i)
            if answer is None:
                raise _Transient(f"no answer to {method} in the batch response")
            error = answer.get("error")
            if error is not None:
                code = int(error.get("code", 0)) if isinstance(error, dict) else 0
                text = scrub(str(error.get("message", error) if isinstance(error, dict) else error))
                if code in (-32005, 429) or "rate limit" in text.lower():
                    raise _Transient(f"rate limited: {text}", retry_after=1.0)
                results.append(RpcCallError(endpoint.host, method, code, text))
            elif "result" not in answer:
                raise _Transient(f"answer to {method} has neither result nor error")
            else:
                results.append(answer["result"])
        if check:
            self._verify(endpoint, results.pop(0))
        return results

    def _verify(self, endpoint: _Endpoint, answer: Any) -> None:
        if isinstance(answer, RpcCallError):
            raise answer
        try:
            chain_id = int(answer, 16)
        except (TypeError, ValueError):
            raise _Transient(f"eth_chainId answered {answer!r}") from None
        if chain_id != self._chain_id:
            raise ChainMismatchError(
                f"CHAIN_ID={self._chain_id} but the RPC endpoint {endpoint.host} serves chain "
                f"{chain_id}: fix CHAIN_ID or RPC_URL"
            )
        endpoint.verified = True

    def _post(self, endpoint: _Endpoint, body: list[dict[str, Any]]) -> list[Any]:
        try:
            response = self._session.post(
                endpoint.url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout_s,
            )
        except requests.RequestException as e:
            # requests puts the full URL in its messages: keep only the exception type.
            raise _Transient(f"{type(e).__name__} talking to {endpoint.host}") from None
        status = response.status_code
        if status == 429:
            raise _Transient("HTTP 429 rate limited", _retry_after(response))
        if status >= 500:
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise RpcError(
                f"RPC endpoint {endpoint.host} refused the request with HTTP {status}: check "
                "the API key and URL in RPC_URL"
            )
        try:
            answers = json.loads(response.content)
        except ValueError:
            raise _Transient("the response body is not JSON (empty or truncated)") from None
        if isinstance(answers, dict):  # some nodes answer a whole batch with one error
            answers = [answers]
        if not isinstance(answers, list):
            raise _Transient("the response is not a JSON-RPC batch answer")
        return answers


def _retry_after(response: requests.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0
