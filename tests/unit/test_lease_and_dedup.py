"""The guard's decisions: lease acquisition with a fencing counter (core.lease), replay
protection (core.dedup)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from function.adapters.firestore.leasedoc import lease_of
from function.core import lease as guard
from function.core.dedup import select_unpublished
from function.core.lease import Lease
from function.core.model import PUBLISHED, REMOVED, Event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_free_lease_is_taken_and_the_fence_grows() -> None:
    taken = guard.acquire(Lease(None, None, 7), "run-a", NOW, 30)
    assert taken == Lease("run-a", NOW + timedelta(seconds=30), 8, since=NOW)


def test_a_follower_lease_says_when_its_window_ends_and_keeps_it_when_renewed() -> None:
    end = NOW + timedelta(seconds=60)
    taken = guard.acquire(Lease(None, None, 1), "run-a", NOW, 30, follow_until=end)
    assert taken == Lease("run-a", NOW + timedelta(seconds=30), 2, NOW, end)
    later = NOW + timedelta(seconds=45)
    assert guard.renewed(taken, "run-a", 2, later) == Lease("run-a", later, 2, NOW, end)
    assert guard.following(taken, NOW) and not guard.following(taken, later)
    assert not guard.following(Lease("run-a", later, 2, NOW), NOW)  # one batch
    assert not guard.following(guard.released(taken), NOW)


def test_a_run_waits_only_for_a_follower_about_to_end() -> None:
    def held(follow_in: float | None, expires_in: float = 30) -> Lease:
        until = None if follow_in is None else NOW + timedelta(seconds=follow_in)
        return Lease("run-a", NOW + timedelta(seconds=expires_in), 3, NOW, until)

    wait = guard.handover_until
    assert wait(held(4), "run-b", NOW, 5, 10) == NOW + timedelta(seconds=14)
    assert wait(held(5), "run-b", NOW, 5, 10) == NOW + timedelta(seconds=15)  # at the bound
    assert wait(held(6), "run-b", NOW, 5, 10) is None  # ends too late: skip
    assert wait(held(-3), "run-b", NOW, 5, 10) == NOW + timedelta(seconds=7)  # ending now
    assert wait(held(None), "run-b", NOW, 5, 10) is None  # a one-batch run: skip
    assert wait(held(4, expires_in=-1), "run-b", NOW, 5, 10) is None  # expired: take it
    assert wait(held(4), "run-a", NOW, 5, 10) is None  # its own
    assert wait(guard.FREE, "run-b", NOW, 5, 10) is None


def test_valid_lease_of_another_run_blocks() -> None:
    held = Lease("run-a", NOW + timedelta(seconds=1), 3)
    assert guard.acquire(held, "run-b", NOW, 30) is None


def test_expired_lease_is_taken_over_with_a_new_fence() -> None:
    expired = Lease("run-a", NOW - timedelta(seconds=1), 3)
    taken = guard.acquire(expired, "run-b", NOW, 30)
    assert taken is not None and taken.owner == "run-b" and taken.fence == 4
    # run-a still believes it holds fence 3: its commits must now be refused.
    assert not guard.still_ours(taken, "run-a", 3)
    assert guard.still_ours(taken, "run-b", 4)


def test_expired_but_untaken_lease_is_still_ours() -> None:
    mine = Lease("run-a", NOW - timedelta(seconds=100), 3)
    assert guard.still_ours(mine, "run-a", 3)


def test_release_keeps_the_counter() -> None:
    assert guard.released(Lease("run-a", NOW, 9)) == Lease(None, None, 9)
    assert lease_of({"lease": {"owner": None, "expires_at": None, "fence": 9}}).fence == 9
    assert lease_of(None) == Lease(None, None, 0)
    end = NOW + timedelta(seconds=9)
    stored = {"lease": {"owner": "a", "expires_at": NOW, "fence": 2, "follow_until": end}}
    assert lease_of(stored) == Lease("a", NOW, 2, None, end)  # no `since`: an older version


def _event(block: int, index: int) -> Event:
    return Event(
        f"1:0x{block:064x}:{index}",
        1,
        "0x" + "1" * 40,
        "E",
        {},
        block,
        f"0x{block:064x}",
        0,
        "0x" + "2" * 64,
        0,
        index,
    )


def test_recorded_events_are_not_published_again() -> None:
    events = [_event(1, 0), _event(1, 1), _event(2, 0)]
    processed = {events[0].event_id: PUBLISHED, events[2].event_id: REMOVED}
    chosen = select_unpublished(events, processed)
    assert chosen.duplicates == [events[0]]
    assert chosen.to_publish == [events[1], events[2]]
