"""The state's own last write stands in for a read (conditional.Known), on the emulator: a
run's record writes and commits read nothing while nobody else wrote, and whatever another
writer did in between is read, never written over."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

import function.adapters.firestore.conditional as conditional_module
from devstack.stack.services import FirestoreEmulator
from function.adapters.firestore.state import FirestoreState
from function.core.blockrecords import Published, block_records
from function.core.checkpoint import Commit, Progress
from function.core.model import BlockRecord
from function.errors import LeaseLostError
from harness import PROJECT

NOW = datetime.now(UTC).replace(microsecond=0)
IDENTITY = {"chain_id": 31337, "contracts": ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]}


def _hash(number: int) -> str:
    return "0x" + f"{number:02x}" * 32


def _records(number: int) -> list[BlockRecord]:
    eid = f"31337:{_hash(number)}:0"
    done = Published(eid, number, _hash(number), 0, "0x" + "ab" * 32, "Tick", f"m{number}",
                     json.dumps({"event_id": eid}))  # fmt: skip
    return block_records([done], {}, run_id="r", now=NOW, ttl_days=1)


def _progress(number: int) -> Commit:
    return Commit(progress=Progress(number + 1, _hash(number), (), 1), lease_until=NOW)


@pytest.fixture
def states(firestore_reset: FirestoreEmulator) -> Iterator[tuple[FirestoreState, FirestoreState]]:
    relayer_id = f"known-{uuid.uuid4().hex[:8]}"
    client = firestore.Client(project=PROJECT)
    yield FirestoreState(client, relayer_id, IDENTITY), FirestoreState(client, relayer_id, IDENTITY)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = conditional_module.read

    def counted(ref: firestore.DocumentReference, what: str) -> conditional_module.Version:
        seen.append(what)
        return original(ref, what)

    monkeypatch.setattr(conditional_module, "read", counted)
    return seen


def test_chunks_of_a_run_alone_read_nothing(
    states: tuple[FirestoreState, FirestoreState], reads: list[str]
) -> None:
    run, _ = states
    grant = run.acquire("a", NOW, 30)
    assert grant is not None and reads == ["the relayer document"]
    for number in (3, 4, 5):
        run.records.write(grant, _records(number))
        run.commit(grant, NOW, _progress(number))
    assert reads == ["the relayer document"]
    assert (run.read() or {})["next_block"] == 6
    assert [r.number for r in run.records.read(0)] == [3, 4, 5]


def test_another_writer_in_between_is_read_and_kept(
    states: tuple[FirestoreState, FirestoreState], reads: list[str]
) -> None:
    run, skipped = states
    grant = run.acquire("a", NOW, 30)
    assert grant is not None
    run.commit(grant, NOW, _progress(3))
    skipped.count_skipped(NOW)  # another run's count moves the document under the cache
    run.records.write(grant, _records(4))
    run.commit(grant, NOW, _progress(4))
    doc = run.read() or {}
    assert doc["next_block"] == 5
    assert doc["totals"]["outcomes"]["skipped"] == 1  # not written over by the stale cache
    assert doc["totals"]["events_published"] == 2
    # The record write found the document moved and read it; the commit after it used that.
    assert reads == ["the relayer document", "the lease"]


def test_a_lease_taken_over_under_the_cache_stops_every_write(
    states: tuple[FirestoreState, FirestoreState],
) -> None:
    old_run, new_run = states
    old = old_run.acquire("a", NOW, 30)
    assert old is not None
    old_run.commit(old, NOW, _progress(3))
    new = new_run.acquire("b", NOW + timedelta(seconds=31), 30)  # a's lease expired
    assert new is not None
    with pytest.raises(LeaseLostError):
        old_run.records.write(old, _records(4))
    with pytest.raises(LeaseLostError):
        old_run.commit(old, NOW, _progress(4))
    assert [r.number for r in old_run.records.read(0)] == []
    assert (new_run.read() or {})["next_block"] == 4
