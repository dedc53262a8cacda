"""The run (`function.run.relay.Relay`) over the in-memory fakes of its ports, on a fake
clock: orchestration, rewinding, range shrinking, leases and stops, failover; no real sleep,
no network."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from http_answers import Response

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import TOPIC0, catalogue, settings
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink, Fate
from devstack.sim.fake_state import FakeState
from function.adapters.chain import ChainReader
from function.adapters.jsonrpc.client import JsonRpc
from function.core.messages import Message
from function.errors import RpcError
from function.run.relay import Outcome, Relay
from function.stopping import StopSignal

SPECS = catalogue()


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    chain: FakeChain = field(default_factory=FakeChain)
    state: FakeState = field(default_factory=FakeState)
    sink: FakeSink = field(default_factory=FakeSink)

    def __post_init__(self) -> None:
        self.sink.clock = self.clock.monotonic
        self.clock.listeners.append(self.sink.deliver)

    def run(self, chain: Any = None, stop: StopSignal | None = None, **overrides: Any) -> Outcome:
        relay = Relay(
            settings=settings(**overrides),
            specs=SPECS,
            chain=chain or self.chain,
            state=self.state,
            records=self.state,
            sink=self.sink,
            stop=stop or StopSignal(),
            clock=self.clock.utc,
        )
        return relay.run()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(a.message.data) for a in self.sink.accepted]

    def event_ids(self, first: int = 1) -> list[str]:
        return [
            f"31337:{b.hash}:{int(e['logIndex'], 16)}"
            for b in self.chain.canonical[first:]
            for e in b.logs
        ]


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    with deterministic(w.clock):
        yield w


def test_a_run_relays_its_range_in_order_commits_and_the_next_idles(world: World) -> None:
    world.chain.mine([1, 0, 2, 0, 0, 3, 1, 0, 0, 1])  # blocks 1..10
    first = world.run(batch_size=20, checkpoint_interval=4)
    assert first.summary.outcome == "ok" and first.error is None
    assert (first.summary.from_block, first.summary.to_block) == (0, 10)
    assert [p["event_id"] for p in world.payloads()] == world.event_ids()
    assert world.state.next_block == 11
    assert world.state.checkpoint_hash == world.chain.canonical[10].hash
    assert world.state.lease.owner is None  # released
    checkpoints = [w.next_block for w in world.state.writes if w.next_block is not None]
    assert checkpoints == sorted(checkpoints) and len(checkpoints) >= 3  # every chunk
    again = world.run(batch_size=20)
    assert again.summary.outcome == "idle" and len(world.sink.accepted) == 8


def test_a_batch_at_a_time_and_confirmations(world: World) -> None:
    world.chain.mine([1] * 9)  # blocks 1..9
    assert world.run(batch_size=4, confirmations=2).summary.to_block == 3
    assert world.run(batch_size=4, confirmations=2).summary.to_block == 7
    assert world.run(batch_size=4, confirmations=2).summary.outcome == "idle"
    assert [p["block_number"] for p in world.payloads()] == list(range(1, 8))


def test_a_reorganisation_is_rewound_retracted_and_relayed_again(world: World) -> None:
    world.chain.mine([1, 1, 1, 1, 1])
    world.run()
    old = world.payloads()
    world.chain.reorg(3, [2, 0, 1, 1])  # blocks 3..5 replaced, head 6
    outcome = world.run()
    assert outcome.summary.outcome == "ok"
    assert outcome.summary.extra["reorg"]["ancestor"] == 2
    assert outcome.summary.extra["reorg"]["retracted"] == 3
    new = world.payloads()[len(old) :]
    retractions = [p for p in new if p["removed"]]
    assert retractions == [{**p, "removed": True} for p in old[2:]]
    assert [p["event_id"] for p in new if not p["removed"]] == world.event_ids(3)
    assert world.state.checkpoint_hash == world.chain.canonical[6].hash
    removed = [e.state for r in world.state.blocks.values() for e in r.entries if r.number > 2]
    assert removed.count("removed") == 3


def test_a_refused_range_shrinks_and_the_limit_is_remembered(world: World) -> None:
    world.chain.mine([1, 0, 1, 0, 1, 0, 1, 0, 1])
    world.chain.max_span = 2
    outcome = world.run(batch_size=10, checkpoint_interval=10)
    assert outcome.summary.outcome == "ok" and outcome.summary.to_block == 9
    assert [p["event_id"] for p in world.payloads()] == world.event_ids()
    assert world.state.rpc_limits == {"fake-rpc": 2}
    grant = world.state.acquire("next", world.clock.utc(), 10)
    assert grant is not None and grant.rpc_limits == {"fake-rpc": 2}


def test_a_provider_refusing_even_one_block_fails_the_run(world: World) -> None:
    world.chain.mine([1, 1])
    world.chain.max_span = 0
    outcome = world.run()
    assert outcome.summary.outcome == "failed" and isinstance(outcome.error, RpcError)
    assert "refuses even one block" in str(outcome.error)
    assert world.sink.accepted == [] and world.state.next_block is None


def test_a_failed_read_loses_nothing(world: World) -> None:
    world.chain.mine([2, 2])
    world.chain.fail_next.append(RpcError("503 from fake-rpc"))
    assert world.run().summary.outcome == "failed"
    assert world.run().summary.outcome == "ok"
    assert [p["event_id"] for p in world.payloads()] == world.event_ids()


def test_an_unanswered_request_keeps_the_lease_until_pubsub_drops_it(world: World) -> None:
    world.chain.mine([1, 1])
    world.sink.fates.append((Fate.DOUBT_DROP, 0.0))
    failed = world.run(lease_s=10)
    assert failed.summary.outcome == "failed" and "lease ran out" in str(failed.error)
    held = world.state.lease
    assert held.owner == failed.summary.run_id and held.expires_at is not None
    assert held.expires_at > world.clock.utc()  # kept past the request's deadline
    assert world.run(lease_s=10).summary.outcome == "skipped"
    world.clock.advance((held.expires_at - world.clock.utc()).total_seconds() + 0.1)
    assert world.run(lease_s=10).summary.outcome == "ok"
    assert [p["event_id"] for p in world.payloads()] == world.event_ids()


class StoppingSink:
    """A topic whose first request gets no answer, and a SIGTERM meanwhile."""

    def __init__(self, sink: FakeSink, stop: StopSignal) -> None:
        self.sink, self.stop = sink, stop

    def publish(self, messages: Sequence[Message], deadline: Callable[[], float]) -> list[str]:
        self.stop.set()
        return self.sink.publish_as("", messages, deadline, Fate.DOUBT_ACCEPT, 8.0)


def test_sigterm_with_a_request_in_flight_keeps_the_lease(world: World) -> None:
    world.chain.mine([1, 0, 0])
    stop = StopSignal()
    relay = Relay(
        settings(lease_s=30), SPECS, world.chain, world.state, world.state,
        StoppingSink(world.sink, stop), stop=stop, clock=world.clock.utc,
    )  # fmt: skip
    outcome = relay.run()
    assert outcome.summary.outcome == "ok" and outcome.summary.interrupted
    assert world.state.next_block == 1  # block 0 is whole; block 1's request is in doubt
    held = world.state.lease
    assert held.owner == outcome.summary.run_id  # not released: the request may yet land
    world.clock.advance(3)  # Pub/Sub accepts it now, under that lease
    assert len(world.sink.accepted) == 1 and held.expires_at is not None
    assert held.expires_at > world.clock.utc_at(world.sink.accepted[0].at)
    assert world.run(lease_s=30).summary.outcome == "skipped"


# -- failover: the real JSON-RPC client over a scripted HTTP session ----------------


class RpcSession:
    """Answers JSON-RPC from the fake chain; `down` hosts answer 503, `limited` ones 429."""

    def __init__(self, chain: FakeChain, down: set[str], limited: set[str]) -> None:
        self.chain, self.down, self.limited = chain, down, limited
        self.posts: list[str] = []

    def post(
        self, url: str, data: str, headers: dict[str, str], timeout: float, stream: bool = False
    ) -> Response:
        self.posts.append(url)
        if any(h in url for h in self.down):
            return Response(503, b"Service Unavailable")
        if any(h in url for h in self.limited):
            return Response(429, b"Too Many Requests", {"Retry-After": "2"})
        body = json.loads(data)
        return Response(200, json.dumps([self._answer(c) for c in body]).encode())

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        method, params = call["method"], call["params"]
        view = self.chain.view()
        result: Any
        if method == "eth_chainId":
            result = hex(31337)
        elif method == "eth_blockNumber":
            result = hex(view.head)
        elif method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            b = view.blocks[n] if n <= view.head else None
            result = b and {"number": hex(n), "hash": b.hash, "timestamp": hex(b.timestamp)}
        else:
            q = params[0]
            lo, hi = int(q["fromBlock"], 16), int(q["toBlock"], 16)
            result = [
                e for b in view.blocks[lo : hi + 1] for e in b.logs if e["topics"][0] == TOPIC0
            ]
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}


def test_failover_and_backoff_take_no_real_time(world: World) -> None:
    world.chain.mine([1, 2, 0, 1])
    session = RpcSession(world.chain, down={"one.invalid"}, limited={"two.invalid"})
    slept: list[float] = []
    urls = ["http://one.invalid", "http://two.invalid", "http://three.invalid"]
    rpc = JsonRpc(urls, 31337, attempts=3, session=session, sleep=slept.append)  # type: ignore[arg-type]
    outcome = world.run(chain=ChainReader(rpc))
    assert outcome.summary.outcome == "ok", outcome.summary.error
    assert [p["event_id"] for p in world.payloads()] == world.event_ids()
    assert session.posts[:3] == urls  # in RPC_URL order, then the one that answers
    assert all(u == urls[2] for u in session.posts[3:])
    assert slept and 1.5 <= slept[0] <= 2.5  # Retry-After, with jitter: recorded, not slept


def test_a_refused_request_is_reported_as_pubsubs_refusal_not_as_the_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request Pub/Sub refuses stops the requests after it (not sent): that is the
    refusal's doing, not a lease that ran out, and the error must say what Pub/Sub said."""
    monkeypatch.setattr("function.run.dispatch.MAX_MESSAGES", 1)  # one request per event
    world.chain.mine([1, 1, 1])
    world.sink.fates.append((Fate.FAIL, 0.0))
    failed = world.run(lease_s=300)
    assert failed.summary.outcome == "failed"
    assert "Unavailable" in str(failed.error), failed.error
    assert "lease ran out" not in str(failed.error)
    assert world.run(lease_s=300).summary.outcome == "ok"
    assert [p["event_id"] for p in world.payloads()] == world.event_ids()


class CountingChain:
    """The fake chain, remembering the most logs one read returned."""

    def __init__(self, chain: FakeChain) -> None:
        self._chain = chain
        self.largest = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)

    def logs_with_headers(self, *args: Any, **kwargs: Any) -> Any:
        headers, logs = self._chain.logs_with_headers(*args, **kwargs)
        self.largest = max(self.largest, len(logs))
        return headers, logs


def test_a_busy_batch_is_read_in_windows_not_held_whole(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory follows the window, not RELAYER_BATCH_SIZE nor the checkpoint interval: 60
    blocks of 50 events, in windows sized to about WINDOW_EVENTS (shrunk here to 200)."""
    import function.core.planning as planning

    monkeypatch.setattr(planning, "WINDOW_EVENTS", 200)
    monkeypatch.setattr(planning, "FIRST_WINDOW_BLOCKS", 2)
    world.chain.mine([50] * 60)
    chain = CountingChain(world.chain)
    done = world.run(chain=chain, batch_size=100, checkpoint_interval=20, start_block=1)
    assert done.summary.outcome == "ok" and done.summary.to_block == 60
    assert [p["event_id"] for p in world.payloads()] == world.event_ids()
    assert chain.largest == 200  # 100 in a first window of 2 blocks, then 4 blocks each
    assert world.run(batch_size=100, start_block=1).summary.outcome == "idle"


def test_an_empty_stretch_is_read_in_a_few_wide_windows(world: World) -> None:
    world.chain.mine([0] * 3000 + [1])
    chain = CountingChain(world.chain)
    calls: list[int] = []
    original = world.chain.logs_with_headers

    def counted(blocks: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(blocks))
        return original(blocks, *args, **kwargs)

    chain.__dict__["logs_with_headers"] = counted
    done = world.run(chain=chain, batch_size=5000, checkpoint_interval=10)
    assert done.summary.outcome == "ok" and len(world.payloads()) == 1
    # 16 times the stretch without events so far (a first of 5, then 16 x 5, 16 x 85)
    assert calls == [5, 80, 1360, 1557]
