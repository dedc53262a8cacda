"""A TCP hold like devstack/stack/tcphold.py's, split at the HTTP/2 frame that carries the pattern.

gRPC often writes a small request's HEADERS and DATA frames in one TCP send. Holding that
whole chunk holds the headers too, and with them the `grpc-timeout` the server counts the
request's deadline from: the request then lands with a fresh deadline, after the lease the
client computed it for, which the relayer documents it cannot prevent (README, "What a
deadline cannot cover"). The slow network of the campaign's SIGTERM trial holds only the
messages: the frames before the DATA frame with the pattern go on at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from devstack.stack.tcphold import Hold

_FRAME_HEADER = 9  # HTTP/2: length (3), type (1), flags (1), stream id (4)
_PREFACE = len(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
_DATA = 0


class FrameWalker:
    """Follows the HTTP/2 frames of one direction of a connection, chunk by chunk."""

    def __init__(self) -> None:
        self.skip = _PREFACE  # bytes before the next frame header
        self.head = b""  # a frame header cut by the chunk's end

    def frames(self, chunk: bytes) -> list[tuple[int, int, int]]:
        """(start, type, end) of each frame whose header is in `chunk`, offsets in the
        chunk (a start below 0: the header began in the chunk before)."""
        out, pos = [], 0
        while pos < len(chunk):
            if self.skip:
                step = min(self.skip, len(chunk) - pos)
                self.skip, pos = self.skip - step, pos + step
                continue
            start = pos - len(self.head)
            piece = chunk[pos : pos + _FRAME_HEADER - len(self.head)]
            self.head, pos = self.head + piece, pos + len(piece)
            if len(self.head) < _FRAME_HEADER:
                break
            length = int.from_bytes(self.head[:3], "big")
            out.append((start, self.head[3], pos + length))
            self.head, self.skip = b"", length
        return out


def split_at_frame(frames: list[tuple[int, int, int]], chunk: bytes, pattern: bytes) -> int:
    """Where the DATA frame holding `pattern` starts in `chunk` (0: hold the whole chunk)."""
    at = chunk.find(pattern)
    for start, kind, end in frames:
        if start <= at < end:
            return start if kind == _DATA and start > 0 else 0
    return 0


class FrameHoldProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream` ("host:port"); armed,
    it holds a request from the HTTP/2 frame that carries the pattern (as TcpHoldProxy
    does from the chunk: a class of its own, so that proxy can change freely)."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host or "127.0.0.1", int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._hold: Hold | None = None
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="h2hold").start()

    def arm(self, pattern: bytes, hold_s: float) -> Hold:
        """Hold the first frame that contains `pattern` (and what follows it) for `hold_s`."""
        with self._lock:
            self._hold = Hold(pattern, hold_s)
            return self._hold

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
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        holding_until: float | None = None
        hold: Hold | None = None
        walker = FrameWalker()
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                frames = walker.frames(chunk) if upstream else []
                if upstream and holding_until is None:
                    with self._lock:
                        armed = self._hold
                        if armed is not None and armed.seen_at is None and armed.pattern in chunk:
                            armed.seen_at = time.monotonic()
                            holding_until = armed.seen_at + armed.hold_s
                            hold = armed
                    if hold is not None:
                        cut = split_at_frame(frames, chunk, hold.pattern)
                        dst.sendall(chunk[:cut])  # the headers: the deadline starts now
                        chunk = chunk[cut:]
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
