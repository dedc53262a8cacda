"""Follow mode (RELAYER_RUN_SECONDS, docs/CONTRACT.md §1, §7.7) over the in-memory fakes, on a
fake clock: a run that keeps looking at the chain every RELAYER_POLL_INTERVAL until its window
ends, its lease renewals, SIGTERM, failures, and the hand-over to the next run. No real sleep:
the runs wait through `Relay.wait`, which moves the fake clock; two runs at once take turns
in threads of which only one moves at a time."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink, Fate
from devstack.sim.fake_state import FakeState
from function.core.lease import Lease
from function.core.model import Header
from function.errors import RpcError, StoppedError
from function.run.relay import HANDOVER_GRACE_S, Outcome, Relay
from function.stopping import StopSignal

SPECS = catalogue()
POLL = 5.0
FOLLOW = {"run_s": 60.0, "poll_interval_s": POLL, "lease_s": 12.0, "batch_size": 50}

Wait = Callable[[float], bool]


class WatchedChain:
    """The fake chain, noting the fake instant of every look (a read of the head)."""

    def __init__(self, chain: FakeChain, clock: FakeClock) -> None:
        self.chain, self.clock = chain, clock
        self.looks: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chain, name)

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        self.looks.append(self.clock.now)
        return self.chain.head_and_header(tag, number)


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    chain: FakeChain = field(default_factory=FakeChain)
    state: FakeState = field(default_factory=FakeState)
    sink: FakeSink = field(default_factory=FakeSink)
    mined_at: dict[int, float] = field(default_factory=dict)  # block -> fake instant
    plan: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sink.clock = self.clock.monotonic
        self.clock.listeners.append(self.sink.deliver)
        self.clock.listeners.append(self._happen)
        self.watched = WatchedChain(self.chain, self.clock)

    def at(self, offset: float, action: Callable[[], None]) -> None:
        """Do `action` when the clock passes `offset` seconds from now."""
        self.plan.append((self.clock.now + offset, action))
        self.plan.sort(key=lambda p: p[0])

    def mine_at(self, offset: float, events: int = 1) -> None:
        def mine() -> None:
            (block,) = self.chain.mine([events])
            self.mined_at[block.number] = self.clock.now

        self.at(offset, mine)

    def _happen(self, before: float, after: float) -> None:
        while self.plan and self.plan[0][0] <= after:
            _, action = self.plan.pop(0)
            action()

    def wait_for(self, stop: StopSignal) -> Wait:
        """`StopSignal.wait` on the fake clock: steps of 0.25 s, ending at a stop."""

        def wait(seconds: float) -> bool:
            end = self.clock.now + max(0.0, seconds)
            while self.clock.now < end and not stop.is_set():
                self.clock.advance(min(0.25, end - self.clock.now))
            return stop.is_set()

        return wait

    def relay(self, stop: StopSignal, wait: Wait | None = None, **overrides: Any) -> Relay:
        return Relay(
            settings=settings(**{**FOLLOW, **overrides}),
            specs=SPECS,
            chain=self.watched,
            state=self.state,
            records=self.state,
            sink=self.sink,
            stop=stop,
            clock=self.clock.utc,
            wait=wait or self.wait_for(stop),
        )

    def run(self, stop: StopSignal | None = None, **overrides: Any) -> Outcome:
        stop = stop or StopSignal()
        return self.relay(stop, **overrides).run()

    def event_ids(self) -> list[str]:
        return [
            f"31337:{b.hash}:{int(e['logIndex'], 16)}" for b in self.chain.canonical for e in b.logs
        ]

    def published_ids(self) -> list[str]:
        return [json.loads(a.message.data)["event_id"] for a in self.sink.accepted]


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    with deterministic(w.clock):
        yield w


def test_a_follower_relays_each_new_block_within_a_poll_interval_until_its_window_ends(
    world: World,
) -> None:
    world.chain.mine([1, 2, 0])  # blocks 1..3, there at the start
    for offset in (3, 7.5, 21, 22, 44, 59):
        world.mine_at(offset)
    world.mine_at(61)  # after the window: the next run's
    started = world.clock.now
    lease_checks: list[bool] = []
    world.state.on_write.append(
        lambda w: lease_checks.append(
            w.found.expires_at is not None and w.found.expires_at > world.clock.utc()
        )
    )
    outcome = world.run()
    s = outcome.summary
    assert s.outcome == "ok" and outcome.error is None and not s.interrupted
    assert world.clock.now - started == 60.0  # by the fake clock: the window, no more
    assert (s.from_block, s.to_block) == (0, 9)  # the block mined at 61 is not in the window
    assert s.extra["looks"] == 13  # at 0, 5, ..., 60
    assert world.watched.looks == [started + POLL * i for i in range(13)]
    # every event once, in chain order; each block's within one poll interval of its mining
    assert world.published_ids() == world.event_ids()[: len(world.published_ids())]
    accepted_at = {json.loads(a.message.data)["block_number"]: a.at for a in world.sink.accepted}
    late = {n: accepted_at[n] - t for n, t in world.mined_at.items() if n in accepted_at}
    assert len(late) == 6 and all(0 <= d <= POLL for d in late.values()), late
    # the lease held at every write (renewed at every look, 12 s lease over 60 s), then let go
    assert lease_checks and all(lease_checks)
    assert world.state.lease.owner is None and world.state.lease.follow_until is None
    assert world.state.next_block == 10 and world.state.last_run is s
    assert world.state.last_look_at == world.clock.utc()
    assert world.state.totals.runs == 1  # one run, one summary, whatever the looks
    world.clock.advance(2)  # block 10 is mined
    after = world.run(run_s=0.0)
    assert after.summary.outcome == "ok" and after.summary.to_block == 10
    assert world.published_ids() == world.event_ids()


def test_a_follower_records_every_look_and_says_it_follows(world: World) -> None:
    seen: list[tuple[Lease, Any]] = []
    world.state.on_write.append(
        lambda w: seen.append((world.state.lease, world.state.last_look_at))
    )
    outcome = world.run(run_s=12.0)
    assert outcome.summary.extra["looks"] == 3  # at 0, 5, 10; the next would be past 12
    started = outcome.summary.started_at
    window = started + timedelta(seconds=12)
    during = [lease for lease, _ in seen[:-1]]
    assert during and all(lease.follow_until == window for lease in during)
    assert all(lease.since == started for lease in during)
    assert seen[-1][0].owner is None and seen[-1][0].follow_until is None  # the end: let go
    looks = list(dict.fromkeys(at for _, at in seen if at is not None))
    assert looks == [started + timedelta(seconds=t) for t in (0, 5, 10)]


def test_one_batch_mode_looks_once_and_records_the_look(world: World) -> None:
    world.chain.mine([1, 1])
    world.mine_at(1)
    outcome = world.run(run_s=0.0)
    assert outcome.summary.outcome == "ok" and outcome.summary.to_block == 2
    assert "looks" not in outcome.summary.extra
    assert world.watched.looks == [1000.0] and world.clock.now == 1000.0  # no wait at all
    assert world.state.last_look_at == world.clock.utc()


def test_a_follower_behind_looks_again_at_once(world: World) -> None:
    world.chain.mine([1] * 30)
    outcome = world.run(run_s=20.0, batch_size=8)
    assert outcome.summary.to_block == 30
    assert world.watched.looks[:4] == [1000.0] * 4  # 8 blocks a look, no wait while behind
    assert world.published_ids() == world.event_ids()


def test_sigterm_mid_window_commits_releases_and_ends_at_once(world: World) -> None:
    world.chain.mine([1])
    world.mine_at(6)
    stop = StopSignal()
    world.at(17, stop.set)
    world.mine_at(18)  # after the stop: the next run's
    started = world.clock.now
    outcome = world.run(stop=stop)
    s = outcome.summary
    assert s.outcome == "ok" and s.interrupted and outcome.exit_code == 0
    assert world.clock.now - started <= 17.25  # the wait ended at the stop
    assert s.to_block == 2 and world.state.next_block == 3
    assert world.state.lease.owner is None
    world.clock.advance(2)  # block 3 is mined
    assert world.run(run_s=0.0).summary.to_block == 3
    assert world.published_ids() == world.event_ids()


def test_an_rpc_failure_in_the_window_fails_the_run_and_loses_nothing(world: World) -> None:
    world.chain.mine([1])
    world.mine_at(3)
    world.at(8, lambda: world.chain.fail_next.append(RpcError("503 from fake-rpc")))
    outcome = world.run()
    assert outcome.summary.outcome == "failed" and isinstance(outcome.error, RpcError)
    assert world.state.next_block == 3  # the looks before were committed
    assert world.state.lease.owner is None
    world.chain.mine([1])
    assert world.run(run_s=0.0).summary.outcome == "ok"
    assert world.published_ids() == world.event_ids()


def test_a_pubsub_refusal_in_the_window_fails_the_run_and_loses_nothing(world: World) -> None:
    world.chain.mine([1])
    world.mine_at(3)
    world.at(4, lambda: world.sink.fates.append((Fate.FAIL, 0.0)))
    outcome = world.run()
    assert outcome.summary.outcome == "failed" and "Unavailable" in str(outcome.error)
    assert world.state.next_block == 2 and world.state.lease.owner is None
    assert world.run(run_s=0.0).summary.outcome == "ok"
    assert world.published_ids() == world.event_ids()


def test_a_follower_whose_lease_was_taken_over_writes_nothing_more(world: World) -> None:
    world.chain.mine([1])
    world.mine_at(3)

    def steal() -> None:  # as if this run froze past its lease and another took it
        assert world.state.acquire("thief", world.clock.utc() + timedelta(seconds=60), 10)

    world.at(7, steal)
    outcome = world.run()
    assert outcome.summary.outcome == "skipped" and "lease lost" in str(outcome.summary.error)
    assert world.state.lease.owner == "thief" and world.state.next_block == 3  # the look at 5
    assert world.state.last_run is None


# -- the hand-over (docs/CONTRACT.md §7.7) ------------------------------------------


class Turns:
    """Runs in threads that take turns on the fake clock: each waits through `wait(name)`;
    the one due first goes on while the others stay parked, so only one moves at a time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.due: dict[str, float] = {}
        self.go: dict[str, threading.Event] = {}
        self.parked = threading.Event()
        self.outcomes: dict[str, Outcome] = {}
        self.errors: list[BaseException] = []

    def wait(self, name: str, stop: StopSignal) -> Wait:
        def wait(seconds: float) -> bool:
            self.due[name] = self.clock.now + max(0.0, seconds)
            self._park(name)
            return stop.is_set()

        return wait

    def _park(self, name: str) -> None:
        go = self.go[name]
        self.parked.set()
        go.wait()
        go.clear()

    def start(self, name: str, at: float, relay: Relay) -> None:
        self.go[name], self.due[name] = threading.Event(), at

        def body() -> None:
            self.go[name].wait()
            self.go[name].clear()
            try:
                self.outcomes[name] = relay.run()
            except BaseException as e:  # reported by `run`
                self.errors.append(e)
            finally:
                del self.due[name]
                self.parked.set()

        threading.Thread(target=body, daemon=True).start()

    def run(self) -> None:
        while self.due:
            name = min(self.due, key=lambda n: (self.due[n], n))
            self.clock.advance_to(self.due[name])
            self.parked.clear()
            self.go[name].set()
            assert self.parked.wait(timeout=30), "a run neither waited nor ended"  # deadlock
        assert not self.errors, self.errors


def test_the_next_run_waits_for_a_follower_about_to_end_and_takes_over_without_a_gap(
    world: World,
) -> None:
    world.chain.mine([1, 1])
    for offset in (2, 9, 33, 57, 59.5, 60.5, 64, 78):
        world.mine_at(offset)
    turns = Turns(world.clock)
    stop_a, stop_b = StopSignal(), StopSignal()
    t0 = world.clock.now
    turns.start("a", t0, world.relay(stop_a, turns.wait("a", stop_a)))
    turns.start("b", t0 + 58, world.relay(stop_b, turns.wait("b", stop_b), run_s=30.0))
    turns.run()
    a, b = turns.outcomes["a"].summary, turns.outcomes["b"].summary
    assert a.outcome == "ok" and b.outcome == "ok", (a.error, b.error)
    assert b.extra["handed_over_by"] == a.run_id and 0 < b.extra["waited_s"] <= 3
    assert a.to_block is not None and b.from_block == a.to_block + 1
    looks = world.watched.looks
    gaps = [later - earlier for earlier, later in itertools.pairwise(looks)]
    assert max(gaps) <= POLL, gaps  # §7.7 asks at most 2 x RELAYER_POLL_INTERVAL
    assert looks[-1] - t0 <= 58 + 30  # b's window counts from its start, wait included
    assert world.published_ids() == world.event_ids()[: len(world.published_ids())]
    assert len(set(world.published_ids())) == len(world.published_ids())
    assert world.state.totals.outcomes == {"ok": 2}


def test_a_crashed_followers_lease_is_waited_for_only_to_its_window_then_expires(
    world: World,
) -> None:
    now = world.clock.utc()
    world.state.lease = Lease(
        "crashed",
        now + timedelta(seconds=40),
        7,
        now - timedelta(seconds=50),
        now + timedelta(seconds=3),
    )
    world.chain.mine([1])
    started = world.clock.now
    skipped = world.run(run_s=0.0)
    assert skipped.summary.outcome == "skipped"
    assert world.clock.now - started == pytest.approx(3 + HANDOVER_GRACE_S, abs=1.0)
    assert world.sink.accepted == []
    world.clock.advance(40)  # the lease expires as any other
    assert world.run(run_s=0.0).summary.outcome == "ok"
    assert world.published_ids() == world.event_ids()


def test_a_crashed_followers_lease_expiring_inside_the_wait_is_taken_not_handed_over(
    world: World,
) -> None:
    now = world.clock.utc()
    # A follower that died: its window ends in 3 s, its lease (never renewed) 5 s from now.
    world.state.lease = Lease(
        "crashed", now + timedelta(seconds=5), 7, now - timedelta(seconds=50),
        now + timedelta(seconds=3),
    )  # fmt: skip
    world.chain.mine([1])
    outcome = world.run(run_s=0.0)
    s = outcome.summary
    assert s.outcome == "ok" and "handed_over_by" not in s.extra
    assert s.extra["took_expired_lease_of"] == "crashed"
    assert 5 <= s.extra["waited_s"] <= 6


def test_a_run_that_took_the_lease_first_is_judged_anew_by_the_waiter(world: World) -> None:
    now = world.clock.utc()
    world.state.lease = Lease(
        "ending", now + timedelta(seconds=30), 7, now - timedelta(seconds=50),
        now + timedelta(seconds=2),
    )  # fmt: skip

    def overtaken() -> None:  # at 2 s "ending" lets go and a one-batch run takes it at once
        world.state.lease = Lease("newcomer", world.clock.utc() + timedelta(seconds=30), 8)

    world.at(2.0, overtaken)
    started = world.clock.now
    outcome = world.run(run_s=0.0)
    assert outcome.summary.outcome == "skipped"  # a one-batch holder is not waited for
    assert world.clock.now - started <= 2.5  # ... so the wait ends when it is seen
    assert world.sink.accepted == []


def test_a_follower_far_from_its_end_or_a_batch_run_is_not_waited_for(world: World) -> None:
    now = world.clock.utc()
    far = now + timedelta(seconds=POLL + 60)
    world.state.lease = Lease("far", now + timedelta(seconds=40), 7, now, far)
    assert world.run().summary.outcome == "skipped" and world.clock.now == 1000.0
    world.state.lease = Lease("batch", now + timedelta(seconds=40), 8, now)
    assert world.run().summary.outcome == "skipped" and world.clock.now == 1000.0
    assert world.state.totals.outcomes == {"skipped": 2}


def test_sigterm_ends_the_wait_for_a_hand_over(world: World) -> None:
    now = world.clock.utc()
    world.state.lease = Lease(
        "ending", now + timedelta(seconds=40), 7, now, now + timedelta(seconds=8)
    )
    stop = StopSignal()
    world.at(2, stop.set)
    outcome = world.run(stop=stop)
    assert outcome.summary.outcome == "skipped" and world.clock.now - 1000.0 <= 2.25
    assert world.state.lease.owner == "ending"


# -- review: reorganisations between looks ----------------------------------------


def test_a_reorg_of_blocks_a_first_follower_relayed_without_events_rewinds_to_the_ancestor(
    world: World,
) -> None:
    world.chain.mine([0, 0, 0])  # blocks 1..3, no event: no block record to find an ancestor
    world.at(3, lambda: world.chain.reorg(1, [1, 0]))  # block 3 replaced, head 4
    outcome = world.run(run_s=12.0)
    s = outcome.summary
    assert s.outcome == "ok" and outcome.error is None, s.error
    assert s.extra["reorg"]["ancestor"] == 2 and s.extra["reorg"]["depth"] == 1
    assert world.state.next_block == 5
    assert world.published_ids() == world.event_ids()


def test_a_reorg_between_looks_rewinds_to_the_newest_block_still_canonical(
    world: World,
) -> None:
    world.chain.mine([1, 1])  # blocks 1, 2
    assert world.run(run_s=0.0).summary.to_block == 2  # an earlier run: recent_blocks to 2
    world.chain.mine([1, 0, 1, 0, 1, 1])  # blocks 3..8: relayed by the follower's first look
    world.at(3, lambda: world.chain.reorg(1, [1, 1]))  # block 8 replaced, head 9
    outcome = world.run(run_s=12.0)
    s = outcome.summary
    assert s.outcome == "ok" and outcome.error is None, s.error
    assert s.extra["reorg"]["ancestor"] == 7 and s.extra["reorg"]["depth"] == 1
    assert s.extra["reorg"]["retracted"] == 1
    assert world.state.next_block == 10


def test_sigterm_cutting_a_look_short_still_reports_the_windows_looks(world: World) -> None:
    world.chain.mine([1])
    world.mine_at(3)
    stop = StopSignal()
    calls = {"n": 0}
    real = world.chain.head_and_header

    def head_and_header(tag: str, number: int | None) -> tuple[int, Header | None]:
        calls["n"] += 1
        if calls["n"] == 3:  # the third look: a SIGTERM while the node answers
            stop.set()
            raise StoppedError("stopped while waiting for eth_blockNumber: asked to stop")
        return real(tag, number)

    world.chain.head_and_header = head_and_header  # type: ignore[method-assign]
    outcome = world.run(stop=stop)
    s = outcome.summary
    assert s.outcome == "ok" and s.interrupted and outcome.error is None
    assert s.extra["looks"] == 2  # at 0 and 5; the third was cut short
    assert (s.from_block, s.to_block) == (0, 2) and world.state.next_block == 3
    assert world.state.lease.owner is None and world.state.last_run is s


def test_a_follower_releasing_between_the_next_runs_acquire_and_its_read_is_taken_over(
    world: World,
) -> None:
    world.chain.mine([1])
    now = world.clock.utc()
    world.state.lease = Lease(
        "ending", now + timedelta(seconds=40), 7, now - timedelta(seconds=55), now
    )
    read = world.state.read_lease

    def read_after_release() -> Lease:  # the follower's last commit lands in between
        world.state.lease = Lease(None, None, 7)
        return read()

    world.state.read_lease = read_after_release  # type: ignore[method-assign]
    outcome = world.run(run_s=0.0)
    assert outcome.summary.outcome == "ok", outcome.summary.error
    assert world.published_ids() == world.event_ids()


def test_after_a_rewind_each_part_still_moves_the_checkpoint(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of two blocks. The first look relays blocks 1..6 (commits to 3, 5, 7); block 3
    # on is then replaced, and the second look rewinds to block 2 and relays 3..7 again:
    # each of its parts moves the checkpoint as it lands (to 5, 7, 8), or a kill then would
    # publish again more than one interval of blocks (§7.4). Where the parts before the
    # rewind had queued the checkpoint to must not count (7).
    import function.run.relay as relay_module

    monkeypatch.setattr(relay_module, "MAX_EVENTS_PER_COMMIT", 6)
    world.chain.mine([3] * 6)  # blocks 1..6
    world.at(3, lambda: world.chain.reorg(4, [3] * 5))  # blocks 3..6 replaced, head 7
    moved: list[int | None] = []
    commit = world.state.commit

    def noting(grant: Any, now: Any, change: Any) -> None:
        commit(grant, now, change)
        if change.progress is not None and change.summary is None:
            moved.append(world.state.next_block)

    world.state.commit = noting  # type: ignore[method-assign]
    outcome = world.run(run_s=8.0, checkpoint_interval=100)
    s = outcome.summary
    assert s.outcome == "ok" and outcome.error is None, s.error
    assert s.extra["reorg"]["ancestor"] == 2
    assert moved == [3, 5, 7, 3, 5, 7, 8], moved  # the rewind's own commit: back to 3
    assert world.state.next_block == 8
