"""RELAYER_FACTORY over the in-memory fakes: every child of the factory is relayed from the
block of its creation on (its logs before the creation event in that block included), never
a contract the factory did not create; the children survive runs, are forgotten with the
blocks a reorganisation orphans, and are found again from START_BLOCK when a state does not
hold them (a backfill's task, a checkpoint moved forward)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eth_utils.crypto import keccak

import function.core.watch as watch_module
from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import ABI, TOPIC0, settings, word
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.abi import event_catalogue
from function.core.catalogue import TopicQuery
from function.core.creations import factory_of
from function.core.factory import parse_factory
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.core.watch import Child
from function.run.relay import Relay

FACTORY = "0x" + "fa" * 20
STRANGER = "0x" + "5e" * 20  # emits Tick too, but the factory never created it
CREATED_ABI: dict[str, Any] = {
    "type": "event",
    "name": "Created",
    "anonymous": False,
    "inputs": [
        {"name": "owner", "type": "address", "indexed": True},
        {"name": "child", "type": "address", "indexed": False},
    ],
}
CREATED = "0x" + keccak(text="Created(address,address)").hex()


def child(n: int) -> str:
    return "0x" + f"{n:040x}"


def created(address: str) -> Emitted:
    return (FACTORY, [CREATED, "0x" + "00" * 12 + "ab" * 20], "0x" + "00" * 12 + address[2:])


def tick(address: str, n: int) -> Emitted:
    return (address, [TOPIC0, word(n)], word(n * 7))


class Recording(FakeChain):
    """Remembers the address list each eth_getLogs asked for (None: the topics alone)."""

    asked: list[Sequence[str] | None]

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        self.asked.append(None if addresses is None else list(addresses))
        return super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


def make_chain() -> Recording:
    chain = Recording()
    chain.asked = []
    return chain


def relay_of(
    chain: FakeChain, state: FakeState, sink: FakeSink, clock: FakeClock, **kw: Any
) -> Relay:
    specs = event_catalogue([*ABI, CREATED_ABI], kw.pop("events", ()), "sim")
    setting = parse_factory(f"{FACTORY}:Created:child")
    return Relay(
        settings=settings(contracts=kw.pop("contracts", ()), **kw),
        specs=specs,
        chain=chain,
        state=state,
        records=state,
        sink=sink,
        clock=clock.utc,
        factory=factory_of(setting, specs, "sim"),
    )


def until_idle(relay: Relay) -> None:
    for _ in range(30):
        outcome = relay.run()
        assert outcome.error is None, outcome.summary.error
        if outcome.summary.outcome == "idle":
            return
    raise AssertionError("never idle")


def sink_for(clock: FakeClock) -> FakeSink:
    sink = FakeSink()
    sink.clock = clock.monotonic
    clock.listeners.append(sink.deliver)
    return sink


def relayed(sink: FakeSink) -> list[tuple[str, str, int, bool]]:
    out = []
    for accepted in sink.accepted:
        p = json.loads(accepted.message.data)
        out.append(
            (
                p["contract"].lower(),
                p["args"].get("id", p["event"]),
                p["block_number"],
                p["removed"],
            )
        )
    return out


def test_children_are_relayed_from_their_creation_block_and_strangers_never(
    clock: FakeClock,
) -> None:
    chain = make_chain()
    a, b = child(0xA), child(0xB)
    chain.mine([0, 0])
    blocks = chain.mine_logs(
        [
            [tick(a, 1), tick(STRANGER, 2)],  # before a exists: not relayed
            [tick(a, 3), created(a), tick(a, 4)],  # its constructor's log, then the creation
            [tick(STRANGER, 5), tick(a, 6)],
            [created(b), tick(b, 7), tick(a, 8)],
            [],
            [tick(b, 9)],
        ]
    )
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=2, checkpoint_interval=1))

    n = [blk.number for blk in blocks]
    assert [(c, i) for c, i, _, _ in relayed(sink)] == [
        (a, "3"), (a, "4"), (a, "6"), (b, "7"), (a, "8"), (b, "9"),
    ]  # fmt: skip
    assert [blk for _, _, blk, _ in relayed(sink)] == [n[1], n[1], n[2], n[3], n[3], n[5]]
    # Stored with the checkpoint, in chain order, each from its creation block.
    assert state.children_stored == (Child(a, n[1]), Child(b, n[3]))
    assert state.children_to == state.next_block
    # Few children: asked by address list (the factory's, for its creations, and theirs),
    # and a window that creates one asks again for the new child's logs from its block on.
    assert all(asked is not None for asked in chain.asked)
    assert any(set(asked or ()) == {FACTORY, a} for asked in chain.asked)
    assert [a] in chain.asked and [b] in chain.asked


def test_the_factory_relayed_as_a_contract_too(clock: FakeClock) -> None:
    chain = make_chain()
    a = child(0xA)
    chain.mine_logs([[created(a), tick(a, 1)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, contracts=(FACTORY,)))
    assert [(c, i) for c, i, _, _ in relayed(sink)] == [(FACTORY, "Created"), (a, "1")]


def test_past_the_address_limit_logs_are_asked_by_topic_and_filtered_here(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch_module, "ADDRESS_LIST_MAX", 3)
    chain = make_chain()
    kids = [child(i) for i in range(1, 6)]
    chain.mine_logs(
        [
            [created(kids[0]), created(kids[1])],
            [created(kids[2]), tick(kids[2], 1), tick(STRANGER, 2)],  # now 4 addresses
            [created(kids[3]), created(kids[4]), tick(kids[4], 3)],
            [tick(k, 10 + i) for i, k in enumerate(kids)] + [tick(STRANGER, 20)],
        ]
    )
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=1, checkpoint_interval=1))

    assert [(c, i) for c, i, _, _ in relayed(sink)] == [
        (kids[2], "1"), (kids[4], "3"), *[(k, str(10 + i)) for i, k in enumerate(kids)],
    ]  # fmt: skip
    assert None in chain.asked  # asked by topic once past the limit
    assert chain.asked[0] is not None  # and by address list before
    assert [c.address for c in state.children_stored] == kids


def test_children_survive_runs_and_a_task_without_them_finds_them_from_start_block(
    clock: FakeClock,
) -> None:
    chain = make_chain()
    a, b = child(0xA), child(0xB)
    blocks = chain.mine_logs([[created(a)], [], [created(b)], [], [tick(a, 1), tick(b, 2)]])
    # A first run relays the creations only (batch of 4 blocks), the next one their events
    # from the stored children.
    state, sink = FakeState(), sink_for(clock)
    relay = relay_of(chain, state, sink, clock, batch_size=4, checkpoint_interval=2)
    assert relay.run().error is None
    assert [c.address for c in state.children_stored] == [a, b]
    assert relayed(sink) == []
    until_idle(relay)
    assert [(c, i) for c, i, _, _ in relayed(sink)] == [(a, "1"), (b, "2")]

    # A state at the same checkpoint without children (a backfill's task, or a checkpoint
    # moved forward by `relayer reset`): the creations below it are looked for first.
    fresh, sink2 = FakeState(next_block=blocks[4].number), sink_for(clock)
    until_idle(relay_of(chain, fresh, sink2, clock, batch_size=4))
    assert [(c, i) for c, i, _, _ in relayed(sink2)] == [(a, "1"), (b, "2")]
    assert [c.address for c in fresh.children_stored] == [a, b]


def test_a_child_created_in_an_orphaned_block_is_forgotten_and_its_events_retracted(
    clock: FakeClock,
) -> None:
    chain = make_chain()
    a, b = child(0xA), child(0xB)
    chain.mine([0, 0])
    chain.mine_logs([[created(a), tick(a, 1)], [tick(a, 2)]])
    state, sink = FakeState(), sink_for(clock)
    relay = relay_of(chain, state, sink, clock, checkpoint_interval=1)
    until_idle(relay)
    assert [(c, i) for c, i, _, _ in relayed(sink)] == [(a, "1"), (a, "2")]
    assert [c.address for c in state.children_stored] == [a]

    # The two blocks are replaced: b is created instead, a never was.
    chain.reorg(2, [])
    replaced = chain.mine_logs([[created(b), tick(b, 3)], [], []])
    until_idle(relay)
    got = relayed(sink)[2:]
    assert sorted(got[:2]) == [
        (a, "1", replaced[0].number, True),
        (a, "2", replaced[1].number, True),
    ]
    assert got[2:] == [(b, "3", replaced[0].number, False)]
    assert state.children_stored == (Child(b, replaced[0].number),)
