"""Review 14c: the three commits after d9988ff (dispatch's `_Outgoing` without closures,
the job's garbage collector settled per run, the Firestore connection opened early).

The tests marked "Found by review" failed at c8fd6d5 and pass since the fixes after it;
each docstring says what went wrong. Those marked REGRESSION hold a claim that was tried and
held up, against a plausible slip.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

import function.ops.app as app
from devstack.sim.fake_sink import FakeSink
from function.adapters.firestore.connect import connect_early
from function.config import Runtime, load_settings
from function.core.model import DEADLETTERED, PUBLISHED, DeadLetter, Event, RawLog
from function.core.summary import RunSummary
from function.ops import heap
from function.run.dispatch import Dispatcher
from function.run.relay import Outcome
from function.stopping import StopSignal
from minimal_env import MINIMAL

WAIT_S = 30.0  # how long a test waits for something a working version does at once


def _event(block: int, index: int) -> Event:
    return Event(f"31337:0x{block:064x}:{index}", 31337, "0x" + "ab" * 20, "Tick", {"n": index},
                 block, f"0x{block:064x}", 1_700_000_000, "0x" + "cd" * 32, 0, index)  # fmt: skip


def _dead(block: int, index: int) -> DeadLetter:
    log: RawLog = {"topics": [], "data": "0x"}
    return DeadLetter(f"31337:0x{block:064x}:{index}", "0x" + "ab" * 20, block,
                      f"0x{block:064x}", "0x" + "ef" * 32, index, "undecodable", log)  # fmt: skip


# --- 1. dispatch: lanes -------------------------------------------------------------------


def test_dead_letters_sent_to_the_main_sink_share_its_requests_as_before() -> None:
    """Found by review, fixed in 0c7850e; as it read at c8fd6d5. Claimed: "same requests,
    same lanes". Before a443f4f the lane of a message
    was (its sink is the events' sink, its ordering key), so with a dead-letter sink that
    *is* the events' sink (one topic for both) and no ordering, an event and a dead letter
    of one block went in one request. Now a dead letter's lane is fixed when its message
    is made as `(self._dead_sink is None, "")`: (False, "") whenever a dead-letter sink is
    given, whatever it is, while `_sink_of` still sends it to that same sink. The block
    goes out as two requests (and, with in-flight requests, the two may race), a change of
    the requests the commit said it kept. Not reachable through `wiring.publishers`, which
    always makes a distinct Publisher for RELAYER_DEADLETTER_TOPIC."""
    sink = FakeSink()
    dispatcher = Dispatcher(sink, StopSignal(), ordering=False, dead_letters=sink)
    got = dispatcher.send(
        [_event(5, 0), _event(5, 2)], [_dead(5, 1)], lambda: time.monotonic() + 30,
        chain_id=31337, relayer_id="r",
    )  # fmt: skip
    assert got.failure is None and got.stopped_before is None
    assert [p.state for p in got.published] == [PUBLISHED, DEADLETTERED, PUBLISHED]
    assert sink.requests == 1, "one block, one topic, no ordering key: one request before"


def test_regression_dead_letters_go_to_the_dead_letter_sink_or_else_the_main_one() -> None:
    """REGRESSION (passes). The routing the refactor re-expressed through `lane[0]`: with a
    dead-letter sink, dead letters go there alone and share no request with events; without
    one they go to the events' sink beside the events (no ordering). Records as before."""
    main, dead = FakeSink(), FakeSink()
    items = ([_event(1, 0), _event(1, 2)], [_dead(1, 1)])
    got = Dispatcher(main, StopSignal(), False, dead).send(
        *items, lambda: time.monotonic() + 30, chain_id=31337, relayer_id="r"
    )
    assert [a.message.attributes["event_id"] for a in dead.accepted] == [items[1][0].event_id]
    assert (
        len(main.accepted) == 2 and main.requests == 2 and dead.requests == 1
    )  # cut in chain order
    assert [(p.event, p.state) for p in got.published] == [
        ("Tick", PUBLISHED), ("", DEADLETTERED), ("Tick", PUBLISHED)
    ]  # fmt: skip
    alone = FakeSink()
    got = Dispatcher(alone, StopSignal(), False).send(
        *items, lambda: time.monotonic() + 30, chain_id=31337, relayer_id="r"
    )
    assert alone.requests == 1 and len(alone.accepted) == 3
    assert [p.message_id for p in got.published] == ["1", "2", "3"]


# --- 2. heap: the job's collector -----------------------------------------------------------


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


class _Stub:
    def __init__(self, run: Any) -> None:
        self._run = run
        self.execution: str | None = None
        self.current = None

    def run(self) -> Outcome:
        self._run()
        return Outcome(RunSummary("-", "r", datetime.now(UTC)))


def test_a_second_relayers_settle_pins_the_first_relayers_run(
    collector_restored: None,
) -> None:
    """Found by review, fixed after it (a fleet's task no longer settles); as it read at
    c8fd6d5: `run_relayers` settles after *each* relayer's build, in that relayer's
    thread, while the relayers already built are running (builds take turns under
    `wiring._STARTING`; a relayer whose RPC or topic is slow builds long after the others
    started). The later `gc.freeze()` moves the earlier relayers' in-flight state into the
    permanent generation: a cycle that is alive then (a look's objects, a publish Future
    and its exception's traceback holding a request's messages) is never collected once it
    is dropped, for the rest of the process: a follower's hours. heap.py's promise is to
    freeze only what "lives until the exit" (modules, clients, settings)."""
    made, ran = threading.Event(), threading.Event()
    ref: list[weakref.ref[_Cycle]] = []

    def first_run() -> None:
        look = _Cycle()  # state of relayer A's look, alive while B is built and settled
        ref.append(weakref.ref(look))
        made.set()
        ran.wait(WAIT_S)
        del look  # the look ends: its cycle is garbage now

    def build(settings: Any, stop: StopSignal) -> Any:
        if settings.relayer_id == "a":
            return _Stub(first_run)
        made.wait(WAIT_S)  # B's build ends while A is running
        return _Stub(ran.set)

    fleet = [load_settings({**MINIMAL, "RELAYER_ID": name}) for name in ("a", "b")]
    app.run_relayers(Runtime(None, 0, 1), fleet, StopSignal(), build=build,
                     settle=heap.settle_for_one_run)  # fmt: skip
    assert made.is_set() and ran.is_set()
    gc.collect()
    assert ref[0]() is None, "relayer a's dropped cycle was frozen by relayer b's settle"


def test_settling_freezes_garbage_it_could_have_collected(
    collector_restored: None,
) -> None:
    """Found by review (low), fixed after it (a collection before the freeze); as it read at
    c8fd6d5: `settle_for_one_run` freezes without collecting first: cycles that are
    already garbage when the build ends (a caught exception's traceback and the frames it
    holds, a retried RPC's response) go into the permanent generation with what is alive,
    and no collection ever frees them. Its docstring: "Keep what is alive now"."""
    ref: list[weakref.ref[_Cycle]] = []

    def build(settings: Any, stop: StopSignal) -> Any:
        gc.collect()  # no automatic collection before the settle (first threshold: 700)
        garbage = _Cycle()
        ref.append(weakref.ref(garbage))
        del garbage  # unreachable now: only the cyclic collector can free it
        return _Stub(lambda: None)

    app.run_relayers(Runtime(None, 0, 1), [load_settings(MINIMAL)], StopSignal(), build=build,
                     settle=heap.settle_for_one_run)  # fmt: skip
    gc.collect()
    assert ref[0]() is None, "garbage of the build was frozen"


# --- 3. connect_early -----------------------------------------------------------------------


def _watchers() -> list[str]:
    """gRPC's connectivity threads (a poller, a delivery): what a subscription keeps."""
    return [t.name for t in threading.enumerate() if "_run" in t.name or "grpc" in t.name]


def test_regression_an_unreachable_firestore_leaves_no_thread_and_raises_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REGRESSION (passes). Firestore (here its emulator address) refusing connections:
    `connect_early` raises nothing, makes no call, and its watcher unsubscribes at
    TRANSIENT_FAILURE, so gRPC's polling thread ends; the first call then reports the
    error as it always did."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    from google.cloud import firestore

    before = set(_watchers())
    client = firestore.Client(project="demo-project")
    connect_early(client)
    deadline = time.monotonic() + WAIT_S
    while set(_watchers()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(_watchers()) - before, "a connectivity thread outlived the failure"
    assert os.environ["FIRESTORE_EMULATOR_HOST"].endswith(str(port))


class _Channel:
    """A channel whose states the test plays, as gRPC delivers them."""

    def __init__(self) -> None:
        self.watchers: list[Any] = []
        self.asked: list[bool] = []

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.watchers.append(callback)
        self.asked.append(try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.watchers.remove(callback)

    def play(self, *states: grpc.ChannelConnectivity) -> None:
        for state in states:
            for watcher in list(self.watchers):
                watcher(state)


def _client(channel: _Channel) -> Any:
    class T:
        grpc_channel = channel

    class A:
        _transport = T()

    class C:
        _firestore_api = A()

    return C()


@pytest.mark.parametrize(
    "end",
    [
        grpc.ChannelConnectivity.READY,
        grpc.ChannelConnectivity.TRANSIENT_FAILURE,
        grpc.ChannelConnectivity.SHUTDOWN,
    ],
)
def test_regression_the_watcher_asks_to_connect_and_leaves_once_settled(
    end: grpc.ChannelConnectivity,
) -> None:
    """REGRESSION (passes): subscribed with try_to_connect, kept through IDLE and
    CONNECTING, gone at READY, TRANSIENT_FAILURE or SHUTDOWN (no lasting poller)."""
    channel = _Channel()
    connect_early(_client(channel))
    assert channel.asked == [True] and len(channel.watchers) == 1
    channel.play(grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.CONNECTING)
    assert len(channel.watchers) == 1
    channel.play(end)
    assert channel.watchers == []
