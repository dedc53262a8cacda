"""Review 18b of 118b5e9 + d47c359: reads by address alone, after review 18's mends.

Over the in-memory fakes (`devstack/sim`), with the harness of `test_review18_reads_by_address`.
Tests named FAILS show a finding; the others pin what held.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from test_review18_reads_by_address import (
    FOREIGN,
    Filtering,
    Recording,
    chain_of,
    foreign,
    relayed,
    run_until_idle,
    tick,
)

from devstack.sim.clock import FakeClock, deterministic
from devstack.sim.events import ABI, CONTRACT, TOPIC0, settings, word
from devstack.sim.fake_chain import Emitted
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.abi import event_catalogue
from function.core.catalogue import EventCatalogue, TopicQuery
from function.core.logspan import RangeLimits
from function.core.model import Header, RawLog
from function.core.planning import GROWTH, WINDOW_EVENTS, BlockRange
from function.core.provider_errors import Failure, FailureKind
from function.errors import RangeTooLargeError
from function.run.fetching import fetch
from function.run.relay import Relay

__all__ = ["Filtering"]

CAP = 50  # a provider's most logs per eth_getLogs answer


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    c = FakeClock()
    with deterministic(c):
        yield c


class CappedCounting(Recording):
    """Refuses an answer of more than CAP logs (a result-size limit, as Alchemy's 10,000),
    and counts the refusals of reads by address alone."""

    refused_by_address: int = 0
    refused_by_topic: int = 0

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
            if topic0s is None and queries is None:
                self.refused_by_address += 1
            else:
                self.refused_by_topic += 1
            raise RangeTooLargeError(
                self.host,
                f"query returned more than {CAP} results",
                Failure(FailureKind.RANGE_TOO_LARGE),
            )
        return headers, logs


def _busy(blocks: int, per_block: int) -> list[list[Emitted]]:
    """Blocks (from block 1: the fake chain's genesis is block 0) each with `per_block`
    logs of an event the ABI lacks and one Tick."""
    return [[*(foreign(b * 100 + k) for k in range(per_block)), tick(b)] for b in range(blocks)]


# -- finding: a refusal by address alone is asked again in every window ----------------------


def test_FAILS_a_refusal_by_address_alone_is_not_asked_again_in_every_window(
    clock: FakeClock,
) -> None:
    """FAILS. A contract that emits 30 logs the ABI lacks per block: a read by address alone
    over two blocks or more passes the provider's result cap and is refused; by topic0 it
    answers a Tick per block. `_read_logs` then asks "for the topic0s from here on" (its log
    line), but the switch lives in one `_read_logs` call: every window of the run (each a
    `fetch`), every retry of a view and every later run asks by address alone again, is
    refused again, and nothing is learnt (`RangeLimits` is not told, the window sizing
    counts no passed-over log of a refused read). Every window costs the provider one
    refused query more (Alchemy bills it, and a refusal for result size takes the provider
    the whole query's work) and the run one round trip more."""
    chain = chain_of(_busy(60, 30), CappedCounting)
    specs = event_catalogue(ABI, (), "sim")
    assert specs.every_event
    sink, _dead, errors = run_until_idle(
        chain, specs, clock, batch_size=1_000, checkpoint_interval=10
    )
    assert errors == []
    assert [int(i) for _, _, i in relayed(sink)] == list(range(60))
    windows = len(chain.answers)
    assert chain.refused_by_address <= 1, (
        f"{chain.refused_by_address} reads by address alone refused for their result size "
        f"in one run of {windows} answered windows: the switch to topic0s was forgotten "
        "after each window"
    )


def test_FAILS_relayer_verify_pays_a_refusal_in_every_batch(clock: FakeClock) -> None:
    """FAILED before its mend. `relayer verify` and `replay` (`cli._scan`) fetch batch by
    batch; each `fetch` had fresh limits: over a contract busy with events its ABI lacks each
    batch's first read by address alone was refused, then asked again by topic0. `_scan`
    now passes one `RangeLimits` to every batch (`test_a_scan_shares_its_limits_across_batches`
    in tests/unit/test_reads_by_address.py), as here."""
    chain = chain_of(_busy(40, 30), CappedCounting)
    specs = event_catalogue(ABI, (), "sim")
    events = 0
    limits = RangeLimits(10)
    for start in range(1, 41, 10):  # as `_scan` splits the range by RELAYER_BATCH_SIZE
        got = fetch(
            chain,
            specs,
            (CONTRACT,),
            31337,
            BlockRange(start, start + 9),
            dead_letters=True,
            limits=limits,
        )
        events += len(got.events)
    assert events == 40
    assert chain.refused_by_address <= 1, (
        f"{chain.refused_by_address} batches of 4 asked by address alone and were refused"
    )


def test_a_span_refusal_by_address_alone_is_learnt_as_before() -> None:
    """Holds (pin): a span limit (not the result size): the read by address alone and then
    by topic0 are refused, the second refusal is learnt, and what is stored for the next
    run (`to_store`, the checkpoint's `rpc_limits`) is the span the node accepts."""

    class SpanLimited(Recording):
        refused = 0

        def logs_with_headers(
            self,
            blocks: BlockRange,
            addresses: Sequence[str] | None,
            topic0s: Sequence[str] | None,
            header_numbers: Sequence[int],
            queries: Sequence[TopicQuery | None] | None = None,
        ) -> tuple[dict[int, Header], list[RawLog]]:
            self.asked.append(None if topic0s is None else list(topic0s))
            if len(blocks) > 8:
                self.refused += 1
                raise RangeTooLargeError(
                    self.host,
                    "block range is too wide (maximum 8 blocks)",
                    Failure(FailureKind.RANGE_TOO_LARGE, max_range=8),
                )
            return Recording.logs_with_headers(
                self, blocks, addresses, topic0s, header_numbers, queries
            )

    chain = chain_of(_busy(40, 2), SpanLimited)
    specs = event_catalogue(ABI, (), "sim")
    limits = RangeLimits(40)
    got = fetch(chain, specs, (CONTRACT,), 31337, BlockRange(1, 40), limits=limits)
    assert len(got.events) == 40
    assert chain.refused == 2  # by address alone, then by topic0: one request more than before
    assert limits.to_store() == {chain.host: 8}
    assert chain.asked[:2] == [None, [TOPIC0]]


# -- finding: the density key does not say whether the reads were by address alone -----------


def test_FAILS_a_density_learnt_by_topic0_does_not_size_a_read_by_address_alone(
    clock: FakeClock,
) -> None:
    """FAILS. The density kept with the checkpoint (`Density`, `watch_key`) is keyed by the
    contracts, the factory and the topic0s, not by whether the reads go by address alone.
    RELAYER_EVENTS=Tick (every named event of this ABI, so the node filters) learns 4,000
    blocks without events over a contract busy with events the ABI lacks; unsetting
    RELAYER_EVENTS keeps the same key, so the next run's first window is sized by that empty
    stretch (EMPTY_GROWTH times it) and read by address alone: one answer holds every
    foreign log of 4,000 blocks, past what the window sizing allows (the bound of review
    18's first finding, mended within a run by `passed_over`)."""
    chain = chain_of([[foreign(b * 10 + k) for k in range(10)] for b in range(4_000)], Recording)
    state = FakeState()
    sink = FakeSink()
    sink.clock = clock.monotonic
    clock.listeners.append(sink.deliver)

    def run(specs: EventCatalogue) -> str:
        relay = Relay(
            settings=settings(batch_size=100_000, checkpoint_interval=1_000),
            specs=specs,
            chain=chain,
            state=state,
            records=state,
            sink=sink,
            clock=clock.utc,
        )
        outcome = relay.run()
        assert outcome.error is None, outcome.summary.error
        return outcome.summary.outcome

    named = event_catalogue(ABI, ("Tick",), "sim")  # RELAYER_EVENTS=Tick
    assert not named.every_event
    assert run(named) == "ok"
    assert all(t == [TOPIC0] for t in chain.asked)
    assert state.density is not None and state.density.events == 0
    chain.mine_logs(
        [[foreign(40_000 + b * 10 + k) for k in range(10)] for b in range(4_000)]
        + [[(CONTRACT, [TOPIC0, word(1)], word(7))]]
    )
    chain.asked, chain.answers = [], []
    every = event_catalogue(ABI, (), "sim")  # RELAYER_EVENTS unset
    assert every.every_event and every.topic_filter == named.topic_filter
    assert run(every) == "ok"
    assert chain.asked and all(t is None for t in chain.asked)
    assert [i for _, _, i in relayed(sink)] == ["1"]
    assert max(chain.answers) <= WINDOW_EVENTS * GROWTH, (
        f"the first read by address alone answered {max(chain.answers)} logs in one window, "
        f"sized by a density learnt by topic0 (at most {WINDOW_EVENTS * GROWTH} allowed)"
    )


# -- pins: what held ----------------------------------------------------------------------


def test_passed_over_counts_each_window_once_across_a_switch_to_topic0s() -> None:
    """Holds (pin): `Fetched.passed_over` adds the logs left out of each window answered by
    address alone, none of a refused window, none of the windows read by topic0 after it."""
    blocks: list[list[Emitted]] = [[foreign(b), tick(b)] for b in range(10)]
    blocks += [
        [*(foreign(1_000 + b * 100 + k) for k in range(30)), tick(10 + b)] for b in range(10)
    ]
    chain = chain_of(blocks, CappedCounting)
    specs = event_catalogue(ABI, (), "sim")
    limits = RangeLimits(20, {chain.host: 5})  # windows of 5 blocks
    got = fetch(chain, specs, (CONTRACT,), 31337, BlockRange(1, 20), limits=limits)
    assert len(got.events) == 20
    # windows 1..5 and 6..10 by address alone (5 foreign logs each), 11..15 refused, then topic0s
    assert chain.asked == [None, None, None, [TOPIC0], [TOPIC0]]
    assert got.passed_over == 10


def test_upper_case_topics_and_logs_without_topics_by_address_alone(clock: FakeClock) -> None:
    """Holds (pin): a node answering topic0s in upper-case hex still has them relayed; a log
    without topics and a foreign one are passed over, and counted as such."""
    upper = "0x" + TOPIC0[2:].upper()
    blocks: list[list[Emitted]] = [
        [(CONTRACT, [upper, word(1)], word(7)), (CONTRACT, [], word(1)), foreign(1)],
        [(CONTRACT, [FOREIGN.upper().replace("0X", "0x")], "0x"), tick(2)],
    ]
    chain = chain_of(blocks, Recording)
    specs = event_catalogue(ABI, (), "sim")
    got = fetch(chain, specs, (CONTRACT,), 31337, BlockRange(1, 2), dead_letters=True)
    assert [e.args["id"] for e in got.events] == ["1", "2"]
    assert got.dead == [] and got.passed_over == 3
