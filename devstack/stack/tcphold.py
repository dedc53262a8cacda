"""A TCP proxy that can hold a request on the wire: a slow network in front of an emulator.

Armed with a byte pattern, it forwards everything until a client chunk containing the pattern
arrives, then holds that chunk and every later one of that connection for `hold_s` seconds
before sending them on, in order. In front of the Pub/Sub emulator, with the pattern
`"event_id"` (every message's data has it), this keeps a publish request's messages in
flight while its headers, and so its gRPC deadline, have already reached the server: the
case where a request the relayer gave up on is still accepted later.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Hold:
    """What the proxy did with the held request (monotonic times)."""

    pattern: bytes
    hold_s: float
    seen_at: float | None = None  # the pattern arrived from the client
    released_at: float | None = None  # the held bytes went on to the server
    released_wall: float | None = None  # the same instant, as time.time()
    done: threading.Event = field(default_factory=threading.Event)


class TcpHoldProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream` ("host:port")."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host or "127.0.0.1", int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._hold: Hold | None = None
        self._lose: tuple[bytes, threading.Event] | None = None
        self._lose_fired = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="tcphold").start()

    def arm(self, pattern: bytes, hold_s: float) -> Hold:
        """Hold the first chunk that contains `pattern` (and what follows it) for `hold_s`."""
        with self._lock:
            self._hold = Hold(pattern, hold_s)
            return self._hold

    def lose_answer(self, pattern: bytes) -> threading.Event:
        """Forward the first client chunk containing `pattern`, then drop whatever the server
        answers on that connection and cut it half a second later: a request applied whose
        answer was lost. The event is set once the connection is cut."""
        with self._lock:
            self._lose, self._lose_fired = (pattern, threading.Event()), False
            return self._lose[1]

    def stop(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            muted = threading.Event()  # the server's answers on this connection are lost
            for args in ((client, server, True, muted), (server, client, False, muted)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, upstream: bool, muted: threading.Event
    ) -> None:
        holding_until: float | None = None
        hold: Hold | None = None
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                if not upstream and muted.is_set():
                    continue
                if upstream and self._losing(chunk):
                    muted.set()
                    dst.sendall(chunk)
                    threading.Thread(target=self._cut, args=(src, dst), daemon=True).start()
                    continue
                if upstream and holding_until is None:
                    with self._lock:
                        armed = self._hold
                        if armed is not None and armed.seen_at is None and armed.pattern in chunk:
                            armed.seen_at = time.monotonic()
                            holding_until = armed.seen_at + armed.hold_s
                            hold = armed
                if holding_until is not None:
                    time.sleep(max(0.0, holding_until - time.monotonic()))
                    if hold is not None and hold.released_at is None:
                        hold.released_at = time.monotonic()
                        hold.released_wall = time.time()
                        hold.done.set()
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _losing(self, chunk: bytes) -> bool:
        """True for the first chunk that has the pattern (once: later ones pass)."""
        with self._lock:
            if self._lose is None or self._lose_fired or self._lose[0] not in chunk:
                return False
            self._lose_fired = True
            return True

    def _cut(self, *socks: socket.socket) -> None:
        time.sleep(0.5)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        assert self._lose is not None
        self._lose[1].set()
