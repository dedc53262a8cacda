"""Re-review 16 (RELAYER_FACTORY fixes), hostile: the dead-lettering of creation events the
ABI cannot decode (`Watch.sift(..., unreadable)`, `fetching._decode_all`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_review16_factory_run import (
    CREATED,
    CREATED_ABI,
    FACTORY,
    child,
    clock,
    created,
    relay_of,
    relayed,
    sink_for,
    tick,
    until_idle,
)
from test_review16_factory_windows import FollowUps

import function.ops.wiring as wiring
from devstack.sim.clock import FakeClock
from devstack.sim.events import ABI, settings
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_state import FakeState
from function.core.catalogue import TopicQuery
from function.core.factory import parse_factory
from function.core.model import Header, RawLog
from function.core.planning import BlockRange
from function.ops import cli

__all__ = ["clock"]  # the fixture, shared


def test_a_refused_follow_up_read_does_not_dead_letter_a_creation_twice(
    clock: FakeClock,
) -> None:
    """§7.2 / §1 RELAYER_DEADLETTER_TOPIC: an unreadable creation log is one dead letter.
    `_read_logs` sifts a window (the unreadable creation goes into `unreadable`), then asks
    for the new child's own logs; when that follow-up read is refused (too many logs: a busy
    new child) the window is read again smaller, and sifted again: the same creation log is
    appended a second time and published twice to the dead-letter topic in one run."""
    chain = FollowUps()
    a = child(0xA)
    malformed = (FACTORY, [CREATED, "0x" + "00" * 12 + "ab" * 20], "0x")  # no data
    chain.mine_logs([[], [malformed, created(a), tick(a, 1)], [tick(a, 2)], [], []])
    chain.refuse = 1  # the first follow-up read (a's logs) is refused
    state, sink, dead = FakeState(), sink_for(clock), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=6, dead_letters=dead))
    assert chain.refuse == 0  # it was refused once
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2")]
    ids = [json.loads(d.message.data)["event_id"] for d in dead.accepted]
    assert len(ids) == 1, f"the one unreadable creation was dead-lettered {len(ids)} times: {ids}"


def test_verify_reads_past_a_malformed_creation_the_relay_passed_over(
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README (Errors): with RELAYER_DEADLETTER_TOPIC, an unreadable creation below the
    relayed range "is logged and passed over"; the relay does so (`creations(...,
    lenient=True)`). `relayer verify` and `relayer replay` read the creations below their
    range too (`cli._scan`), but strictly: one malformed creation anywhere below a range
    fails both for every range above it, on a relayer that relays that range fine."""
    chain = FakeChain()
    a = child(0xA)
    malformed = (FACTORY, [CREATED, "0x" + "00" * 12 + "ab" * 20], "0x")  # no data
    chain.mine_logs([[malformed], [created(a)], [], [tick(a, 1)], [tick(a, 2)]])
    start = chain.head - 1
    # The relay itself, with dead letters on: the malformed creation below START_BLOCK is
    # passed over, and a's events are relayed.
    state, sink, dead = FakeState(), sink_for(clock), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, start_block=start, dead_letters=dead))
    assert [(c, i) for c, i, _ in relayed(sink)] == [(a, "1"), (a, "2")]

    # `relayer verify --from-block START_BLOCK` over the same chain and configuration.
    abi = tmp_path / "abi.json"
    abi.write_text(json.dumps([*ABI, CREATED_ABI]))
    monkeypatch.setattr(wiring, "chain_reader", lambda settings, **kw: chain)
    configured = settings(
        contracts=(),
        abi_uri=str(abi),
        factory=parse_factory(f"{FACTORY}:Created:child"),
        deadletter_topic="dead-letters",
        start_block=start,
    )
    try:
        scanned = list(cli._scan(configured, BlockRange(start, chain.head), "verify"))
    except SystemExit as e:
        said = capsys.readouterr().err.strip()
        raise AssertionError(f"verify exited {e.code} below its range: {said}") from None
    events = [(e.contract.lower(), e.args["id"]) for _, f in scanned for e in f.events]
    assert events == [(a, "1"), (a, "2")]


class RefuseThenReorganise(FollowUps):
    """Refuses the first follow-up read and, meanwhile, the chain replaces its newest
    `depth` blocks by `fork` (a reorganisation between the refused read and the retry)."""

    fork: Sequence[Sequence[Emitted]] = ()
    depth: int = 0

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        if self.fork and addresses is not None and FACTORY not in addresses:
            self._remember()
            del self.canonical[len(self.canonical) - self.depth :]
            for raw in self.fork:
                self._append(0, raw)
            self.fork = ()
        return super().logs_with_headers(blocks, addresses, topic0s, header_numbers, queries)


def test_a_refused_follow_up_read_leaves_nothing_of_its_view_behind(clock: FakeClock) -> None:
    """The same leak as the dead letter's: the children a refused window found stay in
    `found` for the retry, which may read another chain (the check that windows agree
    starts with the first window answered). When a reorganisation in between moves a
    child's creation one block earlier (both creations of the factory mined in one block
    now), the retry keeps the block of the orphaned view, and the child's logs in its new
    creation block are dropped as "before its creation": lost, in a run that reports
    nothing wrong."""
    chain = RefuseThenReorganise()
    x, y = child(0xC), child(0xD)
    chain.mine_logs([[], [created(y)], [created(x), tick(x, 1)], [tick(x, 2)], []])
    chain.refuse = 1
    chain.depth = 4  # blocks 2..5 replaced: x is now created in block 2, with its tick 1
    chain.fork = [[created(y), created(x), tick(x, 1)], [], [tick(x, 2)], []]
    state, sink = FakeState(), sink_for(clock)
    until_idle(relay_of(chain, state, sink, clock, batch_size=6))
    assert chain.refuse == 0 and not chain.fork  # refused once, reorganised meanwhile
    assert [(c, i, b) for c, i, b in relayed(sink)] == [(x, "1", 2), (x, "2", 4)]
