"""New heads waking a follower (RPC_WS_URL, `eth_subscribe("newHeads")`): the waker over a
scripted socket, and the follow loop over the fakes on a fake clock. Polling stays the rule:
a head brings a look forward, never pushes one back."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator

import pytest
from test_follow_mode import World

from devstack.sim.clock import FakeClock, deterministic
from function.adapters.heads import HeadWaker
from function.config import load_settings
from function.errors import ConfigError
from function.run.relay import MIN_LOOK_GAP_S
from function.stopping import StopSignal
from minimal_env import MINIMAL


class ScriptedSocket:
    """A websocket whose server answers from a queue: `push` a message, `fail` the link."""

    def __init__(self, answer: dict[str, object] | None = None) -> None:
        self.sent: list[dict[str, object]] = []
        self.inbox: queue.Queue[str | BaseException] = queue.Queue()
        self.answer = answer or {"jsonrpc": "2.0", "id": 1, "result": "0xsub"}
        self.closed = False
        self.early: list[str] = []  # heads asked for before the subscription: sent after it

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))
        self.inbox.put(json.dumps(self.answer))
        for note in self.early:
            self.inbox.put(note)
        self.early.clear()

    def recv(self, timeout: float | None = None) -> str:
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.closed = True

    def head(self, subscription: str = "0xsub") -> None:
        note = {"subscription": subscription, "result": {"number": "0x10"}}
        text = json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": note})
        if self.sent:
            self.inbox.put(text)
        else:
            self.early.append(text)


def test_a_head_announced_wakes_the_wait_and_only_once() -> None:
    socket = ScriptedSocket()
    waker = HeadWaker("wss://node.example/key-123", StopSignal(), lambda url: socket)
    try:
        socket.head()
        assert waker.wait(10.0) is True
        assert socket.sent == [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        ]
        assert waker.wait(0.3) is False  # the same head does not wake twice
        socket.head("0xother")  # another subscription's notification is not ours
        assert waker.wait(0.3) is False
    finally:
        waker.close()
    assert socket.closed


def test_an_endpoint_refusing_subscriptions_is_said_once_and_left_to_polling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusal = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "not supported"}}
    connects: list[str] = []

    def connect(url: str) -> ScriptedSocket:
        connects.append(url)
        return ScriptedSocket(refusal)

    waker = HeadWaker("wss://node.example/v2/secret-key", StopSignal(), connect)
    try:
        assert waker.wait(1.0) is False
        waker._thread.join(5)  # type: ignore[union-attr]
        assert waker.refused and len(connects) == 1
    finally:
        waker.close()
    said = [r.getMessage() for r in caplog.records if "refused eth_subscribe" in r.getMessage()]
    assert len(said) == 1 and "node.example" in said[0] and "secret-key" not in said[0]


def test_a_broken_link_is_reconnected_and_a_stop_ends_the_wait() -> None:
    sockets = [ScriptedSocket(), ScriptedSocket()]
    stop = StopSignal()
    waker = HeadWaker("ws://127.0.0.1:1", stop, lambda url: sockets.pop(0) if sockets else first)
    first, second = sockets
    first.inbox.put(ConnectionResetError("peer went away"))
    try:
        second.head()
        assert waker.wait(10.0) is True  # after the first link broke (1 s back-off)
        stop.set()
        assert waker.wait(10.0) is False  # a stop, not a head
    finally:
        waker.close()


def test_rpc_ws_url_is_checked_without_showing_its_key() -> None:
    env = MINIMAL
    assert load_settings(env).ws_url is None
    url = "wss://eth.example.com/ws/v3/0123456789abcdef"
    assert load_settings({**env, "RPC_WS_URL": url}).ws_url == url
    with pytest.raises(ConfigError) as refused:
        load_settings({**env, "RPC_WS_URL": "https://eth.example.com/v3/0123456789abcdef"})
    assert "RPC_WS_URL" in str(refused.value) and "ws(s)://" in str(refused.value)
    assert "0123456789abcdef" not in str(refused.value)


class FakeHeads:
    """Heads at chosen fake instants; a wait moves the fake clock to the next one (or to
    its timeout), as the real waker's wait would take that long."""

    def __init__(self, clock: FakeClock, stop: StopSignal) -> None:
        self.clock, self.stop = clock, stop
        self.at: list[float] = []
        self.closed = False

    def wait(self, seconds: float) -> bool:
        end = self.clock.now + max(0.0, seconds)
        while self.clock.now < end and not self.stop.is_set():
            if self.at and self.at[0] <= self.clock.now:
                self.at.pop(0)
                return True
            self.clock.advance(min(0.25, end - self.clock.now))
        return False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    with deterministic(w.clock):
        yield w


def test_a_new_head_brings_the_next_look_forward_and_its_events_out(world: World) -> None:
    stop = StopSignal()
    heads = FakeHeads(world.clock, stop)
    start = world.clock.now
    world.chain.mine([1])
    world.mine_at(3.0)
    heads.at = [start + 3.0, start + 3.5]  # two heads close together: one look per gap
    relay = world.relay(stop, run_s=20.0, poll_interval_s=15.0, lease_s=40.0)
    relay.heads = heads
    outcome = relay.run()
    s = outcome.summary
    assert s.outcome == "ok" and outcome.error is None
    looks = [t - start for t in world.watched.looks]
    assert looks[:2] == [0.0, 3.0]  # the head at 3 s, not the poll at 15 s
    assert looks[2] == 4.0  # the head at 3.5 s waits until MIN_LOOK_GAP_S after the last
    assert looks[2] - looks[1] == MIN_LOOK_GAP_S
    assert looks[3] == 19.0  # no more heads: polling again, every 15 s
    assert s.extra["woken_by_heads"] == 2
    assert world.published_ids() == world.event_ids()
    assert heads.closed  # the run let the subscription go


def test_heads_do_not_delay_a_look_that_polling_makes_anyway(world: World) -> None:
    stop = StopSignal()
    heads = FakeHeads(world.clock, stop)  # a subscription that never announces anything
    start = world.clock.now
    relay = world.relay(stop, run_s=12.0, poll_interval_s=5.0)
    relay.heads = heads
    relay.run()
    assert [t - start for t in world.watched.looks] == [0.0, 5.0, 10.0]
