"""eth_getLogs by address alone when every event of the ABI is relayed (RELAYER_EVENTS unset).

The read applies the topic0s to the answer itself (`fetching.with_topic0s`), so what is decoded
is what a node's topic filter would have returned: the node is spared a bloom test per topic0 (on
anvil the escrow's six made a scan of 100,000 empty blocks 15% slower). These runs go over the
in-memory fakes; `tests/e2e/test_hostile_logs.py` does the same on anvil.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import ABI, CONTRACT, CREATED_ABI, TOPIC0, settings, word
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.abi import event_catalogue
from function.core.catalogue import EventCatalogue, TopicQuery, query_matches
from function.core.creations import Factory, factory_of
from function.core.factory import parse_factory
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.run.fetching import with_topic0s
from function.run.relay import Relay

TOCK_ABI: dict[str, Any] = {
    "type": "event",
    "name": "Tock",
    "anonymous": False,
    "inputs": [{"name": "id", "type": "uint256", "indexed": True}],
}
TOCK = "0x" + keccak(text="Tock(uint256)").hex()
BLIP_ABI: dict[str, Any] = {  # anonymous: no topic0 of its own
    "type": "event",
    "name": "Blip",
    "anonymous": True,
    "inputs": [{"name": "a", "type": "uint256", "indexed": True}],
}
FOREIGN = "0x" + keccak(text="Upgraded(address)").hex()  # an event no ABI here has


class Asking(FakeChain):
    """Remembers the topic0s each eth_getLogs asked for (None: every log of the addresses)."""

    asked: list[list[str] | None]

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        self.asked.append(None if topic0s is None else list(topic0s))
        return super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


def chain_of(blocks: Sequence[Sequence[Emitted]]) -> Asking:
    chain = Asking()
    chain.asked = []
    chain.mine_logs(blocks)
    return chain


def tick(n: int) -> Emitted:
    return (CONTRACT, [TOPIC0, word(n)], word(7 * n))


def run_until_idle(
    chain: FakeChain,
    specs: EventCatalogue,
    clock: FakeClock,
    factory: Factory | None = None,
    **overrides: Any,
) -> tuple[FakeSink, FakeSink]:
    sink, dead = FakeSink(), FakeSink()
    for s in (sink, dead):
        s.clock = clock.monotonic
        clock.listeners.append(s.deliver)
    state = FakeState()
    for _ in range(20):
        relay = Relay(
            settings=settings(**overrides),
            specs=specs,
            chain=chain,
            state=state,
            records=state,
            sink=sink,
            dead_letters=dead,
            clock=clock.utc,
            factory=factory,
        )
        outcome = relay.run()
        assert outcome.error is None, outcome.summary.error
        if outcome.summary.outcome == "idle":
            return sink, dead
    raise AssertionError("the relayer never caught up")


def relayed(sink: FakeSink) -> list[tuple[str, str]]:
    return [
        (p["event"], p["args"]["id"]) for p in (json.loads(a.message.data) for a in sink.accepted)
    ]


MIXED: list[list[Emitted]] = [
    [tick(1), (CONTRACT, [FOREIGN, word(1)], "0x")],
    [(CONTRACT, [], "0x" + "ab" * 32)],  # a log with no topics at all
    [(CONTRACT, [TOCK, word(2)], "0x"), tick(3)],
    [],
    [(CONTRACT, [word(9)], "0x"), (CONTRACT, [FOREIGN, word(2)], "0x"), tick(4)],
]


def test_every_event_event_relayed_reads_by_address_and_passes_over_the_rest(
    clock: FakeClock,
) -> None:
    chain = chain_of(MIXED)
    specs = event_catalogue([*ABI, TOCK_ABI], (), "sim")
    sink, dead = run_until_idle(chain, specs, clock)
    assert chain.asked and all(t is None for t in chain.asked), chain.asked
    assert relayed(sink) == [("Tick", "1"), ("Tock", "2"), ("Tick", "3"), ("Tick", "4")]
    assert dead.accepted == [], "a log of an event the ABI lacks is no dead letter"


def test_naming_every_event_still_asks_by_topic0(clock: FakeClock) -> None:
    """RELAYER_EVENTS set, even to every named event (an ABI with an anonymous event the
    selection leaves out): the node's filter, what an operator names events for."""
    chain = chain_of(MIXED)
    specs = event_catalogue([*ABI, TOCK_ABI, BLIP_ABI], ("Tick", "Tock"), "sim")
    sink, dead = run_until_idle(chain, specs, clock)
    assert chain.asked and all(sorted(t or ()) == sorted([TOPIC0, TOCK]) for t in chain.asked)
    assert relayed(sink) == [("Tick", "1"), ("Tock", "2"), ("Tick", "3"), ("Tick", "4")]
    assert dead.accepted == []


def test_a_selection_of_some_named_events_still_asks_by_topic0(clock: FakeClock) -> None:
    chain = chain_of(MIXED)
    specs = event_catalogue([*ABI, TOCK_ABI], ("Tick",), "sim")
    sink, dead = run_until_idle(chain, specs, clock)
    assert chain.asked and all(t == [TOPIC0] for t in chain.asked), chain.asked
    assert relayed(sink) == [("Tick", "1"), ("Tick", "3"), ("Tick", "4")]
    assert dead.accepted == []


def test_a_factory_keeps_the_topic0_filter(clock: FakeClock) -> None:
    """Past ADDRESS_LIST_MAX children a factory's reads go by topic alone: without topics
    they would be every log of the chain."""
    chain = chain_of(MIXED)
    specs = event_catalogue([*ABI, CREATED_ABI], (), "sim")
    setting = parse_factory(f"{CONTRACT}:Created:child")
    sink, _ = run_until_idle(chain, specs, clock, factory_of(setting, specs, "sim"))
    assert chain.asked and all(t is not None and TOPIC0 in t for t in chain.asked), chain.asked
    assert [i for _, i in relayed(sink)] == ["1", "3", "4"]


def test_the_local_topic0_filter_keeps_what_a_node_would() -> None:
    """`with_topic0s` is a node's filter of one topic0 set (`query_matches`): the first
    topic in the set whatever its hex case, a log without topics never; the answer itself
    when every log is kept (no copy of a busy window's list)."""
    logs: list[RawLog] = [
        {"topics": [TOPIC0.upper().replace("0X", "0x"), word(1)]},  # type: ignore[typeddict-item]
        {"topics": []},  # type: ignore[typeddict-item]
        {"topics": [FOREIGN, TOPIC0]},  # type: ignore[typeddict-item]
        {"topics": [TOCK]},  # type: ignore[typeddict-item]
    ]
    assert with_topic0s(logs, [TOPIC0, TOCK]) == [logs[0], logs[3]]
    assert all(query_matches(((TOPIC0, TOCK),), e["topics"]) for e in (logs[0], logs[3]))
    assert not any(query_matches(((TOPIC0, TOCK),), e["topics"]) for e in (logs[1], logs[2]))
    kept = [logs[0], logs[3]]
    assert with_topic0s(kept, [TOPIC0, TOCK]) is kept


def test_a_scan_shares_its_limits_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """`relayer verify` and `replay` (`cli._scan`) read batch by batch: every batch's fetch
    gets the same `RangeLimits`, so a refusal (a span, or a read by address alone) is paid
    once per command, not once per batch."""
    import function.run.fetching as fetching
    from function.ops import cli

    seen: list[object] = []

    def fetch(*args: Any, limits: object = None, **kwargs: Any) -> fetching.Fetched:
        seen.append(limits)
        return fetching.Fetched([], {})

    monkeypatch.setattr(fetching, "fetch", fetch)
    abi = str(Path(__file__).resolve().parents[2] / "contracts" / "build" / "Escrow.json")
    setup = settings(abi_uri=abi, batch_size=10, contracts=("0x" + "ab" * 20,))
    windows = [w for w, _ in cli._scan(setup, BlockRange(1, 40), "verify")]
    assert [(w.start, w.end) for w in windows] == [(1, 10), (11, 20), (21, 30), (31, 40)]
    assert len(seen) == 4 and seen[0] is not None and all(s is seen[0] for s in seen)
