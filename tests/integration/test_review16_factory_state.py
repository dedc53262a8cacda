"""Review 16 (RELAYER_FACTORY), hostile: the factory's children in the real Firestore adapter
(the emulator), where the in-memory fake hides what the pages do.

The runs go over the fake chain and sink (`devstack/sim`) with the real `FirestoreState`:
the fake state stores the children as one tuple, the real one as pages, an export and an
import, and a batch the emulator caps at 4 MiB (production: 10 MiB)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from eth_utils.crypto import keccak
from google.cloud import firestore

import function.adapters.firestore.backup as backup
import function.adapters.firestore.children as children_module
from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import ABI, TOPIC0, settings, word
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_sink import FakeSink
from function.adapters.firestore.backup import export_state, import_state, read_export
from function.adapters.firestore.state import FirestoreState
from function.config import load_settings
from function.core.abi import event_catalogue
from function.core.checkpoint import Commit, Grant, Progress
from function.core.creations import factory_of
from function.core.factory import parse_factory
from function.core.model import BlockRef
from function.core.summary import OK, RunSummary
from function.core.watch import Child, ChildWrite
from function.errors import DeploymentError
from function.ops.wiring import identity_of
from function.run.relay import Relay
from harness import PROJECT
from minimal_env import MINIMAL

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
IDENTITY = {"chain_id": 31337, "contracts": []}
NOW = datetime.now(UTC).replace(microsecond=0)


def child(n: int) -> str:
    return "0x" + f"{n:040x}"


def created(address: str) -> Emitted:
    return (FACTORY, [CREATED, "0x" + "00" * 12 + "ab" * 20], "0x" + "00" * 12 + address[2:])


def tick(address: str, n: int) -> Emitted:
    return (address, [TOPIC0, word(n)], word(n * 7))


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


@pytest.fixture
def client(firestore_reset: object) -> firestore.Client:
    return firestore.Client(project=PROJECT)


def state_of(client: firestore.Client, relayer_id: str | None = None) -> FirestoreState:
    return FirestoreState(client, relayer_id or f"review16-{uuid.uuid4().hex[:8]}", IDENTITY)


def relay_of(
    chain: FakeChain, state: FirestoreState, sink: FakeSink, clock: FakeClock, **kw: Any
) -> Relay:
    specs = event_catalogue([*ABI, CREATED_ABI], (), "sim")
    setting = parse_factory(f"{FACTORY}:Created:child")
    return Relay(
        settings=settings(contracts=kw.pop("contracts", ()), **kw),
        specs=specs,
        chain=chain,
        state=state,
        records=state.records,
        sink=sink,
        clock=clock.utc,
        factory=factory_of(setting, specs, "sim"),
    )


def sink_for(clock: FakeClock) -> FakeSink:
    sink = FakeSink()
    sink.clock = clock.monotonic
    clock.listeners.append(sink.deliver)
    return sink


def until_idle(relay: Relay) -> None:
    for _ in range(30):
        outcome = relay.run()
        assert outcome.error is None, outcome.summary.error
        if outcome.summary.outcome == "idle":
            return
    raise AssertionError("never idle")


def relayed(sink: FakeSink) -> list[tuple[str, str]]:
    out = []
    for accepted in sink.accepted:
        p = json.loads(accepted.message.data)
        out.append((p["contract"].lower(), p["args"].get("id", p["event"])))
    return out


def fresh(state: FirestoreState) -> FirestoreState:
    """Another process's view of the same relayer (an operator command, the next run): a
    state object that `release` used keeps the lease it let go as its known version."""
    return FirestoreState(state._client, str(state._doc.id), IDENTITY)


def stored(state: FirestoreState, run_id: str) -> tuple[list[Child], int | None]:
    """The children the next run reads (its grant, then the pages)."""
    state = fresh(state)
    grant = state.acquire(run_id, NOW, 30)
    assert grant is not None
    children = state.children(grant)
    state.release(grant, NOW)
    return children


def _hash(number: int) -> str:
    return "0x" + f"{number:02x}" * 32


def _summary(run_id: str) -> RunSummary:
    return RunSummary(run_id, "review16", NOW, outcome=OK, finished_at=NOW)


def _store_children(
    state: FirestoreState, grant: Grant, kept: int, children: list[Child], to: int
) -> Grant:
    """A run's commit of the checkpoint `to` with `children`, its end, and the next grant."""
    write = ChildWrite(children, kept, to)
    state.commit(grant, NOW, Commit(progress=Progress(to, _hash(to - 1), (), 0), children=write))
    state.commit(grant, NOW, Commit(summary=_summary(grant.run_id)))
    again = state.acquire(grant.run_id + "'", NOW, 30)
    assert again is not None
    return again


def test_a_stored_child_listed_in_contract_address_costs_another_child_its_page_slot(
    client: firestore.Client, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Watch.restore` skips a stored child that CONTRACT_ADDRESS now lists (README: Adding a
    contract, `relayer contracts --accept`), so every child after it moves up one place;
    yet the next commit rewrites only the pages from the watch's `_clean` index on, leaving
    the earlier page as it was: the child that moved across the page boundary is in no
    page any more, and the count still matches, so no run notices. It is never relayed
    again."""
    monkeypatch.setattr(children_module, "PAGE_SIZE", 3)
    kids = [child(n) for n in range(1, 6)]
    chain = FakeChain()
    chain.mine_logs([[created(k)] for k in kids])
    state, sink = state_of(client), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock))
    assert [c.address for c in stored(state, "look-1")[0]] == kids  # pages [1,2,3] [4,5]

    # kids[1] is added to CONTRACT_ADDRESS; a block with an event moves the checkpoint.
    chain.mine_logs([[tick(kids[1], 1)]])
    until_idle(relay_of(chain, state, sink, clock, contracts=(kids[1],)))
    kept = {c.address for c in stored(state, "look-2")[0]}
    assert set(kids) - {kids[1]} <= kept, f"children lost from the pages: {set(kids) - kept}"

    # And so the lost child's next event is not relayed.
    chain.mine_logs([[tick(k, 10 + i) for i, k in enumerate(kids)]])
    until_idle(relay_of(chain, state, sink, clock, contracts=(kids[1],)))
    assert [c for c, _ in relayed(sink)][-5:] == kids


def test_an_export_taken_while_the_relayer_commits_children_imports_a_usable_state(
    client: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export reads the relayer document first and the children pages last (after every
    block record: minutes for a large relayer), and the module promises that records newer
    than the checkpoint are harmless. Pages newer than the document are not: the document
    counts N children, the pages hold more, and the imported relayer's every run fails
    reading them ("the pages hold N+k children, the relayer document counts N")."""
    source = state_of(client)
    grant = source.acquire("a", NOW, 30)
    assert grant is not None
    first = [Child(child(n), n) for n in (2, 3)]
    grant = _store_children(source, grant, 0, first, 6)
    source.release(grant, NOW)

    pages = backup._pages

    def with_a_commit_meanwhile(collection: Any) -> Iterator[Any]:
        if collection.id == "children":  # the live run commits while the export reads
            run = fresh(source)
            live = run.acquire("live", NOW, 30)
            assert live is not None
            more = [*first, Child(child(7), 7)]
            run.release(_store_children(run, live, 2, more, 9), NOW)
        return pages(collection)

    monkeypatch.setattr(backup, "_pages", with_a_commit_meanwhile)
    out = io.StringIO()
    export_state(client, str(source._doc.id), out)

    _, doc, docs = read_export(out.getvalue().splitlines(), "export")
    target = f"imported-{uuid.uuid4().hex[:8]}"
    import_state(client, target, doc, docs, "import-review16")
    assert stored(state_of(client, target), "after-import") == (first, 6)


def test_a_catch_up_that_finds_many_children_can_still_commit_them(
    client: firestore.Client, clock: FakeClock
) -> None:
    """A checkpoint moved forward (`relayer reset --to-block`) makes the next run read the
    factory's creations over the skipped blocks first; all it finds go into the next
    commit's one batch, a page of 10,000 (~450-530 kB) each. 120,000 children are 12 pages
    in one request, over the emulator's 4 MiB request cap (production refuses ~200,000,
    10 MiB): the commit fails, and every next run finds them again and fails the same way.
    The relayer is stuck for good."""
    kids = [child(n) for n in range(1, 120_001)]
    chain = FakeChain()
    chain.mine_logs([[tick(child(0), 1)]])  # relayed first: the state's checkpoint
    chain.mine_logs([[created(k) for k in kids[i : i + 10_000]] for i in range(0, 120_000, 10_000)])
    chain.mine_logs([[tick(kids[0], 2)]])
    state, sink = state_of(client), sink_for(clock)
    relay = relay_of(chain, state, sink, clock, contracts=(child(0),), batch_size=2)
    assert relay.run().error is None  # blocks 0..1: the checkpoint is 2, no children known
    assert stored(state, "before-reset") == ([], 2)

    # `relayer reset --to-block 14` (what `cli.reset` commits): over the creations.
    operator = fresh(state)
    grant = operator.acquire("reset", NOW, 30)
    assert grant is not None
    to_block = chain.head
    below = BlockRef(to_block - 1, chain.canonical[to_block - 1].hash)
    reset = Progress(to_block, below.hash, (below,), 0, rewind=True)
    operator.commit(grant, NOW, Commit(progress=reset))
    operator.release(grant, NOW)

    outcome = relay.run()  # the creations of blocks 2..13, then block 14's event
    assert outcome.error is None, outcome.summary.error
    assert len(stored(state, "after")[0]) == len(kids)


def test_a_factory_relayer_renamed_by_contract_address_is_refused_by_the_real_guard(
    client: firestore.Client,
) -> None:
    """The identity guard through Firestore (`FirestoreState._judge`, which reads the other
    relayers' `chain_id`, `contracts`, `next_block` and `topic` only): a factory relayer
    (`31337-{factory}`) that gains CONTRACT_ADDRESS is a new state `31337-{contract}` from
    START_BLOCK, publishing the children's whole history again."""
    base = {**MINIMAL, "RELAYER_FACTORY": f"{FACTORY}:Created:child"}
    alone = {k: v for k, v in base.items() if k != "CONTRACT_ADDRESS"}
    old = identity_of(load_settings(alone))
    state = FirestoreState(client, old.relayer_id, old.fields(), guard=old)
    grant = state.acquire("first", NOW, 30)
    assert grant is not None
    state.commit(grant, NOW, Commit(progress=Progress(100, _hash(99), (), 0)))
    state.commit(grant, NOW, Commit(summary=_summary("first")))

    new = identity_of(load_settings(base))
    assert new.relayer_id != old.relayer_id
    renamed = FirestoreState(client, new.relayer_id, new.fields(), guard=new)
    with pytest.raises(DeploymentError):
        renamed.acquire("second", NOW, 30)
