"""Re-review 16 (RELAYER_FACTORY fixes), hostile: the dead-lettering of creation events the
ABI cannot decode (`Watch.sift(..., unreadable)`, `fetching._decode_all`)."""

from __future__ import annotations

import json

from test_review16_factory_run import (
    CREATED,
    FACTORY,
    child,
    clock,
    created,
    relay_of,
    relayed,
    sink_for,
    tick,
    until_idle,
)
from test_review16_factory_windows import FollowUps

from devstack.sim.clock import FakeClock
from devstack.sim.fake_state import FakeState

__all__ = ["clock"]  # the fixture, shared


def test_a_refused_follow_up_read_does_not_dead_letter_a_creation_twice(
    clock: FakeClock,
) -> None:
    """§7.2 / §1 RELAYER_DEADLETTER_TOPIC: an unreadable creation log is one dead letter.
    `_read_logs` sifts a window (the unreadable creation goes into `unreadable`), then asks
    for the new child's own logs; when that follow-up read is refused (too many logs: a busy
    new child) the window is read again smaller, and sifted again: the same creation log is
    appended a second time and published twice to the dead-letter topic in one run."""
    chain = FollowUps()
    a = child(0xA)
    malformed = (FACTORY, [CREATED, "0x" + "00" * 12 + "ab" * 20], "0x")  # no data
    chain.mine_logs([[], [malformed, created(a), tick(a, 1)], [tick(a, 2)], [], []])
    chain.refuse = 1  # the first follow-up read (a's logs) is refused
    state, sink, dead = FakeState(), sink_for(clock), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=6, dead_letters=dead))
    assert chain.refuse == 0  # it was refused once
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2")]
    ids = [json.loads(d.message.data)["event_id"] for d in dead.accepted]
    assert len(ids) == 1, f"the one unreadable creation was dead-lettered {len(ids)} times: {ids}"
