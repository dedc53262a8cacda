"""A part's first publish request is built while the last request of the part before is on
the wire (issue 13: with 20 ms round trips each part's end cost ~20 ms of building before the
next request could go), over the in-memory fakes with real threads. The messages built
ahead are the ones sent, replays and messages that fail to build included."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import function.run.dispatch as dispatch_module
import function.run.relay as relay_module
from devstack.sim.events import run_over
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.messages import Message
from function.core.model import Event

PER_BLOCK = 3
PER_PART = 6  # MAX_EVENTS_PER_COMMIT here: two blocks a part
BLOCKS = 12


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(relay_module, "MAX_EVENTS_PER_COMMIT", PER_PART)
    yield


class Timeline:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, int]] = []  # ("built" | "sent" | "answered", block)

    def note(self, what: str, block: int) -> None:
        with self.lock:
            self.entries.append((what, block))


class SlowSink(FakeSink):
    """Each request answered `delay_s` after it was sent, noted on the timeline."""

    timeline: Timeline
    delay_s = 0.05

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        last = max(int(m.attributes["block_number"]) for m in messages)
        self.timeline.note("sent", last)
        time.sleep(self.delay_s)
        ids = super().publish(messages, deadline)
        self.timeline.note("answered", last)
        return ids


def world(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeChain, FakeState, SlowSink, Timeline]:
    timeline = Timeline()
    real = dispatch_module.build_message

    def noted(event: Event, **kw: Any) -> Message:
        timeline.note("built", event.block_number)
        return real(event, **kw)

    monkeypatch.setattr(dispatch_module, "build_message", noted)
    chain = FakeChain()
    chain.mine([PER_BLOCK] * BLOCKS)
    sink = SlowSink()
    sink.timeline = timeline
    return chain, FakeState(), sink, timeline


def test_the_next_parts_first_request_is_built_while_the_last_one_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain, state, sink, timeline = world(monkeypatch)
    outcome = run_over(chain, state, sink, batch_size=100, checkpoint_interval=100)
    assert outcome.error is None, outcome.summary.error
    entries = timeline.entries
    # Parts of blocks 1-2, 3-4, ... in windows of 1-4 (5 blocks from 0), 5-12: inside a
    # window the first message of the next part is built before the request of the part
    # before has its answer.
    for first in (3, 7, 9, 11):
        built = entries.index(("built", first))
        answered = entries.index(("answered", first - 1))
        assert built < answered, (first, entries)
    # Each message built once: none built ahead went unused and was built again.
    assert sorted(b for w, b in entries if w == "built") == sorted(
        n for n in range(1, BLOCKS + 1) for _ in range(PER_BLOCK)
    )
    sent = [json.loads(a.message.data) for a in sink.accepted]
    blocks = [p["block_number"] for p in sent]
    assert blocks == sorted(blocks) and blocks[0] == 1  # in chain order
    assert len(sent) == len({p["event_id"] for p in sent}) == BLOCKS * PER_BLOCK
    assert state.next_block == BLOCKS + 1


def delivered(monkeypatch: pytest.MonkeyPatch, ahead: bool, **kw: Any) -> list[Message]:
    """The messages one run over the same chain delivers, with or without building ahead."""
    with monkeypatch.context() as m:
        if not ahead:
            m.setattr(dispatch_module.Dispatcher, "_build_ahead", lambda self, events: None)
        chain = FakeChain()
        chain.mine([PER_BLOCK] * BLOCKS)
        sink, state = FakeSink(), FakeState()
        outcome = run_over(chain, state, sink, batch_size=100, checkpoint_interval=100, **kw)
        assert outcome.error is None, outcome.summary.error
        return [a.message for a in sink.accepted]


@pytest.mark.parametrize("ordering", [True, False])
def test_messages_built_ahead_are_those_built_when_sent(
    monkeypatch: pytest.MonkeyPatch, ordering: bool
) -> None:
    ahead = delivered(monkeypatch, True, ordering=ordering)
    assert len(ahead) == BLOCKS * PER_BLOCK
    assert ahead == delivered(monkeypatch, False, ordering=ordering)
