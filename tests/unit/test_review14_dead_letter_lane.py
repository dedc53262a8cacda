"""A dead-letter sink that is the events' own sink shares their lane (found by a review's
differential test of the dispatcher against its version before a443f4f): one lane per sink
keeps a topic's requests in chain order, one in flight, when ordering is off."""

from __future__ import annotations

import time

from devstack.sim.fake_sink import FakeSink
from function.core.model import DeadLetter, Event
from function.run.dispatch import Dispatcher
from function.stopping import StopSignal


def _event(block: int, index: int) -> Event:
    return Event(f"1:0x{block:064x}:{index}", 1, "0x" + "ab" * 20, "Tick", {"n": index},
                 block, f"0x{block:064x}", 1, "0x" + "cd" * 32, 0, index)  # fmt: skip


def _dead(block: int, index: int) -> DeadLetter:
    return DeadLetter(f"1:0x{block:064x}:{index}", "0x" + "ab" * 20, block, f"0x{block:064x}",
                      "0x" + "ef" * 32, index, "bad", {"topics": [], "data": "0x"})  # fmt: skip


def test_dead_letters_to_the_events_own_sink_go_in_their_requests() -> None:
    sink = FakeSink()
    dispatcher = Dispatcher(sink, StopSignal(), False, dead_letters=sink)
    until = lambda: time.monotonic() + 30  # noqa: E731
    delivered = dispatcher.send([_event(1, 0), _event(1, 2)], [_dead(1, 1)], until,
                                chain_id=1, relayer_id="r")  # fmt: skip
    assert sink.requests == 1  # one request, in chain order: event, dead letter, event
    assert [a.message.attributes["event_id"].rsplit(":", 1)[1] for a in sink.accepted] == [
        "0", "1", "2"
    ]  # fmt: skip
    assert len(delivered.published) == 3 and delivered.failure is None
