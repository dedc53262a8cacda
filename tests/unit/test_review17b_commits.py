"""Review 17b (29dba94, `fetch(piece_end=...)`), hostile: whole runs over the fakes, every
`fetch` the relay makes and every checkpoint it commits watched.

For each read: the commit points `fetch` now derives from `piece_end` are the ones the old
`chunks` argument gave (the window's pieces of `split(range, interval)`), and each of them has
its hash in what the read returned. For each commit that moves the checkpoint: its block is
a block with events or dead letters or one of those commit points (never a fallback of
`progress_of` to an earlier block, which would mean a piece end whose hash was not read),
its hash came from a read and is the canonical one. And nothing is lost or published twice.

Shapes: interval 1, intervals smaller and larger than the batch and the windows, windows that
start mid-interval (they grow with the density), ranges not from 0 (START_BLOCK mid-interval,
later runs from their checkpoint), the last partial interval of each range, block numbers
past 2**63 (`Shifted`), dead letters (undecodable ticks), the factory world (children found
in a window, their logs read again in it), parts cut by MAX_EVENTS_PER_COMMIT.

These PIN behaviour found sound: they pass on HEAD (and the same checks pass with the old
formula, which they compute alongside).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

import function.run.fetching as fetching
import function.run.relay as relay_module
from devstack.sim.events import CONTRACT, CREATED, TOPIC0, catalogue, settings, word
from devstack.sim.fake_chain import Emitted, FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.catalogue import TopicQuery
from function.core.checkpoint import Commit, Grant
from function.core.creations import factory_of
from function.core.factory import parse_factory
from function.core.model import Header, RawLog
from function.core.planning import BlockRange, split
from function.run.fetching import Fetched, any_in
from function.run.relay import Relay

PER_PART = 4  # MAX_EVENTS_PER_COMMIT here: chunks are cut into parts too


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(relay_module, "MAX_EVENTS_PER_COMMIT", PER_PART)
    yield


@dataclass
class Shifted:
    """A FakeChain whose block n is block `offset + n` (block numbers past 2**63)."""

    inner: FakeChain
    offset: int

    @property
    def host(self) -> str:
        return self.inner.host

    def _header(self, h: Header) -> Header:
        return Header(h.number + self.offset, h.hash, h.timestamp)

    def _log(self, entry: RawLog) -> RawLog:
        out = dict(entry)
        out["blockNumber"] = hex(int(entry["blockNumber"], 16) + self.offset)
        return out  # type: ignore[return-value]

    def head_and_header(self, tag: str, number: int | None) -> tuple[int, Header | None]:
        head, header = self.inner.head_and_header(
            tag, None if number is None else number - self.offset
        )
        return head + self.offset, None if header is None else self._header(header)

    def headers(self, numbers: Iterable[int]) -> dict[int, Header]:
        got = self.inner.headers([n - self.offset for n in numbers])
        return {n + self.offset: self._header(h) for n, h in got.items()}

    def logs_with_headers(
        self,
        blocks: BlockRange,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str] | None,
        header_numbers: Sequence[int],
        queries: Sequence[TopicQuery | None] | None = None,
    ) -> tuple[dict[int, Header], list[RawLog]]:
        headers, logs = self.inner.logs_with_headers(
            BlockRange(blocks.start - self.offset, blocks.end - self.offset),
            addresses,
            topic0s,
            [n - self.offset for n in header_numbers],
            queries,
        )
        return (
            {n + self.offset: self._header(h) for n, h in headers.items()},
            [self._log(e) for e in logs],
        )


@dataclass
class Watched:
    """Every read of the relay (its range, the window, `piece_end`, what it returned) and
    every checkpoint commit."""

    interval: int
    ranges: list[BlockRange] = field(default_factory=list)
    reads: list[tuple[BlockRange, BlockRange, Any, Fetched]] = field(default_factory=list)
    commits: list[tuple[int, str]] = field(default_factory=list)  # (block, hash)


class WatchedState(FakeState):
    watched: Watched

    def commit(self, grant: Grant, now: datetime, change: Commit) -> None:
        progress = change.progress
        super().commit(grant, now, change)
        if progress is not None and progress.next_block is not None:
            assert progress.block_hash is not None
            self.watched.commits.append((progress.next_block - 1, progress.block_hash))


def watch_the_relay(monkeypatch: pytest.MonkeyPatch, watched: Watched) -> None:
    original_fetch = fetching.fetch  # what the relay calls (`relay.fetch`)
    original_relay = relay_module._Run._relay

    def fetch(*args: Any, **kwargs: Any) -> Fetched:
        got = original_fetch(*args, **kwargs)
        window = args[4]
        watched.reads.append((watched.ranges[-1], window, kwargs.get("piece_end"), got))
        return got

    def relay(self: Any, blocks: BlockRange, anchor: Any) -> int:
        watched.ranges.append(blocks)
        return original_relay(self, blocks, anchor)

    monkeypatch.setattr(relay_module, "fetch", fetch)
    monkeypatch.setattr(relay_module._Run, "_relay", relay)


def old_points(
    blocks: BlockRange, interval: int, window: BlockRange, numbers: list[int]
) -> set[int]:
    """The commit points before 29dba94: the window's pieces of the range's intervals."""
    chunks = [
        BlockRange(max(c.start, window.start), min(c.end, window.end))
        for c in split(blocks, interval)
        if c.start <= window.end and c.end >= window.start
    ]
    return {c.end for c in chunks if any_in(numbers, c)} | {window.end}


def malformed(n: int, address: str = CONTRACT) -> Emitted:
    return (address, [TOPIC0, word(n)], "0x")  # no data: a dead letter


def tick(n: int, address: str = CONTRACT) -> Emitted:
    return (address, [TOPIC0, word(n)], word(n * 7))


def children(chain: FakeChain) -> list[str]:
    return [
        "0x" + e["data"][-40:] for b in chain.canonical for e in b.logs if e["topics"][0] == CREATED
    ]


def mine(chain: FakeChain, rng: random.Random, blocks: int, dead: bool) -> None:
    """Blocks of ticks, bursts and gaps (windows grow over gaps and shrink at bursts), some
    with an undecodable tick (of a child already created, in the factory world)."""
    for _ in range(blocks):
        roll = rng.random()
        count = 0 if roll < 0.55 else rng.choice([1, 1, 2, 3, 9])
        known = children(chain) if chain.factory else [CONTRACT]
        if dead and known and rng.random() < 0.12:
            who = rng.choice(known)
            logs = [tick(rng.randrange(10**6), who) for _ in range(count)]
            logs.insert(rng.randint(0, len(logs)), malformed(rng.randrange(10**6), who))
            chain.mine_logs([logs])
        elif chain.factory:
            chain.mine([count])
        else:
            chain.mine_logs([[tick(rng.randrange(10**6)) for _ in range(count)]])


SHAPES = [
    # (interval, batch_size, start_block, offset, dead letters, factory)
    (1, 12, 0, 0, True, False),
    (3, 12, 0, 0, True, False),
    (4, 12, 5, 0, True, False),  # START_BLOCK mid-interval
    (7, 40, 3, 0, True, False),
    (50, 12, 0, 0, True, False),  # an interval longer than the batch
    (1_000, 200, 11, 0, True, False),  # longer than every range
    (5, 30, 2, 2**63 + 3, True, False),  # huge block numbers
    (4, 12, 0, 0, True, True),  # the factory world
    (9, 40, 1, 0, True, True),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("interval", "batch", "start", "offset", "dead", "factory"), SHAPES)
def test_every_commit_is_at_a_commit_point_whose_hash_the_read_returned(
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    interval: int,
    batch: int,
    start: int,
    offset: int,
    dead: bool,
    factory: bool,
) -> None:
    rng = random.Random(f"{seed}:{interval}:{batch}:{start}:{factory}")
    inner = FakeChain(salt=f"r17b{seed}", factory=factory)
    mine(inner, rng, rng.randint(60, 160), dead)
    chain: Any = Shifted(inner, offset) if offset else inner
    watched = Watched(interval)
    watch_the_relay(monkeypatch, watched)
    state = WatchedState()
    state.watched = watched
    sink, dead_sink = FakeSink(), FakeSink()
    specs = catalogue(factory=factory)
    relay = Relay(
        settings=settings(
            batch_size=batch,
            checkpoint_interval=interval,
            start_block=offset + start,
            contracts=() if factory else (CONTRACT,),
        ),
        specs=specs,
        chain=chain,
        state=state,
        records=state,
        sink=sink,
        dead_letters=dead_sink if dead else None,
        factory=(
            factory_of(parse_factory(f"{CONTRACT.lower()}:Created:child"), specs, "sim")
            if factory
            else None
        ),
    )
    head = offset + inner.head
    for _ in range(200):
        outcome = relay.run()
        assert outcome.error is None, outcome.summary.error
        if state.next_block == head + 1:
            break
    assert state.next_block == head + 1

    for blocks, window, piece_end, got in watched.reads:
        assert blocks.start <= window.start <= window.end <= blocks.end
        numbers = sorted({e.block_number for e in got.events} | {d.block_number for d in got.dead})
        points = old_points(blocks, interval, window, numbers)
        new = {piece_end(n) for n in numbers} | {window.end}
        assert new == points, (blocks, window, numbers)
        assert points <= set(got.hashes), (blocks, window, points - set(got.hashes))

    read_hashes: dict[int, str] = {}
    for *_, got in watched.reads:
        for n, h in got.hashes.items():
            read_hashes.setdefault(n, h)
    busy = {e.block_number for *_, got in watched.reads for e in got.events} | {
        d.block_number for *_, got in watched.reads for d in got.dead
    }
    every_point = {
        p
        for blocks, window, _, got in watched.reads
        for p in old_points(
            blocks,
            interval,
            window,
            sorted({e.block_number for e in got.events} | {d.block_number for d in got.dead}),
        )
    }
    assert watched.commits
    for at, block_hash in watched.commits:
        assert read_hashes.get(at) == block_hash, at
        assert inner.canonical[at - offset].hash == block_hash
        assert at in busy or at in every_point, f"commit at {at}: no commit point"
    moved = [at for at, _ in watched.commits]
    assert moved == sorted(moved)

    # Nothing lost, nothing twice: every relayed log once, published or dead-lettered.
    # (The factory itself is not relayed: RELAYER_CONTRACTS is empty in its world.)
    want = Counter(
        b.number + offset
        for b in inner.canonical[start:]
        for e in b.logs
        if e["topics"][0] != CREATED
    )
    ids = [a.message.attributes["event_id"] for a in sink.accepted]
    ids += [json.loads(d.message.data)["event_id"] for d in dead_sink.accepted]
    assert len(ids) == len(set(ids)), "published twice"
    got_blocks = Counter(int(a.message.attributes["block_number"]) for a in sink.accepted)
    got_blocks += Counter(
        int(json.loads(d.message.data)["block_number"]) for d in dead_sink.accepted
    )
    assert got_blocks == want
    if dead:
        assert dead_sink.accepted, "no dead letter in this world: the shape checks nothing"
