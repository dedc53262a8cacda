"""Review of dcceffd: `recent_blocks` stored as texts `"{number}:{hash}"`.

The change promises: texts and the maps of earlier writers read the same, mixed lists read,
and anything else fails the run loudly with a StateError naming the field (and the fix).
Each test below fails on dcceffd for a defect of that promise, or of the docs the change
wrote. No emulator: the FirestoreState tests run the real adapter over an in-memory stand-in
for the reads (`conditional.read`) and batches (nothing leaves the process).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from function.adapters.firestore import conditional
from function.adapters.firestore.relayerdoc import grant_of
from function.adapters.firestore.state import FirestoreState
from function.core.lease import Lease
from function.core.model import BlockRef
from function.core.reorg import find_ancestor
from function.errors import StateError

NOW = datetime(2026, 12, 3, tzinfo=UTC)
LEASE = Lease("r", NOW, 1, NOW)
ROOT = Path(__file__).resolve().parents[2]


def _hash(n: int) -> str:
    return f"0x{n:064x}"


def _read(entries: Any) -> tuple[BlockRef, ...]:
    return grant_of("r", LEASE, {"next_block": 100, "recent_blocks": entries}).recent_blocks


# --- entries of neither form that escape as something other than a StateError -------------


@pytest.mark.parametrize(
    "entry",
    [
        {"number": None, "hash": _hash(7)},  # a hand edit that cleared the number
        {"number": "seven", "hash": _hash(7)},
        {"number": "0x7", "hash": _hash(7)},  # a number pasted in hex, as a node shows it
        {"number": [7], "hash": _hash(7)},
        f"\u00b2:{_hash(2)}",  # str.isdigit() says yes, int() says no
    ],
    ids=["map-number-None", "map-number-word", "map-number-hex", "map-number-list", "superscript"],
)
def test_an_entry_of_neither_form_fails_with_a_state_error_not_a_traceback(entry: Any) -> None:
    """`_ref` only checks that a map has the two keys, then calls int() on the number: a
    map whose number is no integer raises TypeError/ValueError, which the run reports as a
    bare library-style error (`TypeError: int() argument ...`) without naming the field or
    the fix. The text branch trusts `str.isdigit`, which is true for '²' that int() rejects."""
    with pytest.raises(StateError, match="recent_blocks"):
        _read([entry])


@pytest.mark.parametrize("raw", [5, True, 7.0], ids=["int", "bool", "float"])
def test_a_field_that_is_no_list_fails_with_a_state_error_naming_it(raw: Any) -> None:
    """`recent_blocks` set to a scalar in the console: `for r in 5` raises TypeError
    ('int' object is not iterable), not the StateError naming the field."""
    with pytest.raises(StateError, match="recent_blocks"):
        _read(raw)


# --- entries of neither form that are read silently as something else ----------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"number": 7, "hash": None},  # read as BlockRef(7, "None")
        f"7:{None}",  # what a writer with a missing hash formats: read as BlockRef(7, "None")
        {"number": 7.5, "hash": _hash(7)},  # truncated to block 7
        {"number": True, "hash": _hash(1)},  # read as block 1
        "7:not-a-hash",
    ],
    ids=["map-hash-None", "text-hash-None", "map-number-7.5", "map-number-bool", "text-garbage"],
)
def test_an_entry_that_names_no_block_is_refused_not_kept(entry: Any) -> None:
    """These are neither `"<number>:<hash>"` nor `{number, hash}` of a block, yet `_ref`
    keeps them (`str(None)` is "None", int(7.5) is 7, int(True) is 1, any text after the
    colon is a "hash"). Kept, they silently take a slot of the 128 and can never match the
    node's hash, so the reorganisation check loses that block without anyone being told:
    the opposite of "fails the run loudly"."""
    with pytest.raises(StateError, match="recent_blocks"):
        _read([entry])


@pytest.mark.parametrize(
    "text",
    [f"7:{_hash(0xABC).upper().replace('0X', '0x')}", f"7:{_hash(0xABC)} ", f"7:{_hash(0xABC)}\n"],
    ids=["upper-case", "trailing-space", "trailing-newline"],
)
def test_a_hand_edited_hash_still_finds_its_block_or_fails_loudly(text: str) -> None:
    """A hash pasted in upper case or with a trailing blank (a console hand edit) is kept
    as it is. The chain adapter lower-cases every hash (`adapters/chain.py`) and
    `find_ancestor` compares exactly, so that block is never recognised as the common
    ancestor: the rewind silently goes deeper (more blocks re-scanned) or, with no block
    record below, fails with "reorganised deeper than the blocks this relayer recorded"
    and needs a manual reset. Expected: read as the block's (lower-case) hash, or refused."""
    try:
        refs = _read([text])
    except StateError:
        return  # refused loudly: acceptable
    canonical = {7: _hash(0xABC)}  # the node: block 7 is still this one
    assert find_ancestor(refs, canonical) == BlockRef(7, _hash(0xABC)), refs


# --- the adapter: where the StateError is raised, and what it says --------------------------


class _Batch:
    def __init__(self, sink: list[_Batch]) -> None:
        self.sink = sink
        self.writes: list[Any] = []

    def create(self, ref: Any, fields: Any) -> None:
        self.writes.append(("create", ref.path, fields))

    def update(self, ref: Any, fields: Any, option: Any = None) -> None:
        self.writes.append(("update", ref.path, fields))

    def _add_write_pbs(self, pbs: Any) -> None:
        self.writes.append(("pb", list(pbs)))

    def commit(self, retry: Any = None, timeout: Any = None) -> list[Any]:
        self.sink.append(self)
        return [SimpleNamespace(update_time=NOW) for _ in self.writes]


@pytest.fixture
def firestore_of(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A client whose reads answer from `docs` (by path) and whose batches are recorded."""

    def make(docs: dict[str, dict[str, Any]]) -> tuple[Any, list[_Batch]]:
        client = firestore.Client(project="p", credentials=AnonymousCredentials())
        committed: list[_Batch] = []
        client.batch = lambda: _Batch(committed)  # type: ignore[method-assign]

        def read(ref: Any, what: str) -> conditional.Version:
            fields = docs.get(ref.path)
            return conditional.Version(ref, fields, NOW if fields is not None else None)

        monkeypatch.setattr(conditional, "read", read)
        return client, committed

    return make


BAD = {"next_block": 50, "chain_id": 1, "recent_blocks": ["garbage"]}


def test_a_run_that_cannot_read_recent_blocks_leaves_no_lease_behind(firestore_of: Any) -> None:
    """`FirestoreState.acquire` commits the lease first and builds the grant (which parses
    `recent_blocks`) after. The StateError then leaves a lease owned by a run that has
    already failed, with no grant to release it (`RelayRun.run` records and releases only
    with a grant, and `wiring.record_failure` acquires again and hits the same error, so
    `last_run` never shows the cause either). After the operator deletes the field as the
    message tells them, every run is skipped until that lease expires
    (RELAYER_LEASE_SECONDS, 300 s by default). Expected: a document that cannot be read is
    refused before anything is written."""
    client, committed = firestore_of({"relayers/r": BAD})
    store = FirestoreState(client, "r", {"chain_id": 1})
    with pytest.raises(StateError, match="recent_blocks"):
        store.acquire("run-1", NOW, 300.0)
    assert committed == [], [b.writes for b in committed]


def test_a_backfill_tasks_error_names_the_document_that_holds_the_field(
    firestore_of: Any,
) -> None:
    """A backfill task keeps its own `recent_blocks` in `relayers/{id}/tasks/backfill-A-B`
    (README, State in Firestore), read by the same `_ref`. Its error still says "the
    relayer document's recent_blocks ... delete the field": the operator deletes it from
    `relayers/{id}`, and the task fails again. Expected: the message names the document
    the bad field is in."""
    task = "backfill-10-20"
    client, _ = firestore_of({f"relayers/r/tasks/{task}": BAD})
    store = FirestoreState(client, "r", {"chain_id": 1}, task=task)
    with pytest.raises(StateError) as raised:
        store.acquire("run-1", NOW, 300.0)
    assert "recent_blocks" in str(raised.value)
    assert task in str(raised.value), str(raised.value)


# --- the docs the change wrote --------------------------------------------------------------


def test_the_rollback_procedure_covers_the_backfill_task_documents_too() -> None:
    """RUNBOOK, Roll back a deploy: "delete the field" in "the relayer document". The task
    documents of backfills (`relayers/{id}/tasks/backfill-A-B`) are written by the same
    `commit_fields`, so they hold the texts too, and an older build's backfill fails on
    them at its lease just the same. Following the runbook as written leaves every backfill
    of the older build failing."""
    text = (ROOT / "docs" / "RUNBOOK.md").read_text()
    paragraph = text[text.index("Another: `recent_blocks`") :]
    paragraph = paragraph[: paragraph.index("\n\n")]
    assert re.search(r"tasks|backfill", paragraph), paragraph
