"""Review 14 (hostile review of follow mode): each test shows a way the follow loop or the
pieces built for it break docs/CONTRACT.md, on the current code. They are marked
Each was an xfail(strict=True) until its fix; now they guard against the defect coming back."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from test_follow_mode import POLL, Turns, World
from websockets.sync.server import ServerConnection, serve

import function.logs as logs
from devstack.sim.clock import deterministic
from function.adapters.heads import HeadWaker
from function.core.model import Header
from function.stopping import StopSignal

SECRET = "v2/SECRETKEY0123456789"


@pytest.fixture
def ws_node() -> Iterator[int]:
    """A websocket node on localhost that answers eth_subscribe and announces one head; its
    own log lines are kept out of the relayer's (only the client's are judged)."""
    quiet = logging.getLogger("review14.server")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())

    def handler(ws: ServerConnection) -> None:
        for _ in ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0xsub"}))
            note = {"subscription": "0xsub", "result": {"number": "0x1"}}
            ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": note}))

    server = serve(handler, "127.0.0.1", 0, logger=quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.socket.getsockname()[1])
    finally:
        server.shutdown()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_rpc_ws_url_credentials_never_reach_the_log_at_debug(
    ws_node: int, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    logs.setup("DEBUG", "json")
    waker = HeadWaker(f"ws://user:hunter2@127.0.0.1:{ws_node}/{SECRET}", StopSignal())
    try:
        assert waker.wait(10.0) is True  # subscribed and woken: the link really worked
    finally:
        waker.close()
    out = capsys.readouterr().out
    assert "SECRETKEY0123456789" not in out, [line for line in out.splitlines() if "SECRET" in line]
    assert "hunter2" not in out and "dXNlcjpodW50ZXIy" not in out  # base64 of user:hunter2


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    with deterministic(w.clock):
        yield w


def test_a_waiter_does_not_give_up_on_a_live_follower_whose_last_look_is_slow(
    world: World,
) -> None:
    world.chain.mine([1])
    world.mine_at(90)  # mined after a's window: b's to relay
    t0 = world.clock.now
    real = world.chain.head_and_header
    turns = Turns(world.clock)
    stop_a, stop_b = StopSignal(), StopSignal()
    wait_a = turns.wait("a", stop_a)

    def slow_at_the_end(tag: str, number: int | None) -> tuple[int, Header | None]:
        if world.clock.now == t0 + 60:  # the follower's last look: the node takes 25 s
            wait_a(25)  # (a waits on the network; the other run goes on meanwhile)
        return real(tag, number)

    world.chain.head_and_header = slow_at_the_end  # type: ignore[method-assign]
    turns.start("a", t0, world.relay(stop_a, wait_a, lease_s=40.0))
    turns.start(
        "b", t0 + 58, world.relay(stop_b, turns.wait("b", stop_b), run_s=60.0, lease_s=40.0)
    )
    turns.run()
    a, b = turns.outcomes["a"].summary, turns.outcomes["b"].summary
    assert a.outcome == "ok", a.error
    # a was alive all along (its lease renewed at 55 s, valid to 95 s) and let go at 85 s:
    # b, started at 58 s with its window to 118 s, should take over, not be skipped.
    assert b.outcome == "ok" and b.extra.get("handed_over_by") == a.run_id, (b.outcome, b.extra)
    looks = world.watched.looks
    assert max(later - earlier for earlier, later in itertools.pairwise(looks)) <= 2 * POLL + 25
