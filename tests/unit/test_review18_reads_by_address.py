"""Review of 118b5e9: eth_getLogs by address alone when every named event of the ABI is relayed.

Hostile cases over the in-memory fakes (`devstack/sim`): what the relayer relays, dead-letters
and passes over must be what it did when the node applied the selected topic0s, and a window
must not hold more than the window sizing was made for. Tests marked FAILS show a finding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import pytest
from eth_utils.crypto import keccak

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import ABI, CONTRACT, CREATED, CREATED_ABI, TOPIC0, settings, word
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.abi import event_catalogue
from function.core.catalogue import EventCatalogue, TopicQuery
from function.core.creations import Factory, factory_of
from function.core.factory import parse_factory
from function.core.model import Header, RawLog
from function.core.planning import GROWTH, WINDOW_EVENTS, BlockRange
from function.core.provider_errors import Failure, FailureKind
from function.core.watch import Watch
from function.errors import RangeTooLargeError
from function.run.fetching import _topics
from function.run.relay import Relay

FOREIGN = "0x" + keccak(text="Upgraded(address)").hex()  # an event no ABI here has
OTHER = "0x" + "ab" * 20  # a second configured contract
CHILD = "0x" + "cd" * 20  # a factory's child

# `Tick` with its value indexed: the same topic0 as `Tick`, another layout (merged ABIs).
TICK_INDEXED: dict[str, Any] = {
    "type": "event",
    "name": "Tick",
    "anonymous": False,
    "inputs": [
        {"name": "id", "type": "uint256", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": True},
    ],
}
# An anonymous event with one indexed word: a log [TOPIC0] (one topic) would fit it too.
BLIP: dict[str, Any] = {
    "type": "event",
    "name": "Blip",
    "anonymous": True,
    "inputs": [{"name": "a", "type": "uint256", "indexed": True}],
}


class Recording(FakeChain):
    """Remembers what each eth_getLogs asked for and how many logs it answered."""

    asked: list[list[str] | None]
    answers: list[int]

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        self.asked.append(None if topic0s is None else list(topic0s))
        headers, logs = super().logs_with_headers(
            blocks, addresses, topic0s, header_numbers, queries
        )
        self.answers.append(len(logs))
        return headers, logs


class Careless(Recording):
    """A node that ignores the topics it is asked for (answers every log of the addresses)."""

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        self.asked.append(None if topic0s is None else list(topic0s))
        headers, logs = FakeChain.logs_with_headers(
            self, blocks, addresses, None, header_numbers, None
        )
        self.answers.append(len(logs))
        return headers, logs


R = TypeVar("R", bound=Recording)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


def chain_of(blocks: Sequence[Sequence[Emitted]], kind: type[R]) -> R:
    chain = kind()
    chain.asked, chain.answers = [], []
    chain.mine_logs(blocks)
    return chain


def tick(n: int, address: str = CONTRACT) -> Emitted:
    return (address, [TOPIC0, word(n)], word(7 * n))


def foreign(n: int, address: str = CONTRACT) -> Emitted:
    return (address, [FOREIGN, word(n)], "0x")


def run_until_idle(
    chain: FakeChain,
    specs: EventCatalogue,
    clock: FakeClock,
    factory: Factory | None = None,
    dead_letters: bool = True,
    **overrides: Any,
) -> tuple[FakeSink, FakeSink, list[str]]:
    """Runs until one is idle: what was relayed, dead-lettered, and the runs' errors."""
    sink, dead = FakeSink(), FakeSink()
    for s in (sink, dead):
        s.clock = clock.monotonic
        clock.listeners.append(s.deliver)
    state = FakeState()
    errors: list[str] = []
    for _ in range(40):
        relay = Relay(
            settings=settings(**overrides),
            specs=specs,
            chain=chain,
            state=state,
            records=state,
            sink=sink,
            dead_letters=dead if dead_letters else None,
            clock=clock.utc,
            factory=factory,
        )
        outcome = relay.run()
        if outcome.error is not None:
            errors.append(str(outcome.summary.error))
            return sink, dead, errors
        if outcome.summary.outcome == "idle":
            return sink, dead, errors
    raise AssertionError("the relayer never caught up")


def relayed(sink: FakeSink) -> list[tuple[str, str, str]]:
    payloads = [json.loads(a.message.data) for a in sink.accepted]
    return [
        (p["event"], p["contract"].lower(), str(p["args"].get("id", p["args"].get("a", ""))))
        for p in payloads
    ]


def dead_reasons(dead: FakeSink) -> list[str]:
    return [json.loads(a.message.data).get("reason", "") for a in dead.accepted]


# -- finding: the window sizing counts relayed events, not the logs the node answers -------


def test_FAILS_a_window_read_by_address_holds_about_window_events_logs_at_most(
    clock: FakeClock,
) -> None:
    """FAILS. Windows are sized by the events they held (`density_after`, WINDOW_EVENTS:
    "about the most events one window of a range holds (memory)"), growing EMPTY_GROWTH
    times after a window without events. Before 118b5e9 the node applied the topic0s, so
    every log a window's answer held became an event or a dead letter and the sizing bounded
    the answer. Read by address alone, a contract busy with events the ABI lacks (a proxy's
    admin events, a token whose ABI is a subset) answers windows of those: they count for
    nothing, so windows keep growing 16 times and one answer holds every foreign log of
    thousands of blocks: memory and the node's answer are no longer bounded by the sizing.
    """
    blocks: list[list[Emitted]] = [[foreign(i * 10 + k) for k in range(10)] for i in range(4000)]
    blocks.append([tick(1)])
    chain = chain_of(blocks, Recording)
    specs = event_catalogue(ABI, (), "sim")  # every named event: read by address alone
    sink, dead, errors = run_until_idle(
        chain, specs, clock, batch_size=10_000, checkpoint_interval=1_000
    )
    assert errors == []
    assert [e for e, _, _ in relayed(sink)] == ["Tick"]
    assert dead.accepted == []
    assert chain.answers and max(chain.answers) <= WINDOW_EVENTS * GROWTH, (
        f"one eth_getLogs answer held {max(chain.answers)} logs, the window sizing allows "
        f"about {WINDOW_EVENTS} events (at most {GROWTH} times that in a burst); windows "
        f"asked: {len(chain.answers)}"
    )


# -- finding: a node's answer outside the topic0s asked goes unnoticed with a factory ------


def _factory_world(kind: type[Recording]) -> Recording:
    created = (CONTRACT, [CREATED, word(1)], "0x" + CHILD[2:].rjust(64, "0"))
    return chain_of(
        [
            [created],
            [tick(1, CHILD), foreign(1, CHILD)],
            [foreign(2, CONTRACT), tick(2, CHILD)],
        ],
        kind,
    )


def test_FAILS_with_a_factory_a_log_outside_the_topic0s_asked_is_still_a_wrong_answer(
    clock: FakeClock,
) -> None:
    """FAILS. A factory's reads keep the topic0 filter (`_topics`), but `choose` passes over a
    log of an event the ABI lacks whenever `every_event` holds, whatever the read asked. A
    node that answers logs outside the topic0s it was asked for (the RUNBOOK's reason `has
    topic0 T, which matches no selected event of the ABI`: "the node answered a log outside
    the topic0s it was asked for") is caught without a factory and with RELAYER_EVENTS
    naming some events, and was caught here before 118b5e9; now its wrong logs are passed
    over without a word."""
    chain = _factory_world(Careless)
    specs = event_catalogue([*ABI, CREATED_ABI], (), "sim")
    setting = parse_factory(f"{CONTRACT}:Created:child")
    factory = factory_of(setting, specs, "sim")
    topics, _ = _topics(specs, Watch((CONTRACT,), factory))
    assert topics is not None and FOREIGN not in topics  # the node was asked by topic0
    sink, _, errors = run_until_idle(chain, specs, clock, factory, dead_letters=False)
    assert chain.asked and all(t is not None for t in chain.asked)
    assert errors and "matches no selected event" in errors[0], (
        f"the careless node's logs outside the topic0s asked were passed over: "
        f"relayed {relayed(sink)}, errors {errors}"
    )


def test_without_a_factory_a_selection_still_catches_a_careless_node(clock: FakeClock) -> None:
    """Holds (pin): RELAYER_EVENTS naming some events asks by topic0, and a log outside them
    is a wrong answer, dead-lettered with its reason."""
    tock = {**CREATED_ABI, "name": "Tock"}
    chain = chain_of([[tick(1), foreign(1)], [tick(2)]], Careless)
    specs = event_catalogue([*ABI, tock], ("Tick",), "sim")
    sink, dead, errors = run_until_idle(chain, specs, clock)
    assert errors == []
    assert [i for _, _, i in relayed(sink)] == ["1", "2"]
    assert len(dead.accepted) == 1 and "matches no selected event" in dead_reasons(dead)[0]


# -- pins: the outcome is the one of a read by topic0 ----------------------------------------


def _same_as_by_topic0(
    clock: FakeClock,
    blocks: Sequence[Sequence[Emitted]],
    specs: EventCatalogue,
    **overrides: Any,
) -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """Relays `blocks` by address alone (this change) and through a node that applies the
    topic0s the catalogue names (the code before it); both must agree."""
    chain = chain_of(blocks, Recording)
    sink, dead, errors = run_until_idle(chain, specs, clock, **overrides)
    assert errors == []
    assert chain.asked and all(t is None for t in chain.asked), chain.asked
    before = chain_of(blocks, Filtering)
    before.topic0s = specs.topic_filter
    sink0, dead0, errors0 = run_until_idle(before, specs, clock, **overrides)
    assert errors0 == []
    assert relayed(sink) == relayed(sink0)
    assert [json.loads(a.message.data)["event_id"] for a in dead.accepted] == [
        json.loads(a.message.data)["event_id"] for a in dead0.accepted
    ]
    return relayed(sink), dead_reasons(dead), [str(t) for t in chain.asked]


class Filtering(Recording):
    """The node of the code before the change: asked by address alone, it applies the
    topic0s the catalogue names (`topic_filter`), as eth_getLogs would have."""

    topic0s: list[str] | None = None

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        return super().logs_with_headers(
            blocks, addresses, topic0s or self.topic0s, header_numbers, queries
        )


def test_merged_layouts_and_a_topic0_log_that_fits_none_are_as_before(clock: FakeClock) -> None:
    """Two layouts of one topic0 (merged ABIs): the topic count chooses; a log with the
    topic0 and a count no layout has is dead-lettered, as when the node returned it for its
    topic0; a log without topics and a foreign one are passed over."""
    specs = event_catalogue([*ABI, TICK_INDEXED], (), "sim")
    blocks: list[list[Emitted]] = [
        [tick(1), (CONTRACT, [TOPIC0, word(2), word(3)], "0x"), foreign(1)],
        [(CONTRACT, [TOPIC0], "0x"), (CONTRACT, [], word(5))],
        [(CONTRACT, [TOPIC0, word(4)], "0x12")],  # the first layout, data too short
    ]
    got, reasons, _ = _same_as_by_topic0(clock, blocks, specs)
    assert got == [("Tick", CONTRACT.lower(), "1"), ("Tick", CONTRACT.lower(), "2")]
    assert len(reasons) == 2


def test_every_event_with_several_contracts(clock: FakeClock) -> None:
    """RELAYER_EVENTS unset, an ABI of two named events and two contracts: by address alone,
    and the outcome of a read by topic0."""
    specs = event_catalogue([*ABI, {**CREATED_ABI, "name": "Tock"}], (), "sim")
    assert specs.every_event
    blocks: list[list[Emitted]] = [
        [tick(1), foreign(1, OTHER), tick(2, OTHER)],
        [foreign(2), (OTHER, [], "0x"), tick(3)],
    ]
    got, reasons, _ = _same_as_by_topic0(clock, blocks, specs, contracts=(CONTRACT, OTHER))
    assert [(c, i) for _, c, i in got] == [
        (CONTRACT.lower(), "1"),
        (OTHER, "2"),
        (CONTRACT.lower(), "3"),
    ]
    assert reasons == []


def test_an_unselected_anonymous_event_colliding_with_a_topic0_is_read_as_the_named_one(
    clock: FakeClock,
) -> None:
    """An anonymous event (not selected) whose log's first topic is a named topic0 is read as
    that named event, as when the node returned it for its topic0: here it does not fit the
    named layout, so it is dead-lettered; an anonymous log with another first topic is
    passed over (the node did not return it). Since RELAYER_EVENTS is set (the anonymous
    event can be left out no other way) the node is asked by topic0."""
    specs = event_catalogue([*ABI, BLIP], ("Tick",), "sim")
    assert not specs.every_event
    chain = chain_of(
        [[(CONTRACT, [TOPIC0], "0x"), (CONTRACT, [word(9)], "0x"), tick(1)]], Recording
    )
    sink, dead, errors = run_until_idle(chain, specs, clock)
    assert errors == []
    assert chain.asked and all(t == [TOPIC0] for t in chain.asked), chain.asked
    assert [i for _, _, i in relayed(sink)] == ["1"]
    reasons = dead_reasons(dead)
    assert len(reasons) == 1 and "indexed topics" in reasons[0]


def test_a_selected_anonymous_event_still_dead_letters_what_fits_none(clock: FakeClock) -> None:
    """With an anonymous event selected nothing changed (no topic filter either way): a log
    the ABI lacks is dead-lettered, since it might be the anonymous event."""
    specs = event_catalogue([*ABI, BLIP], (), "sim")
    chain = chain_of([[foreign(1), tick(1), (CONTRACT, [word(3)], "0x")]], Recording)
    sink, dead, errors = run_until_idle(chain, specs, clock)
    assert errors == []
    assert relayed(sink) == [("Tick", CONTRACT.lower(), "1"), ("Blip", CONTRACT.lower(), "3")]
    assert len(dead.accepted) == 1 and "anonymous" in dead_reasons(dead)[0]


def test_without_dead_letters_a_foreign_log_fails_nothing_but_a_misfit_still_fails(
    clock: FakeClock,
) -> None:
    """Without RELAYER_DEADLETTER_TOPIC: the foreign logs fail nothing, a log with a named
    topic0 that fits no layout fails the run (before the change the node returned it too)."""
    specs = event_catalogue(ABI, (), "sim")
    chain = chain_of([[foreign(1), tick(1), (CONTRACT, [], "0x")], [tick(2)]], Recording)
    sink, _, errors = run_until_idle(chain, specs, clock, dead_letters=False)
    assert errors == []
    assert [i for _, _, i in relayed(sink)] == ["1", "2"]
    chain = chain_of([[foreign(1), tick(1)], [(CONTRACT, [TOPIC0], "0x")]], Recording)
    sink, _, errors = run_until_idle(chain, specs, clock, dead_letters=False)
    assert errors and "indexed topics" in errors[0]


# -- finding: the README's way back to the node's filter does not exist ---------------------


def test_FAILS_naming_the_wanted_events_in_relayer_events_filters_at_the_node_again(
    clock: FakeClock,
) -> None:
    """FAILS. README (Messages): "A contract that emits many events its ABI lacks costs a
    larger answer; name the wanted events in `RELAYER_EVENTS` to filter at the node again."
    The usual such ABI is a subset written for the events wanted (a busy token's
    `Blacklisted`, an exchange's `OrderFilled`): naming them names every named event of the
    ABI, which the same paragraph (and `every_event`) treats as unset, so the read stays by
    address alone. No setting brings the topic0 filter back short of adding an unwanted event
    to the ABI."""
    chain = chain_of([[tick(1), foreign(1), foreign(2)], [tick(2)]], Recording)
    specs = event_catalogue(ABI, ("Tick",), "sim")  # RELAYER_EVENTS=Tick: the wanted event
    sink, _, errors = run_until_idle(chain, specs, clock)
    assert errors == []
    assert [i for _, _, i in relayed(sink)] == ["1", "2"]
    assert chain.asked and all(t == [TOPIC0] for t in chain.asked), (
        f"RELAYER_EVENTS=Tick still read by address alone: {chain.asked}"
    )


# -- finding: a provider's result cap now counts the logs the ABI lacks ----------------------

CAP = 50  # a provider's most logs per eth_getLogs answer (10,000 on Alchemy and Infura)


class Capped(Recording):
    """A provider that refuses an answer of more than CAP logs, as a result-size limit."""

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        headers, logs = super().logs_with_headers(
            blocks, addresses, topic0s, header_numbers, queries
        )
        if len(logs) > CAP:
            raise RangeTooLargeError(
                self.host,
                f"query returned more than {CAP} results",
                Failure(FailureKind.RANGE_TOO_LARGE),
            )
        return headers, logs


def test_FAILS_a_block_busy_with_events_the_abi_lacks_does_not_stop_the_relayer(
    clock: FakeClock,
) -> None:
    """FAILS. One block in which the contract emits more logs of events the ABI lacks than
    the provider's result cap (a batch airdrop of a token whose ABI here is a subset), and
    one selected event. Asked by topic0 (before 118b5e9) the node answered one log; asked by
    address alone it refuses even that one block, so every run fails there ("refuses even
    one block's logs") and the relayer never passes the block: the selected event is never
    relayed. RELAYER_EVENTS naming it does not help (previous test)."""
    busy: list[Emitted] = [foreign(n) for n in range(CAP + 1)]
    chain = chain_of([[tick(1)], [*busy, tick(2)], [tick(3)]], Capped)
    specs = event_catalogue(ABI, (), "sim")
    sink, dead, errors = run_until_idle(chain, specs, clock)
    assert errors == [], errors
    assert [i for _, _, i in relayed(sink)] == ["1", "2", "3"]
    assert dead.accepted == []
