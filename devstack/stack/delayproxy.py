"""A TCP proxy that adds a network's round-trip time, not its bandwidth limit.

Between the relayer (or the bench's floor) and a local service, every byte arrives `rtt/2`
after it was sent, in each direction, as across a network `rtt` long: a request/answer costs
one round trip more than on loopback, and a protocol that waits for answers (HTTP/1.1
keep-alive, gRPC's HTTP/2 flow-control windows, a Firestore transaction) pays for each wait
as it would in Google Cloud. Throughput is not limited: each direction of a connection is a
queue of timestamped chunks, read from its source as fast as the source sends and written
to its destination when each chunk's time has come, so a stream of bytes is delayed as a
whole, never serialised chunk by chunk behind the delay.

A new connection also costs `setup_round_trips` round trips before its first byte can
arrive, as TCP's handshake (1) and TLS 1.3's (1 more) do in Google Cloud, where every
endpoint is HTTPS: the client's bytes are held until then (the client here sees its connect
succeed at once, as loopback does, and sends at once).

Bytes pass through unchanged (HTTP/1.1, HTTP/2 and gRPC alike); a half-close travels with the
same delay; a reset or error ends both sides. One asyncio loop in a daemon thread serves each
proxy.

    with DelayProxy("127.0.0.1:8545", rtt_s=0.020) as proxy:
        url = f"http://{proxy.address}"

    python -m devstack.stack.delayproxy --upstream 127.0.0.1:8545 --rtt-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
CHUNK = 256 * 1024  # one read from a socket
IN_FLIGHT_LIMIT = 64 * 1024 * 1024  # bytes queued in one direction before reading pauses


@dataclass
class Traffic:
    """What went through a proxy (bytes each way, connections accepted)."""

    connections: int = 0
    upstream_bytes: int = 0  # client to server
    downstream_bytes: int = 0  # server to client


class _Direction:
    """One direction of one connection: chunks with the loop time at which each is due."""

    def __init__(self, delay_s: float, not_before: float) -> None:
        self.delay_s = delay_s
        self.not_before = not_before  # no byte is due before this (connection set-up)
        self.chunks: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.eof = False
        self.changed = asyncio.Event()  # a chunk or the end arrived
        self.room = asyncio.Event()  # the queue is below IN_FLIGHT_LIMIT again
        self.room.set()


class DelayProxy:
    """Listens on 127.0.0.1 (a free port, or `port`) and forwards to `upstream` ("host:port")
    with `rtt_s` of round trip added; `setup_round_trips` round trips per new connection."""

    def __init__(
        self,
        upstream: str,
        rtt_s: float = 0.020,
        *,
        setup_round_trips: int = 0,
        port: int = 0,
    ) -> None:
        if rtt_s < 0 or setup_round_trips < 0:
            raise ValueError("the round trip and the set-up round trips cannot be negative")
        host, _, upstream_port = upstream.rpartition(":")
        self._upstream = (host or HOST, int(upstream_port))
        self.rtt_s = rtt_s
        self.setup_round_trips = setup_round_trips
        self.traffic = Traffic()
        self._listener = socket.create_server((HOST, port))
        self.port: int = self._listener.getsockname()[1]
        self.address = f"{HOST}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), daemon=True, name=f"delayproxy-{self.port}"
        )
        self._thread.start()
        started.wait(10.0)
        if self._server is None:
            raise RuntimeError(f"the delay proxy for {upstream} did not start")

    # --- lifecycle ---------------------------------------------------------------------------

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._connection, sock=self._listener)
            started.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
        # As asyncio.run ends: a connection accepted while `shut` ran has a task that never
        # started; cancelled and run here, its coroutine is not left unawaited at collection.
        left = asyncio.all_tasks(self._loop)
        for task in left:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        self._loop.close()

    def stop(self) -> None:
        """Stop listening, cut every connection, end the loop's thread; safe to call twice."""
        if self._loop.is_closed() or not self._thread.is_alive():
            return

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(10.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- one connection ----------------------------------------------------------------------

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.traffic.connections += 1
        loop = asyncio.get_running_loop()
        half = self.rtt_s / 2
        # The client's first byte goes once the handshakes are over, then takes half a trip.
        setup_done = loop.time() + self.setup_round_trips * self.rtt_s
        server_writer: asyncio.StreamWriter | None = None
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._upstream)
            for writer in (client_writer, server_writer):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up = _Direction(half, setup_done)
            down = _Direction(half, 0.0)
            pumps = [
                asyncio.create_task(self._read(client_reader, up, upstream=True)),
                asyncio.create_task(self._write(server_writer, up)),
                asyncio.create_task(self._read(server_reader, down, upstream=False)),
                asyncio.create_task(self._write(client_writer, down)),
            ]
            try:
                # Both directions run to their ends; a reset on either side ends all four.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            pass  # the upstream refused the connection: the client's is closed, below
        except asyncio.CancelledError:
            pass  # the proxy stops: this connection's task ends quietly (it is nobody's child)
        finally:
            client_writer.close()
            if server_writer is not None:
                server_writer.close()
            self._tasks.discard(task)

    async def _read(self, reader: asyncio.StreamReader, d: _Direction, *, upstream: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await d.room.wait()
                chunk = await reader.read(CHUNK)
                if not chunk:
                    break
                if upstream:
                    self.traffic.upstream_bytes += len(chunk)
                else:
                    self.traffic.downstream_bytes += len(chunk)
                d.chunks.append((max(loop.time(), d.not_before) + d.delay_s, chunk))
                d.queued += len(chunk)
                if d.queued >= IN_FLIGHT_LIMIT:
                    d.room.clear()
                d.changed.set()
        finally:
            d.eof = True
            d.changed.set()

    async def _write(self, writer: asyncio.StreamWriter, d: _Direction) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not d.chunks:
                if d.eof:
                    break
                d.changed.clear()
                await d.changed.wait()
                continue
            due, _ = d.chunks[0]
            # Never early: sleep again if the loop woke a little before the chunk's time.
            while (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            # Everything due by now goes in one write.
            now = loop.time()
            ready: list[bytes] = []
            while d.chunks and d.chunks[0][0] <= now:
                ready.append(d.chunks.popleft()[1])
            size = sum(map(len, ready))
            writer.write(b"".join(ready))
            await writer.drain()
            d.queued -= size
            if d.queued < IN_FLIGHT_LIMIT:
                d.room.set()
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devstack.stack.delayproxy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--upstream", required=True, help="host:port to forward to")
    p.add_argument("--rtt-ms", type=float, default=20.0, help="round trip added (default 20)")
    p.add_argument("--setup-round-trips", type=int, default=0,
                   help="round trips a new connection costs first (TCP 1, TLS 1.3 2)")  # fmt: skip
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    a = p.parse_args(argv)
    proxy = DelayProxy(
        a.upstream, a.rtt_ms / 1000, setup_round_trips=a.setup_round_trips, port=a.port
    )
    print(f"listening on {proxy.address}, forwarding to {a.upstream} with {a.rtt_ms:g} ms",
          flush=True)  # fmt: skip
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
