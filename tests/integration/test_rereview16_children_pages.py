"""Re-review 16 (RELAYER_FACTORY fixes), hostile: pages written ahead of the checkpoint's
commit (`FirestoreState._put_children`, `children.ahead`) and read back as the first `count`
(`children.load`), on the Firestore emulator: a commit that dies after its pages went
ahead, then a rewind and new children of another fork."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from google.cloud import firestore
from test_review16_factory_state import (
    NOW,
    _hash,
    _summary,
    child,
    client,
    fresh,
    state_of,
    stored,
)

import function.adapters.firestore.children as children_module
from function.adapters.firestore.state import FirestoreState
from function.core.checkpoint import Commit, Grant, Progress
from function.core.watch import Child, ChildWrite
from function.errors import LeaseLostError

__all__ = ["client"]  # the fixture, shared


class Crash(Exception):
    """The process dies here."""


def _commit(
    state: FirestoreState, grant: Grant, kept: int, kids: list[Child], to: int, **kw: Any
) -> None:
    write = ChildWrite(kids, kept, to)
    progress = Progress(to, _hash(to - 1), (), 0, **kw)
    state.commit(grant, NOW, Commit(progress=progress, children=write))


def _run(state: FirestoreState, run_id: str) -> Grant:
    grant = fresh(state).acquire(run_id, NOW, 30)
    assert grant is not None
    return grant


def test_pages_gone_ahead_of_a_commit_that_died_never_come_back(
    client: firestore.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_module, "PAGE_SIZE", 3)
    base = [Child(child(1), 1), Child(child(2), 2)]
    state = state_of(client)
    grant = _run(state, "a")
    _commit(state, grant, 0, base, 10)
    state.commit(grant, NOW, Commit(summary=_summary("a")))
    assert stored(state, "r0") == (base, 10)

    # Run b finds five children of a fork; its pages 1 and 2 go ahead, then it dies.
    orphans = [Child(child(0xF0 + n), 11 + n) for n in range(5)]
    put = FirestoreState._put_children

    def then_crash(self: FirestoreState, *args: Any, **kw: Any) -> None:
        put(self, *args, **kw)
        raise Crash

    monkeypatch.setattr(FirestoreState, "_put_children", then_crash)
    b = fresh(state)
    grant_b = b.acquire("b", NOW - timedelta(minutes=1), 1)  # expired by NOW: others may go
    assert grant_b is not None
    with pytest.raises(Crash):
        _commit(b, grant_b, 2, [*base, *orphans], 16)
    monkeypatch.setattr(FirestoreState, "_put_children", put)
    assert stored(state, "r1") == (base, 10)  # the junk pages count for nothing

    # Runs c: a reorganisation rewinds below child 2, then another fork's children.
    c = fresh(state)
    grant_c = _run(c, "c1")
    _commit(c, grant_c, 1, base[:1], 2, rewind=True)
    c.commit(grant_c, NOW, Commit(summary=_summary("c1")))
    assert stored(c, "r2") == (base[:1], 2)
    grant_c = _run(c, "c2")
    canonical = [Child(child(0xA0 + n), 3 + n) for n in range(3)]
    _commit(c, grant_c, 1, [base[0], *canonical], 9)
    c.commit(grant_c, NOW, Commit(summary=_summary("c2")))
    assert stored(c, "r3") == ([base[0], *canonical], 9)
    junk = c._children.document("000002").get().to_dict() or {}
    assert orphans[-1].address in junk.get("children", "")  # b's page is there, unread
    grant_c = _run(c, "c3")
    more = [Child(child(0xB0 + n), 20 + n) for n in range(4)]
    _commit(c, grant_c, 4, [base[0], *canonical, *more], 30)
    c.commit(grant_c, NOW, Commit(summary=_summary("c3")))
    assert stored(c, "r4") == ([base[0], *canonical, *more], 30)

    # And b, frozen since, writes nothing more: its pages stay out.
    with pytest.raises(LeaseLostError):
        _commit(b, grant_b, 2, [*base, *orphans], 16)
    assert stored(c, "r5") == ([base[0], *canonical, *more], 30)
