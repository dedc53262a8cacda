"""JSON-RPC over HTTP with batching, failure classification and failover.

Raw JSON-RPC instead of web3's provider: web3's result formatting and import cost dominate a
scheduled run (see docs/LOCAL-STACK.md), and batching lets a run ask for the head and block
headers in one round trip. A run asks every endpoint for its chain id at start, in parallel
(`check_endpoints`); one that did not answer then is checked on first use, in the same batch
as the first request sent to it. Failures are classified with `provider_errors`:

- range too large: raised as `RangeTooLargeError` with the provider's hint; the caller
  shrinks the range (retrying elsewhere would not help);
- rate limited: back off (Retry-After, else exponential) with jitter, then fail over;
- transient (5xx, timeouts, resets, empty or truncated bodies, an answer that cannot be
  right): retry, failing over to the next endpoint of RPC_URL;
- fatal (bad parameters, a refused API key): stop with a clear error;
- batch too long for the node: split it, and keep the node's cap for the process
  (`batch_caps`); the parts of one batch go to one endpoint, so its calls still agree.

Every wait (the HTTP request, the backoff) ends when the run's `StopSignal` is set
(`interruptible`), raising `StoppedError`: a SIGTERM is not held up by a slow node.

A client given `deadline_s` (the status reads) gives each call that long in all: a request
is cut at what is left of it, and a wait that would end past it (a Retry-After of 30 s) is
not waited: the next endpoint is tried, or the call fails now, so a status read answers
within its budget whatever a provider asks. Without one (the job's runs) a provider's
Retry-After is honoured, up to 30 s.

Endpoints are only ever named by host: API keys live in URL paths and queries.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from function.adapters.jsonrpc.batch_caps import PROCESS_CAPS, BatchCaps, first_part, refused_batch
from function.adapters.jsonrpc.calls import BatchTooLarge, Call, Retry, Validator
from function.adapters.jsonrpc.endpoint_check import chain_ids
from function.adapters.jsonrpc.interruptible import pause, until_stopped
from function.core.provider_errors import Failure, FailureKind, classify, error_text
from function.errors import ChainMismatchError, RangeTooLargeError, RpcCallError, RpcError
from function.redact import host_of, scrub
from function.stopping import StopSignal

__all__ = ["Call", "JsonRpc", "RpcCallError", "Validator"]

log = logging.getLogger(__name__)


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
        attempts: int = 4,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stop: StopSignal | None = None,
        caps: BatchCaps = PROCESS_CAPS,
        deadline_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoints = [_Endpoint(u, host_of(u)) for u in urls]
        self._current = 0
        self._chain_id = expected_chain_id
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._session = session or requests.Session()
        self._sleep = sleep
        self._stop = stop
        self._caps = caps
        self._deadline_s = deadline_s
        self._clock = clock
        self._next_id = 1

    @property
    def host(self) -> str:
        """The endpoint in use, by host."""
        return self._endpoints[self._current].host

    def check_endpoints(self, timeout_s: float = 3.0) -> None:
        """Ask every endpoint for its chain id at once, at start: one on another chain is a
        `ChainMismatchError` now, not when a failover first needs it. One that does not
        answer is only a warning; it is checked again on first use."""
        urls = [e.url for e in self._endpoints]
        answers = chain_ids(urls, timeout_s, self._stop, session=self._session)
        for endpoint, answer in zip(self._endpoints, answers, strict=True):
            if isinstance(answer, int):
                self._verify(endpoint, hex(answer))
            else:
                log.warning(
                    "RPC endpoint %s did not tell its chain id at start (%s); it is checked "
                    "on first use",
                    endpoint.host,
                    answer,
                )

    def call(self, method: str, params: list[Any], check: Validator | None = None) -> Any:
        """One call; raises `RpcError` (or `RangeTooLargeError`) when it cannot succeed."""
        return self.batch([Call(method, params, check)])[0]

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Several calls in one HTTP request, results in order; any failure raises."""
        results = self.batch_results(calls)
        for result in results:
            if isinstance(result, RpcError):
                raise result
        return results

    def batch_results(self, calls: Sequence[Call]) -> list[Any]:
        """Like `batch`, but a call the node refuses for good comes back in place as its
        `RpcError` value (so one refused call need not sink the others)."""
        ends = None if self._deadline_s is None else self._clock() + self._deadline_s
        what = _main([c.method for c in calls])
        last: Retry | None = None
        count = len(self._endpoints)
        for attempt in range(self._attempts):
            for tried in range(count):
                endpoint = self._endpoints[self._current]
                try:
                    return self._send(endpoint, calls, self._request_timeout(ends, last))
                except Retry as e:
                    last = e
                    log.warning(
                        "RPC endpoint %s: %s; %s",
                        endpoint.host,
                        e,
                        "failing over" if count > 1 else "retrying",
                    )
                    self._current = (self._current + 1) % count
                    if e.retry_after:
                        wait = min(e.retry_after, 30.0) * (0.8 + 0.4 * random.random())
                        if self._fits(wait, ends):
                            pause(wait, self._stop, self._sleep, what)
                        elif tried == count - 1:  # no endpoint left to try within the budget
                            raise self._out_of_time(last) from None
            wait = min(0.25 * 2**attempt, 8.0) * (0.5 + random.random())
            if not self._fits(wait, ends):
                raise self._out_of_time(last)
            pause(wait, self._stop, self._sleep, what)
        hosts = ", ".join(e.host for e in self._endpoints)
        raise RpcError(f"RPC_URL endpoints ({hosts}) kept failing: {last}")

    def _fits(self, wait: float, ends: float | None) -> bool:
        """Whether a wait ends before the call's deadline (always, without one)."""
        return ends is None or self._clock() + wait < ends

    def _request_timeout(self, ends: float | None, last: Retry | None) -> float:
        """The next request's timeout: what is left of the deadline, at most `timeout_s`."""
        if ends is None:
            return self._timeout_s
        left = ends - self._clock()
        if left <= 0:
            raise self._out_of_time(last)
        return min(self._timeout_s, left)

    def _out_of_time(self, last: Retry | None) -> RpcError:
        hosts = ", ".join(e.host for e in self._endpoints)
        return RpcError(
            f"RPC_URL endpoints ({hosts}) gave no answer within {self._deadline_s:g} s: {last}"
        )

    def _send(self, endpoint: _Endpoint, calls: Sequence[Call], timeout_s: float) -> list[Any]:
        """The batch on one endpoint, in as many requests as its cap asks (cut from the end)."""
        check = not endpoint.verified
        pending = ([Call("eth_chainId", [])] if check else []) + list(calls)
        results: list[Any] = []
        while pending:
            size = first_part(len(pending), self._caps.cap(endpoint.host))
            try:
                results += self._send_part(endpoint, pending[:size], timeout_s)
            except BatchTooLarge as e:
                cap = self._caps.refused(endpoint.host, size, e.stated)
                log.info(
                    "RPC endpoint %s caps batches: %d calls refused, now %d",
                    endpoint.host,
                    size,
                    cap,
                )
                continue
            pending = pending[size:]
        if check:
            self._verify(endpoint, results.pop(0))
        return results

    def _send_part(self, endpoint: _Endpoint, wire: Sequence[Call], timeout_s: float) -> list[Any]:
        first_id = self._next_id
        self._next_id += len(wire)
        body = [
            {"jsonrpc": "2.0", "id": first_id + i, "method": c.method, "params": c.params}
            for i, c in enumerate(wire)
        ]
        answers = self._post(endpoint, body, [c.method for c in wire], timeout_s)
        by_id = {
            a["id"]: a for a in answers if isinstance(a, dict) and isinstance(a.get("id"), int)
        }
        results: list[Any] = []
        for i, call in enumerate(wire):
            answer = by_id.get(first_id + i)
            if answer is None:
                raise Retry(f"no answer to {call.method} in the batch response")
            if answer.get("error") is not None:
                results.append(self._refusal(endpoint, call.method, answer["error"]))
            elif "result" not in answer:
                raise Retry(f"the answer to {call.method} has neither result nor error")
            else:
                if call.check is not None:
                    try:
                        call.check(answer["result"])
                    except (ValueError, KeyError, TypeError) as e:
                        raise Retry(
                            f"{call.method} answered something that cannot be right: "
                            f"{scrub(str(e))}"
                        ) from None
                results.append(answer["result"])
        return results

    def _refusal(self, endpoint: _Endpoint, method: str, error: Any) -> RpcError:
        """A JSON-RPC error object, classified: returned when final, raised when retryable."""
        code = error.get("code") if isinstance(error, dict) else None
        text = scrub(error_text(error))
        failure = classify(None, code if isinstance(code, int) else None, text)
        return self._final(endpoint, method, code, text, failure)

    def _final(
        self, endpoint: _Endpoint, method: str, code: Any, text: str, failure: Failure
    ) -> RpcError:
        if failure.kind is FailureKind.RANGE_TOO_LARGE and method == "eth_getLogs":
            return RangeTooLargeError(endpoint.host, text, failure)
        if failure.kind is FailureKind.FATAL:
            return RpcCallError(endpoint.host, method, code, text)
        if failure.kind is FailureKind.RATE_LIMITED:
            raise Retry(f"rate limited: {text}", failure.retry_after_s or 1.0)
        raise Retry(text)

    def _verify(self, endpoint: _Endpoint, answer: Any) -> None:
        if isinstance(answer, RpcError):
            raise answer
        try:
            chain_id = int(answer, 16)
        except (TypeError, ValueError):
            raise Retry(f"eth_chainId answered {answer!r}") from None
        if chain_id != self._chain_id:
            raise ChainMismatchError(
                f"CHAIN_ID={self._chain_id} but the RPC endpoint {endpoint.host} serves chain "
                f"{chain_id}: fix CHAIN_ID or RPC_URL"
            )
        endpoint.verified = True

    def _post(
        self, endpoint: _Endpoint, body: list[dict[str, Any]], methods: list[str], timeout_s: float
    ) -> list[Any]:
        def post() -> tuple[requests.Response, bytes]:
            response = self._session.post(
                endpoint.url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=timeout_s,
                stream=True,
            )
            # The body in one read, not `response.content`'s 10 KB at a time through
            # urllib3 (2,000 reads in Python for a busy window's 20 MB of logs).
            try:
                content = response.raw.read(decode_content=True)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                response.close()
                raise _as_requests_error(e) from None
            response.raw.release_conn()  # read whole: the connection goes back to the pool
            return response, content

        # With a deadline the whole request is cut at what is left of it: requests' own
        # timeout bounds each socket read, not a body that trickles in.
        limit = timeout_s if self._deadline_s is not None else None
        try:
            response, content = until_stopped(
                post, self._stop, f"{_main(methods)} on {endpoint.host}", limit
            )
        except TimeoutError:
            raise Retry(f"no answer from {endpoint.host} within {timeout_s:.1f} s") from None
        except requests.RequestException as e:
            # requests puts the full URL in its messages: keep only the exception type.
            raise Retry(f"{type(e).__name__} talking to {endpoint.host}") from None
        try:
            answers = json.loads(content)
        except ValueError:
            answers = None
        too_large, stated = refused_batch(answers, len(body))
        if too_large:
            raise BatchTooLarge(stated)
        status = response.status_code
        if status >= 400 or answers is None:
            self._http_failure(endpoint, status, answers, content, response, methods)
        if isinstance(answers, dict):  # some nodes answer a whole batch with one object
            if answers.get("error") is not None and answers.get("id") is None:
                error = answers["error"]
                code = error.get("code") if isinstance(error, dict) else None
                text = scrub(error_text(error))
                failure = classify(None, code if isinstance(code, int) else None, text)
                raise self._final(endpoint, _main(methods), code, text, failure)
            answers = [answers]
        if not isinstance(answers, list):
            raise Retry("the response is not a JSON-RPC answer")
        return answers

    def _http_failure(
        self,
        endpoint: _Endpoint,
        status: int,
        answers: Any,
        content: bytes,
        response: requests.Response,
        methods: list[str],
    ) -> None:
        if answers is None and status < 400:
            raise Retry("the response body is not JSON (empty or truncated)")
        error: Any = answers[0] if isinstance(answers, list) and answers else answers
        error = error.get("error", error) if isinstance(error, dict) else error
        text = scrub(
            error_text(error) if error is not None else content[:300].decode("utf-8", "replace")
        )
        code = error.get("code") if isinstance(error, dict) else None
        failure = classify(
            status,
            code if isinstance(code, int) else None,
            text,
            response.headers.get("Retry-After"),
        )
        if failure.kind is FailureKind.FATAL:
            raise RpcError(
                f"RPC endpoint {endpoint.host} refused the request with HTTP {status}: {text:.200} "
                "(check the API key and plan of RPC_URL)"
            )
        raise self._final(endpoint, _main(methods), code, f"HTTP {status}: {text:.300}", failure)


def _main(methods: list[str]) -> str:
    """The call a whole-request refusal is about: the log query when the batch has one."""
    return "eth_getLogs" if "eth_getLogs" in methods else (methods[-1] if methods else "?")


def _as_requests_error(e: BaseException) -> requests.RequestException:
    """What `response.content` would have raised for an error reading the body (its type
    is what the logs name)."""
    if isinstance(e, urllib3.exceptions.DecodeError):
        return requests.exceptions.ContentDecodingError(type(e).__name__)
    if isinstance(e, urllib3.exceptions.ProtocolError):
        return requests.exceptions.ChunkedEncodingError(type(e).__name__)
    if isinstance(e, urllib3.exceptions.SSLError):
        return requests.exceptions.SSLError(type(e).__name__)
    return requests.ConnectionError(type(e).__name__)
