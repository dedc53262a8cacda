"""A JSON-RPC proxy in front of anvil that answers on any path, like a hosted provider.

Hosted providers put the API key in the URL path (`/v2/<key>`) while anvil only serves `/`;
tests that prove a key never leaks need an endpoint that accepts such URLs. The proxy
forwards every POST body to anvil unchanged. `faults` is a hook for tests that need a
provider's misbehaviour: a callable that may return (status, body) to answer instead of
forwarding, or None to forward.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

Fault = Callable[[bytes], tuple[int, bytes] | None]


class RpcProxy:
    """Forwards JSON-RPC on any path to `upstream`; stop() when done."""

    def __init__(self, upstream: str, faults: Fault | None = None) -> None:
        self.upstream = upstream
        self.faults = faults
        self.requests_seen: list[str] = []
        session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy.requests_seen.append(self.path)
                answer = proxy.faults(body) if proxy.faults else None
                if answer is None:
                    upstream_answer = session.post(
                        proxy.upstream,
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=60,
                    )
                    answer = (upstream_answer.status_code, upstream_answer.content)
                status, payload = answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
