"""Review of issue 15: "/status ... ten relayers on a hung RPC time the page out exactly when it
is needed"; function/ops/app.py: "each read gives up after STATUS_TIMEOUT_S" (3 s) under the
status function's 30 s timeout (infra/status.tf). A provider that rate limits (HTTP 429 with
Retry-After, the most common RPC incident) makes the status read wait what the provider
asks, up to 36 s, before it gives up: the page an on-call engineer opens first times out.

The waits are recorded, not slept: no timing assertion."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import function.adapters.jsonrpc.client as client
import function.ops.wiring as wiring
from function.config import load_settings
from function.ops import app
from minimal_env import MINIMAL


class RateLimited(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "rate limited"}}
        ).encode()
        self.send_response(429)
        self.send_header("Retry-After", "30")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def rpc_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RateLimited)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2/key"
    server.shutdown()


class FixedState:
    def read(self, timeout_s: float | None = None) -> dict[str, Any]:
        return {"next_block": 5}

    def backfills(self, now: Any, timeout_s: float | None = None) -> list[dict[str, Any]]:
        return []


def test_a_rate_limited_endpoint_keeps_a_status_read_within_its_budget(
    rpc_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(client, "pause", lambda seconds, *_: waits.append(seconds))
    monkeypatch.setattr(wiring, "state_store", lambda *_a, **_k: FixedState())
    monkeypatch.setattr(wiring, "firestore_client", lambda *_a, **_k: None)
    app.clear_cache()
    settings = load_settings({**MINIMAL, "RPC_URL": rpc_url})

    entry = app._relayer_entry(settings)

    assert entry["head_block"] is None  # the read gave up, as it should ...
    assert sum(waits) <= app.STATUS_TIMEOUT_S, (
        f"... but only after waiting {sum(waits):.1f} s (STATUS_TIMEOUT_S="
        f"{app.STATUS_TIMEOUT_S:g}, the status function's timeout 30 s)"
    )
