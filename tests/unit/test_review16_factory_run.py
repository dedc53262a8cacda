"""Review 16 (RELAYER_FACTORY), hostile: runs over the in-memory fakes that show where the
factory's children are lost or read again and again.

Each test states the behaviour docs/CONTRACT.md §1 (RELAYER_FACTORY) and the README's
"Contracts created by a factory" promise, and fails while the product breaks it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest
from eth_utils.crypto import keccak

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import ABI, TOPIC0, settings, word
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.adapters.firestore.children import PAGE_SIZE, page_writes
from function.core.abi import event_catalogue
from function.core.catalogue import TopicQuery
from function.core.checkpoint import Commit, Grant
from function.core.creations import factory_of
from function.core.factory import parse_factory
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.core.watch import Child, ChildWrite
from function.run.relay import Relay

FACTORY = "0x" + "fa" * 20
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


class Counting(FakeChain):
    """Counts the eth_getLogs that ask for the factory's creation events alone (the
    catch-up's reads: `fetching.creations`)."""

    creation_reads: int = 0

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        if (
            addresses is not None
            and list(addresses) == [FACTORY]
            and list(topic0s or []) == [CREATED]
        ):
            self.creation_reads += 1
        return super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


class TaskState(FakeState):
    """A backfill task's state as `FirestoreState(task=...)` keeps it: it stores no children
    and reads none back (`state.children`: `[], None` for a task; `commit` drops them)."""

    def children(self, grant: Grant) -> tuple[list[Child], int | None]:
        return [], None

    def commit(self, grant: Grant, now: datetime, change: Commit) -> None:
        super().commit(grant, now, Commit(**{**change.__dict__, "children": None}))


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


def relay_of(
    chain: FakeChain, state: FakeState, sink: FakeSink, clock: FakeClock, **kw: Any
) -> Relay:
    specs = kw.pop("specs", None) or event_catalogue(
        [*ABI, CREATED_ABI], kw.pop("events", ()), "sim"
    )
    dead_letters = kw.pop("dead_letters", None)
    setting = parse_factory(f"{FACTORY}:Created:child")
    children_from = kw.pop("children_from", 0)  # genesis: the default
    last_block = kw.pop("last_block", None)
    relay = Relay(
        settings=settings(contracts=kw.pop("contracts", ()), **kw),
        specs=specs,
        chain=chain,
        state=state,
        records=state,
        sink=sink,
        clock=clock.utc,
        factory=factory_of(setting, specs, "sim"),
    )
    relay.children_from = children_from
    relay.dead_letters = dead_letters
    relay.last_block = last_block
    return relay


def until_idle(relay: Relay, most: int = 40) -> int:
    """Runs until one is idle; how many ran."""
    for n in range(1, most + 1):
        outcome = relay.run()
        assert outcome.error is None, outcome.summary.error
        if outcome.summary.outcome == "idle":
            return n
    raise AssertionError("never idle")


def sink_for(clock: FakeClock) -> FakeSink:
    sink = FakeSink()
    sink.clock = clock.monotonic
    clock.listeners.append(sink.deliver)
    return sink


def relayed(sink: FakeSink) -> list[tuple[str, str, int]]:
    out = []
    for accepted in sink.accepted:
        p = json.loads(accepted.message.data)
        out.append((p["contract"].lower(), p["args"].get("id", p["event"]), p["block_number"]))
    return out


def test_a_child_once_listed_in_contract_address_stays_relayed_when_the_list_drops_it(
    clock: FakeClock,
) -> None:
    """§1: every address the factory's event names is relayed from its creation on. A child
    that CONTRACT_ADDRESS also listed is skipped by `Watch.add` (it is relayed as a
    contract), so it never enters the children ledger; once CONTRACT_ADDRESS drops it (the
    guard allows a drop with a warning) the factory's child is relayed no more."""
    chain = FakeChain()
    a, b = child(0xA), child(0xB)
    chain.mine_logs([[created(a), tick(a, 1)], [created(b), tick(b, 2)]])
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, contracts=(a,)))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (b, "2")]

    # CONTRACT_ADDRESS no longer lists a: it is still the factory's child.
    chain.mine_logs([[tick(a, 3), tick(b, 4)]])
    until_idle(relay_of(chain, state, sink, clock, contracts=()))
    assert [(c, i) for c, i, _ in relayed(sink)][2:] == [(a, "3"), (b, "4")]


def test_a_backfill_reads_the_factorys_creations_once_not_again_every_batch(
    clock: FakeClock,
) -> None:
    """A backfill's task stores no children, so every run of its loop (one RELAYER_BATCH_SIZE
    each, `relayer backfill` calls `relay.run()` until idle) reads the factory's creations
    again from the backfill's first block up to its checkpoint: the reads grow with the
    square of the range (a 1M-block backfill in batches of 1000 reads ~500,000 windows of
    creations, against 1,000 windows of logs)."""
    chain = Counting()
    a = child(0xA)
    chain.mine_logs([[created(a)], *[[tick(a, n)] for n in range(1, 60)]])
    state, sink = TaskState(), sink_for(clock)
    relay = relay_of(
        chain, state, sink, clock, batch_size=5, children_from=0, last_block=chain.head
    )
    runs = until_idle(relay, most=100)
    assert len(relayed(sink)) == 59  # everything relayed ...
    # ... but each run re-read the creations below it: 0 + 1 + 2 + ... windows of 5 blocks.
    assert chain.creation_reads <= runs, (
        f"{chain.creation_reads} eth_getLogs of the factory's creations for {runs} runs "
        f"over {chain.head + 1} blocks"
    )


def test_a_commit_that_adds_no_child_rewrites_no_page() -> None:
    """The pages change only at their end, the module says, and a commit rewrites "the last
    page or two"; but a checkpoint commit that adds no child rewrites the last page every
    time (each chunk commit: up to ~530 kB written again, billed and slowing every commit)."""
    stored = [Child(child(n), n) for n in range(PAGE_SIZE + PAGE_SIZE // 2)]
    write = ChildWrite(stored, len(stored), 10**6)  # nothing changed since the last commit
    now = datetime(2024, 1, 1)
    writes = page_writes(write, len(stored), now)
    assert [page for page, _ in writes] == []
