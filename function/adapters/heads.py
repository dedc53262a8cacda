"""Waking a follower when a block is mined: `eth_subscribe("newHeads")` over a websocket.

Polling stays the rule (RPC_WS_URL is optional): a follower looks at the chain at least every
RELAYER_POLL_INTERVAL whatever the websocket does, and a new head only brings the next look
forward. The subscription lives in a daemon thread that reconnects with back-off; an endpoint
that refuses subscriptions (an HTTP-only provider behind a websocket gateway, a plan without
them) is said once and then left alone, so the follower just polls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from function.redact import host_of, scrub
from function.stopping import StopSignal

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 5.0
BACKOFF_S = (1.0, 2.0, 5.0, 15.0, 30.0)  # between reconnections, then the last one again
STOP_CHECK_S = 0.25  # how soon a wait notices a stop
MAX_MESSAGE_BYTES = 1 << 20  # a newHeads notification is ~1 kB; a bigger one is not ours


class Socket(Protocol):
    """What is used of a `websockets.sync` client connection."""

    def send(self, message: str) -> None: ...

    def recv(self, timeout: float | None = None) -> str | bytes: ...

    def close(self) -> None: ...


def _connect(url: str) -> Socket:
    from websockets.sync.client import connect  # only followers with RPC_WS_URL pay for it

    # legacy=True: a connection object to close ourselves (the waker's thread owns it),
    # not the context-manager form newer websockets versions ask for by default.
    socket: Socket = connect(
        url, open_timeout=OPEN_TIMEOUT_S, max_size=MAX_MESSAGE_BYTES, proxy=None, legacy=True
    )
    return socket


class SubscriptionRefused(Exception):
    """The endpoint answered eth_subscribe with an error: it does not offer subscriptions."""


class HeadWaker:
    """New heads announced by the endpoint, for `Relay.heads` (the `Heads` port)."""

    def __init__(
        self, url: str, stop: StopSignal, connect: Callable[[str], Socket] = _connect
    ) -> None:
        self._url, self._stop, self._connect = url, stop, connect
        self._cond = threading.Condition()
        self._announced = 0  # heads announced so far
        self._taken = 0  # heads a wait has already woken for
        self._closed = False
        self._socket: Socket | None = None
        self._thread: threading.Thread | None = None
        self.refused = False  # the endpoint does not offer newHeads: polling only
        self._subscribed = False  # the current connection's subscription was confirmed

    @property
    def host(self) -> str:
        return host_of(self._url)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="new-heads", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            socket = self._socket
            self._cond.notify_all()
        if socket is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing left to do
                socket.close()

    def wait(self, seconds: float) -> bool:
        """Up to `seconds` for a head announced since the last wait; True when one was
        (False at the timeout or a stop: the caller checks which)."""
        self.start()
        remaining = max(0.0, seconds)
        with self._cond:
            while self._announced == self._taken:
                if remaining <= 0 or self._stop.is_set() or self._closed:
                    return False
                step = min(STOP_CHECK_S, remaining)
                self._cond.wait(step)
                remaining -= step
            self._taken = self._announced
            return True

    def _done(self) -> bool:
        return self._closed or self._stop.is_set()

    def _follow(self) -> None:
        failures = 0
        while not self._done():
            self._subscribed = False
            try:
                self._subscribe_and_read()
                failures = 0
            except SubscriptionRefused as e:
                self.refused = True
                log.warning(
                    "RPC_WS_URL (%s) refused eth_subscribe newHeads (%s): following by "
                    "polling every RELAYER_POLL_INTERVAL only",
                    self.host,
                    scrub(str(e)),
                )
                return
            except Exception as e:
                if self._done():
                    return
                if self._subscribed:  # it worked for a while: a fresh drop, not a streak
                    failures = 0
                delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                if failures == 0:
                    log.warning(
                        "new-heads subscription to %s failed (%s: %s): polling meanwhile, "
                        "reconnecting in %g s",
                        self.host,
                        type(e).__name__,
                        scrub(str(e)),
                        delay,
                    )
                failures += 1
                ends = time.monotonic() + delay  # a stop or a close ends the back-off too
                while not self._done() and time.monotonic() < ends:
                    time.sleep(STOP_CHECK_S)

    def _subscribe_and_read(self) -> None:
        socket = self._connect(self._url)
        with self._cond:
            if self._closed:
                socket.close()
                return
            self._socket = socket
        try:
            socket.send(
                json.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
                )
            )
            subscription: str | None = None
            while not self._done():
                try:
                    raw = socket.recv(timeout=STOP_CHECK_S * 4)
                except TimeoutError:
                    continue
                message = _parse(raw)
                if subscription is None and message.get("id") == 1:
                    if "error" in message or not isinstance(message.get("result"), str):
                        raise SubscriptionRefused(str(message.get("error", message))[:200])
                    subscription = message["result"]
                    self._subscribed = True  # the back-off starts again from its first step
                    log.info("woken by new heads from %s between looks", self.host)
                    continue
                params = message.get("params")
                if (
                    message.get("method") == "eth_subscription"
                    and isinstance(params, dict)
                    and params.get("subscription") == subscription
                ):
                    with self._cond:
                        self._announced += 1
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._socket = None
            socket.close()


def _parse(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}
