"""A status read's RPC calls end within their budget, whatever a provider's Retry-After asks;
the job's calls (no deadline) keep waiting what the provider asks. Waits are recorded on a
fake clock, not slept."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from http_answers import Response

from function.adapters.jsonrpc.client import JsonRpc
from function.adapters.jsonrpc.interruptible import until_stopped
from function.errors import RpcError

KEY = "SECRETKEY"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Session:
    """`limited` hosts answer 429 with Retry-After 30, `slow` ones take 2 s and answer 503,
    the others answer every call with block 0x10."""

    def __init__(
        self,
        clock: Clock,
        limited: frozenset[str] = frozenset(),
        slow: frozenset[str] = frozenset(),
    ) -> None:
        self.clock, self.limited, self.slow = clock, limited, slow
        self.timeouts: list[float] = []

    def post(
        self, url: str, data: str, headers: dict[str, str], timeout: float, stream: bool = False
    ) -> Response:
        self.timeouts.append(timeout)
        if any(h in url for h in self.limited):
            return Response(429, b"Too Many Requests", {"Retry-After": "30"})
        if any(h in url for h in self.slow):
            self.clock.now += 2.0
            return Response(503, b"Service Unavailable")
        body = json.loads(data)
        answers = [
            {
                "jsonrpc": "2.0",
                "id": c["id"],
                "result": hex(1) if c["method"] == "eth_chainId" else "0x10",
            }
            for c in body
        ]
        return Response(200, json.dumps(answers).encode())


def client(session: Session, clock: Clock, urls: list[str], **options: Any) -> JsonRpc:
    return JsonRpc(urls, 1, session=session, sleep=clock.sleep, clock=clock, **options)  # type: ignore[arg-type]


def test_a_read_with_a_deadline_does_not_wait_a_retry_after_past_it() -> None:
    clock = Clock()
    session = Session(clock, limited=frozenset({"one.invalid"}))
    rpc = client(session, clock, [f"https://one.invalid/v2/{KEY}"], attempts=1, deadline_s=3.0)
    with pytest.raises(RpcError) as raised:
        rpc.call("eth_blockNumber", [])
    assert clock.slept == []
    assert "within 3 s" in str(raised.value) and KEY not in str(raised.value)


def test_a_read_with_a_deadline_fails_over_instead_of_waiting() -> None:
    clock = Clock()
    session = Session(clock, limited=frozenset({"one.invalid"}))
    urls = [f"https://one.invalid/v2/{KEY}", "https://two.invalid/"]
    rpc = client(session, clock, urls, attempts=1, deadline_s=3.0)
    assert rpc.call("eth_blockNumber", []) == "0x10"
    assert clock.slept == []


def test_each_request_gets_only_what_is_left_of_the_deadline() -> None:
    clock = Clock()
    session = Session(clock, slow=frozenset({"one.invalid"}))
    rpc = client(session, clock, ["https://one.invalid/"], attempts=5, deadline_s=3.0)
    with pytest.raises(RpcError, match="within 3 s"):
        rpc.call("eth_blockNumber", [])
    assert session.timeouts[0] == 3.0
    assert all(t < 1.0 for t in session.timeouts[1:])
    assert clock.now - sum(clock.slept) == pytest.approx(2.0 * len(session.timeouts))
    assert sum(clock.slept) < 3.0


def test_without_a_deadline_the_providers_retry_after_is_honoured() -> None:
    """The job's runs: waiting what the provider asks keeps it from banning the key."""
    clock = Clock()
    session = Session(clock, limited=frozenset({"one.invalid"}))
    rpc = client(session, clock, ["https://one.invalid/"], attempts=2)
    with pytest.raises(RpcError, match="kept failing"):
        rpc.call("eth_blockNumber", [])
    assert 24.0 <= clock.slept[0] <= 36.0


def test_a_call_past_its_limit_is_abandoned() -> None:
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            until_stopped(lambda: release.wait(30), None, "eth_blockNumber", 0.05)
    finally:
        release.set()
