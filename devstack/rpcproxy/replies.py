"""How devstack/rpcproxy/proxy.py answers a whole request it was told to fail: the armed faults
(rate limits, 5xx pages, empty, cut or dropped bodies) and the raw HTTP reply."""

from __future__ import annotations

import json
import math
import socket
import struct
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.rpcproxy.bodies import PAGES, RATE_BODIES, format_body


@dataclass(frozen=True)
class Armed:
    """A fault waiting for the next request (that contains `method`, if given)."""

    kind: str  # "rate_limit", "stall" or one of FAILURES
    method: str | None
    provider: str = "alchemy"
    retry_after: float | None = None  # for "stall": how long


def misbehave(
    handler: BaseHTTPRequestHandler, armed: Armed, calls: list[dict[str, Any]], batch: bool
) -> None:
    """Answer a whole request with the armed fault instead of anvil."""
    if armed.kind == "rate_limit":
        body, wait = RATE_BODIES[armed.provider], armed.retry_after
        error: dict[str, Any] = {
            "code": body.code,
            "message": format_body(body, wait=go_duration(wait)),
        }
        if armed.provider == "infura":
            rate = {"allowed_rps": 1, "backoff_seconds": wait or 0, "current_rps": 2.2}
            error["data"] = {"rate": rate, "see": "https://infura.io/dashboard"}
        headers = {} if wait is None else {"Retry-After": str(math.ceil(wait))}
        if body.status == 200 and calls:  # refused call by call inside a normal answer
            answers = [{"jsonrpc": "2.0", "id": c.get("id"), "error": error} for c in calls]
            return reply(handler, 200, encode(answers, batch))
        if armed.provider == "quicknode":  # QuickNode's 429 carries the bare error object
            return reply(handler, body.status, json.dumps(error).encode(), headers=headers)
        one_id = calls[0].get("id") if len(calls) == 1 and not batch else None
        envelope = {"jsonrpc": "2.0", "id": one_id, "error": error}
        return reply(handler, body.status, json.dumps(envelope).encode(), headers=headers)
    if armed.kind.startswith("http_"):
        status = int(armed.kind.removeprefix("http_"))
        return reply(handler, status, PAGES[status], content_type="text/html")
    if armed.kind == "empty":
        return reply(handler, 200, b"")
    handler.close_connection = True
    if armed.kind == "reset":  # linger 0: close() sends RST instead of FIN
        linger = struct.pack("ii", 1, 0)
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        handler.connection.close()
    else:
        handler.connection.shutdown(socket.SHUT_RDWR)


def reply(
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


def encode(answers: list[dict[str, Any]], batch: bool) -> bytes:
    return json.dumps(answers if batch else answers[0]).encode()


def go_duration(seconds: float | None) -> str:
    """A Go duration, as Ankr writes its waits ("10s", "10m0s")."""
    whole = max(0, math.ceil(seconds or 0))
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"
