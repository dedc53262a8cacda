"""One set of contract tests per port, run against the in-memory fake and the real adapter.

The run (`function.run`) relies on these behaviours of its three ports; the fakes in
`devstack/sim` stand in for the adapters in the unit tier and the simulation, so they must
behave alike: each test below runs on the fake and on the real thing (ChainReader on anvil,
FirestoreState on the Firestore emulator, Publisher on the Pub/Sub emulator).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest
from google.cloud import firestore
from web3 import Web3

import function.adapters.firestore.blockstore as blockstore_module
import function.adapters.firestore.children as children_module
import function.adapters.firestore.state as state_module
import function.core.lease as lease_module
from devstack.chain.emitter import Emitter
from devstack.sim.events import TOPIC0, word
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from devstack.stack.clients import PubSubTopic
from devstack.stack.services import Anvil
from function.adapters.chain import ChainReader
from function.adapters.firestore.state import FirestoreState
from function.adapters.jsonrpc.client import JsonRpc
from function.adapters.pubsub import Publisher, make_channel
from function.core.blockrecords import Published, block_records
from function.core.checkpoint import Commit, Grant, Progress
from function.core.lease import Lease
from function.core.messages import Message
from function.core.model import BlockRecord, BlockRef
from function.core.planning import BlockRange, Density
from function.core.summary import OK, RunSummary
from function.core.watch import Child, ChildWrite
from function.errors import LeaseLostError, NotSentError, RpcError, StateError
from function.run.ports import Chain, Records, Sink, State
from harness import PROJECT

# -- the chain ---------------------------------------------------------------------


class ChainWorld(Protocol):
    @property
    def port(self) -> Chain: ...

    @property
    def contract(self) -> str: ...

    def emit(self, events: list[int]) -> list[int]: ...  # one block per entry: its numbers

    def reorg(self, depth: int) -> None: ...

    def head(self) -> int: ...


@dataclass
class FakeChainWorld:
    chain: FakeChain = field(default_factory=FakeChain)

    @property
    def port(self) -> Chain:
        return self.chain

    @property
    def contract(self) -> str:
        return self.chain.contract

    def emit(self, events: list[int]) -> list[int]:
        return [b.number for b in self.chain.mine(events)]

    def reorg(self, depth: int) -> None:
        self.chain.reorg(depth, [0] * depth)

    def head(self) -> int:
        return self.chain.head


class AnvilChainWorld:
    def __init__(self, anvil: Anvil) -> None:
        self.w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
        self.emitter = Emitter.deploy(self.w3)
        self.contract: str = self.emitter.address
        rpc = JsonRpc([anvil.rpc_url], 31337, attempts=2, sleep=lambda s: None)
        self.port: Chain = ChainReader(rpc)
        self._ticks = 0

    def emit(self, events: list[int]) -> list[int]:
        numbers = []
        for n in events:
            if n == 0:
                self.w3.provider.make_request("anvil_mine", ["0x1"])  # type: ignore[arg-type]
                numbers.append(self.head())
                continue
            logs = []
            for _ in range(n):
                self._ticks += 1
                logs.append(([TOPIC0, word(self._ticks)], bytes.fromhex(word(7)[2:])))
            numbers.append(self.emitter.emit(logs)[0].block_number)
        return numbers

    def reorg(self, depth: int) -> None:
        self.w3.provider.make_request("anvil_reorg", [depth, []])  # type: ignore[arg-type]

    def head(self) -> int:
        return int(self.w3.eth.block_number)


@pytest.fixture(params=["fake", "anvil"])
def chain_world(request: pytest.FixtureRequest) -> ChainWorld:
    if request.param == "fake":
        return FakeChainWorld()
    anvil: Anvil = request.getfixturevalue("anvil")
    return AnvilChainWorld(anvil)


def test_head_and_header_give_the_head_and_no_header_past_it(chain_world: ChainWorld) -> None:
    chain_world.emit([0, 1, 0])
    head, header = chain_world.port.head_and_header("latest", 1)
    assert head == chain_world.head()
    assert header is not None and header.number == 1
    assert chain_world.port.headers([1])[1] == header
    assert chain_world.port.head_and_header("latest", head + 3) == (head, None)
    assert chain_world.port.head_and_header("latest", None) == (head, None)


def test_a_block_past_the_head_is_an_rpc_error(chain_world: ChainWorld) -> None:
    head = chain_world.head()
    with pytest.raises(RpcError):
        chain_world.port.headers([head + 5])


def test_logs_with_headers_come_from_one_view(chain_world: ChainWorld) -> None:
    numbers = chain_world.emit([2, 0, 3, 1])
    blocks = BlockRange(numbers[0], numbers[-1])
    headers, logs = chain_world.port.logs_with_headers(
        blocks, [chain_world.contract], [TOPIC0], [numbers[1]]
    )
    assert set(headers) == {numbers[1], blocks.end}  # the asked ones and the range's end
    assert len(logs) == 6
    keys = [(int(e["blockNumber"], 16), int(e["logIndex"], 16)) for e in logs]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {int(e["blockNumber"], 16) for e in logs} == {numbers[0], numbers[2], numbers[3]}
    by_number = chain_world.port.headers({int(e["blockNumber"], 16) for e in logs})
    for entry in logs:
        assert entry["blockHash"].lower() == by_number[int(entry["blockNumber"], 16)].hash
        assert entry["address"].lower() == chain_world.contract.lower()
        assert entry["topics"][0].lower() == TOPIC0
    other_topic = "0x" + "11" * 32
    _, none = chain_world.port.logs_with_headers(blocks, [chain_world.contract], [other_topic], [])
    assert none == []


def test_a_reorganisation_replaces_headers_and_logs(chain_world: ChainWorld) -> None:
    numbers = chain_world.emit([1, 1, 1])
    before = chain_world.port.headers(numbers)
    chain_world.reorg(2)
    after = chain_world.port.headers(numbers)
    assert after[numbers[0]] == before[numbers[0]]
    assert all(after[n].hash != before[n].hash for n in numbers[1:])
    _, logs = chain_world.port.logs_with_headers(
        BlockRange(numbers[0], numbers[-1]), [chain_world.contract], [TOPIC0], []
    )
    assert [int(e["blockNumber"], 16) for e in logs] == [numbers[0]]  # replaced by empty blocks
    assert logs[0]["blockHash"].lower() == before[numbers[0]].hash


# -- the state and the records ------------------------------------------------------


Action = Callable[[], object]


@dataclass
class Store:
    state: State
    records: Records
    # `interleave(step, action)`: `action` runs once inside the next `step` ("acquire",
    # "commit" or "write" of records), between the step's read and its write: what another
    # run may do meanwhile. The fake's steps are atomic, so there it runs just before.
    interleave: Callable[[str, Action], None]
    counts: Callable[[], tuple[int, int]]  # runs counted, of which skipped


# The pure decision each step of the Firestore adapter asks between its read and its write.
WINDOWS = {
    "acquire": (lease_module, "acquire"),
    "commit": (state_module, "lease_after"),
    "write": (blockstore_module, "check_fence"),
}


@pytest.fixture(params=["fake", "firestore"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "fake":
        fake = FakeState()

        def fake_counts() -> tuple[int, int]:
            return fake.totals.runs, fake.totals.outcomes.get("skipped", 0)

        return Store(fake, fake, lambda step, action: (action(), None)[1], fake_counts)
    request.getfixturevalue("firestore_reset")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    client = firestore.Client(project=PROJECT)
    identity = {"chain_id": 31337, "contracts": ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]}
    real = FirestoreState(client, f"contract-{uuid.uuid4().hex[:8]}", identity)

    def interleave(step: str, action: Action) -> None:
        owner, name = WINDOWS[step]
        original, pending = getattr(owner, name), [action]

        def decide(*args: object, **kwargs: object) -> object:
            if pending:
                pending.pop()()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, decide)

    def counts() -> tuple[int, int]:
        totals = (real.read() or {}).get("totals") or {}
        return int(totals.get("runs") or 0), int((totals.get("outcomes") or {}).get("skipped") or 0)

    return Store(real, real.records, interleave, counts)


NOW = datetime.now(UTC).replace(microsecond=0)


def _hash(number: int) -> str:
    return "0x" + f"{number:02x}" * 32


def _published(number: int, index: int, block_hash: str | None = None) -> Published:
    block_hash = block_hash or _hash(number)
    eid = f"31337:{block_hash}:{index}"
    return Published(eid, number, block_hash, index, "0x" + "ab" * 32, "Tick", f"m{number}.{index}",
                     json.dumps({"event_id": eid}))  # fmt: skip


def _records(*published: Published) -> list[BlockRecord]:
    return block_records(published, {}, run_id="r", now=NOW, ttl_days=1)


def _summary(run_id: str) -> RunSummary:
    summary = RunSummary(run_id, "contract", NOW, outcome=OK, finished_at=NOW)
    return summary


def _children(*numbers: int) -> list[Child]:
    return [Child("0x" + f"{n:040x}", n) for n in numbers]


def _store_children(state: State, grant: Grant, kept: int, children: list[Child], to: int) -> Grant:
    """Commit the checkpoint `to` with `children` (the first `kept` as stored); the grant of
    a run that takes the lease next (what it reads back)."""
    write = ChildWrite(children, kept, to)
    state.commit(grant, NOW, Commit(progress=Progress(to, _hash(to - 1), (), 0), children=write))
    state.commit(grant, NOW, Commit(summary=_summary(grant.run_id)))
    again = state.acquire(grant.run_id + "'", NOW, 30)
    assert again is not None
    return again


def test_children_are_stored_with_the_checkpoint_and_cut_by_a_rewind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_module, "PAGE_SIZE", 3)  # several pages, cut in the middle
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    assert state.children(grant) == ([], None)
    first = _children(2, 3, 3, 5)
    grant = _store_children(state, grant, 0, first, 6)
    assert state.children(grant) == (first, 6)
    more = [*first, *_children(7, 8, 9, 9, 10)]  # appended: pages 1 and 2 rewritten
    grant = _store_children(state, grant, 4, more, 11)
    assert state.children(grant) == (more, 11)
    # A rewind to block 8 forgets the children from 8 on; one comes back at 8 on the new fork.
    back = [*more[:5], *_children(0x80)]
    back[-1] = Child(back[-1].address, 8)
    state.commit(
        grant,
        NOW,
        Commit(
            progress=Progress(8, _hash(7), (), 0, rewind=True),
            children=ChildWrite(back[:5], 5, 8),
        ),
    )
    state.commit(grant, NOW, Commit(summary=_summary(grant.run_id)))
    grant = state.acquire("b", NOW, 30)
    assert grant is not None
    assert state.children(grant) == (more[:5], 8)
    grant = _store_children(state, grant, 5, back, 9)
    assert state.children(grant) == (back, 9)


def test_children_of_a_checkpoint_that_does_not_move_are_not_stored(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    grant = _store_children(state, grant, 0, _children(2), 6)
    # A checkpoint that would move back (not a rewind) is refused, and its children with it.
    with pytest.raises(StateError):
        state.commit(
            grant,
            NOW,
            Commit(progress=Progress(4, _hash(3), (), 0), children=ChildWrite([], 0, 4)),
        )
    # One that stays where it is (a look's counts) stores none either.
    state.commit(
        grant,
        NOW,
        Commit(progress=Progress(None, None, (), 1), children=ChildWrite([], 0, 6)),
    )
    state.commit(grant, NOW, Commit(summary=_summary(grant.run_id)))
    again = state.acquire("c", NOW, 30)  # what the next run reads
    assert again is not None
    assert state.children(again) == (_children(2), 6)


def test_a_run_whose_lease_was_taken_over_stores_no_children(store: Store) -> None:
    state = store.state
    old = state.acquire("a", NOW, 30)
    assert old is not None
    new = state.acquire("b", NOW + timedelta(seconds=31), 30)
    assert new is not None
    with pytest.raises(LeaseLostError):
        state.commit(
            old,
            NOW,
            Commit(progress=Progress(6, _hash(5), (), 0), children=ChildWrite(_children(2), 0, 6)),
        )
    state.commit(new, NOW, Commit(summary=_summary("b")))
    again = state.acquire("c", NOW, 30)  # what the next run reads
    assert again is not None
    assert state.children(again) == ([], None)


def test_acquire_refuses_while_another_lease_holds(store: Store) -> None:
    state = store.state
    first = state.acquire("a", NOW, 30)
    assert first is not None and first.next_block is None
    assert state.acquire("b", NOW + timedelta(seconds=29), 30) is None
    again = state.acquire("a", NOW + timedelta(seconds=1), 30)  # its own lease: renewed
    assert again is not None and again.fence > first.fence


def test_a_run_whose_lease_was_taken_over_writes_nothing(store: Store) -> None:
    state, records = store.state, store.records
    old = state.acquire("a", NOW, 30)
    assert old is not None
    new = state.acquire("b", NOW + timedelta(seconds=31), 30)  # a's lease expired
    assert new is not None and new.fence > old.fence
    with pytest.raises(LeaseLostError):
        records.write(old, _records(_published(5, 0)))
    with pytest.raises(LeaseLostError):
        state.commit(old, NOW, Commit(progress=Progress(6, _hash(5), (), 1)))
    with pytest.raises(LeaseLostError):
        state.commit(old, NOW, Commit(summary=_summary("a")))
    assert records.read(0, 10) == []
    records.write(new, _records(_published(5, 0)))
    assert [r.ref for r in records.read(0, 10)] == [BlockRef(5, _hash(5))]


def test_the_record_queries_return_what_was_written(store: Store) -> None:
    records = store.records
    grant = store.state.acquire("a", NOW, 30)
    assert grant is not None
    written = _records(
        _published(2, 0), _published(2, 1), _published(5, 0), _published(7, 3), _published(9, 0)
    )
    records.write(grant, written)
    # whole and typed, as written, in chain order (the store stamps when it wrote them)
    assert [replace(r, recorded_at=None) for r in records.read(2, 7)] == [
        replace(r, recorded_at=None) for r in written[:3]
    ]
    assert records.read(2, 7)[0].entries[1].state == "published"
    assert records.refs(BlockRange(3, 9)) == [
        BlockRef(5, _hash(5)), BlockRef(7, _hash(7)), BlockRef(9, _hash(9))
    ]  # fmt: skip
    assert records.refs_below(9, 2) == [BlockRef(5, _hash(5)), BlockRef(7, _hash(7))]
    assert records.refs_below(2, 5) == []
    later = records.read(5)
    assert [r.number for r in later] == [5, 7, 9]
    assert later[0].entries[0].message_id == "m5.0"


def test_two_forks_of_one_height_are_two_records(store: Store) -> None:
    grant = store.state.acquire("a", NOW, 30)
    assert grant is not None
    store.records.write(grant, _records(_published(4, 0), _published(4, 0, _hash(0x44))))
    assert [r.hash for r in store.records.read(4, 4)] == sorted([_hash(4), _hash(0x44)])


def test_block_numbers_past_twelve_digits_read_in_chain_order(store: Store) -> None:
    # Ids pad to 12 digits (docs/CONTRACT.md §4); START_BLOCK takes any number below 2**63,
    # so a 13-digit block must still be in its ranges, and after every 12-digit one.
    grant = store.state.acquire("a", NOW, 30)
    assert grant is not None
    top = 10**12
    store.records.write(
        grant, _records(*(_published(n, 0) for n in (top - 2, top - 1, top, top + 1)))
    )
    assert [r.number for r in store.records.read(top - 1)] == [top - 1, top, top + 1]
    assert [r.number for r in store.records.read(top - 2, top)] == [top - 2, top - 1, top]
    assert [r.number for r in store.records.refs(BlockRange(top - 1, top + 5))] == [
        top - 1, top, top + 1
    ]  # fmt: skip
    assert [r.number for r in store.records.refs_below(top + 1, 2)] == [top - 1, top]


def test_the_checkpoint_moves_forward_or_rewinds(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    recent = (BlockRef(8, _hash(8)), BlockRef(9, _hash(9)))
    state.commit(grant, NOW, Commit(progress=Progress(10, _hash(9), recent, 3)))
    with pytest.raises(StateError) as refused:
        state.commit(grant, NOW, Commit(progress=Progress(8, _hash(7), (), 0)))
    assert not isinstance(refused.value, LeaseLostError)
    state.commit(grant, NOW, Commit(progress=Progress(9, _hash(8), (), 0, rewind=True)))
    state.commit(grant, NOW, Commit(summary=_summary("a")))  # releases the lease
    nxt = state.acquire("b", NOW + timedelta(seconds=1), 30)
    assert nxt is not None
    assert (nxt.next_block, nxt.checkpoint_hash) == (9, _hash(8))
    assert nxt.recent_blocks == (BlockRef(8, _hash(8)),)


def test_a_last_commit_with_lease_until_keeps_the_lease(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    state.commit(grant, NOW, Commit(summary=_summary("a"), lease_until=NOW + timedelta(seconds=60)))
    assert state.acquire("b", NOW + timedelta(seconds=40), 30) is None
    assert state.acquire("b", NOW + timedelta(seconds=61), 30) is not None


def test_rpc_limits_and_a_replay_range_come_back_in_the_next_grant(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    progress = Progress(10, _hash(9), (), 0, rewind=True, replay=BlockRange(3, 9))
    state.commit(grant, NOW, Commit(progress=progress, rpc_limits={"node": 50}))
    state.commit(grant, NOW, Commit(summary=_summary("a")))
    nxt = state.acquire("b", NOW + timedelta(seconds=1), 30)
    assert nxt is not None and nxt.rpc_limits == {"node": 50}
    assert nxt.replay == BlockRange(3, 9)


def test_the_density_learnt_comes_back_in_the_next_grant(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None and grant.density is None
    density = Density(end=9, blocks=10, events=0, watched="k")
    state.commit(grant, NOW, Commit(progress=Progress(10, _hash(9), (), 0), density=density))
    state.commit(grant, NOW, Commit(summary=_summary("a")))  # no density: the one stored stays
    nxt = state.acquire("b", NOW + timedelta(seconds=1), 30)
    assert nxt is not None and nxt.density == density
    later = Density(end=20, blocks=21, events=0, watched="k")
    state.commit(nxt, NOW, Commit(summary=_summary("b"), density=later))
    last = state.acquire("c", NOW + timedelta(seconds=2), 30)
    assert last is not None and last.density == later


def test_a_followers_window_is_in_its_lease_until_its_end(store: Store) -> None:
    state = store.state
    end = NOW + timedelta(seconds=60)
    grant = state.acquire("a", NOW, 30, follow_until=end)
    assert grant is not None
    assert state.read_lease() == Lease("a", NOW + timedelta(seconds=30), grant.fence, NOW, end)
    later = NOW + timedelta(seconds=20)
    renewal = Commit(lease_until=later + timedelta(seconds=30), looked_at=later)
    state.commit(grant, later, renewal)
    held = state.read_lease()
    assert (held.expires_at, held.since, held.follow_until) == (
        later + timedelta(seconds=30),
        NOW,
        end,
    )
    assert state.acquire("b", later, 30) is None
    state.commit(grant, later, Commit(summary=_summary("a"), looked_at=later))
    assert state.read_lease() == Lease(None, None, grant.fence)


def test_a_skipped_run_counts_itself_without_the_lease(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    state.count_skipped(NOW)
    state.commit(grant, NOW, Commit(summary=_summary("a")))  # the holder's commit is not disturbed


def test_a_commit_racing_a_skipped_runs_count_lands_and_keeps_the_count(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    store.interleave("commit", lambda: state.count_skipped(NOW))  # a run that found it held
    recent = (BlockRef(9, _hash(9)),)
    until = NOW + timedelta(seconds=30)
    state.commit(grant, NOW, Commit(progress=Progress(10, _hash(9), recent, 3), lease_until=until))
    state.commit(grant, NOW, Commit(summary=_summary("a")))
    assert store.counts() == (2, 1)  # the skipped run and a's
    nxt = state.acquire("b", NOW + timedelta(seconds=1), 30)
    assert nxt is not None and (nxt.next_block, nxt.checkpoint_hash) == (10, _hash(9))


def test_a_takeover_between_a_commits_read_and_write_fences_the_commit_out(store: Store) -> None:
    state = store.state
    old = state.acquire("a", NOW, 30)
    assert old is not None
    later = NOW + timedelta(seconds=31)  # a's lease expired
    taken: list[object] = []
    store.interleave("commit", lambda: taken.append(state.acquire("b", later, 30)))
    with pytest.raises(LeaseLostError):
        state.commit(old, later, Commit(progress=Progress(6, _hash(5), (), 1), lease_until=later))
    (new,) = taken
    assert new is not None and state.read_lease().owner == "b"
    state.commit(new, later, Commit(summary=_summary("b")))  # nothing of a's in b's commit
    nxt = state.acquire("c", later + timedelta(seconds=1), 30)
    assert nxt is not None and nxt.next_block is None


def test_a_takeover_between_a_record_writes_read_and_write_fences_it_out(store: Store) -> None:
    state, records = store.state, store.records
    old = state.acquire("a", NOW, 30)
    assert old is not None
    taken: list[object] = []
    later = NOW + timedelta(seconds=31)
    store.interleave("write", lambda: taken.append(state.acquire("b", later, 30)))
    with pytest.raises(LeaseLostError):
        records.write(old, _records(_published(5, 0)))
    assert taken and taken[0] is not None
    assert records.read(0, 10) == []


def test_runs_racing_for_a_free_lease_get_it_once(store: Store) -> None:
    state = store.state
    rival: list[object] = []
    store.interleave("acquire", lambda: rival.append(state.acquire("b", NOW, 30)))
    assert state.acquire("a", NOW, 30) is None  # b took it between a's read and a's write
    assert rival and rival[0] is not None
    assert state.read_lease().owner == "b"


# -- the sink ----------------------------------------------------------------------


class SinkWorld(Protocol):
    @property
    def port(self) -> Sink: ...

    def received(self) -> list[tuple[bytes, dict[str, str], str]]: ...


@dataclass
class FakeSinkWorld:
    sink: FakeSink = field(default_factory=FakeSink)

    @property
    def port(self) -> Sink:
        return self.sink

    def received(self) -> list[tuple[bytes, dict[str, str], str]]:
        return [
            (a.message.data, a.message.attributes, a.message.ordering_key)
            for a in self.sink.accepted
        ]


@dataclass
class PubSubWorld:
    topic: PubSubTopic
    port: Sink

    def received(self) -> list[tuple[bytes, dict[str, str], str]]:
        return [(m.data, m.attributes, m.ordering_key) for m in self.topic.pull_all(idle_s=1.0)]


@pytest.fixture(params=["fake", "pubsub"])
def sink_world(request: pytest.FixtureRequest) -> Iterator[SinkWorld]:
    if request.param == "fake":
        yield FakeSinkWorld()
        return
    topic: PubSubTopic = request.getfixturevalue("pubsub_topic")
    yield PubSubWorld(topic, Publisher(make_channel(), topic.project, topic.topic_id))


def _messages(n: int) -> list[Message]:
    return [
        Message(f'{{"n": {i}}}'.encode(), {"event_id": f"e{i}"}, "31337:0xabc") for i in range(n)
    ]


def test_publish_returns_one_id_per_message_and_delivers_them(sink_world: SinkWorld) -> None:
    messages = _messages(3)
    ids = sink_world.port.publish(messages, lambda: time.monotonic() + 30)
    assert len(ids) == 3 and len(set(ids)) == 3
    got = sink_world.received()
    assert sorted(got) == sorted((m.data, m.attributes, m.ordering_key) for m in messages)


def test_a_request_past_its_deadline_is_not_sent(sink_world: SinkWorld) -> None:
    with pytest.raises(NotSentError):
        sink_world.port.publish(_messages(2), lambda: time.monotonic() - 1)
    assert sink_world.received() == []


def test_a_look_below_the_checkpoint_stores_its_children_without_moving_it(store: Store) -> None:
    state = store.state
    grant = state.acquire("a", NOW, 30)
    assert grant is not None
    grant = _store_children(state, grant, 0, _children(2), 6)
    more = ChildWrite(_children(2, 4), 1, 5, scan=True)  # a look reached block 5 of 6
    state.commit(grant, NOW, Commit(children=more))
    past = ChildWrite(_children(2, 4, 7), 2, 8, scan=True)  # never past the checkpoint
    state.commit(grant, NOW, Commit(children=past))
    state.commit(grant, NOW, Commit(summary=_summary(grant.run_id)))
    again = state.acquire("b", NOW, 30)
    assert again is not None
    assert state.children(again) == (_children(2, 4), 5)
    assert again.next_block == 6
