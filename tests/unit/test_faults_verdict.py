"""The fault campaign's verdict on chains that reorganise, on stale writers and on per-lease
fences, over hand-made evidence (devstack/faults/retractions.py, duplicates.py).
The campaign's own trials (tests/e2e/test_faults.py) show it catching real failures; these
tables pin down each rule."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devstack.faults.duplicates import takeovers
from devstack.faults.proc import Proc
from devstack.faults.retractions import records_match, retractions, stale_writes
from devstack.faults.world import Copy, World

ORPHAN, KEPT = "31337:0xaa:0", "31337:0xbb:0"


def _payload(event_id: str, block: int) -> dict[str, Any]:
    return {"event_id": event_id, "event": "Note", "block_number": block, "args": {"n": "1"},
            "removed": False}  # fmt: skip


WORLD = World("p", "ps", "fs", "rpc", "0xc", 1, 3, {KEPT: _payload(KEPT, 2)},
              orphans={ORPHAN: _payload(ORPHAN, 2)}, forks=(2,))  # fmt: skip


def copy(event_id: str, run: str, at: float, removed: bool = False, **data: Any) -> Copy:
    body = {**(WORLD.known[event_id]), "removed": removed, **data}
    return Copy(event_id, f"m-{run}-{at}", json.dumps(body).encode(), run, at, removed)


def proc(tmp_path: Path, tag: str, code: int) -> Proc:
    out, journal = tmp_path / f"{tag}.out", tmp_path / f"{tag}.journal"
    out.write_text("")
    return Proc(tag, 1, 0.0, out, journal, "none", "kill", code=code)


@pytest.mark.parametrize(
    ("live", "removed", "killed", "expected"),
    [
        ([("r0", 1)], [("r1", 2)], False, {"retracted": 1}),
        ([("r0", 1)], [], False, {"unretracted": 1}),
        ([("r0", 1)], [("r1", 2), ("r2", 3)], True, {"retracted": 1, "retraction_dups": 1}),
        ([("r0", 1)], [("r1", 2), ("r2", 3)], False,
         {"retracted": 1, "retraction_dups": 1, "retracted_wrong": 1}),
        ([("r0", 1)], [("r1", 2), ("r1", 3)], True,
         {"retracted": 1, "retraction_dups": 1, "retracted_wrong": 1}),
        ([], [("r1", 2)], False, {"retracted_wrong": 1}),  # never published live
    ],
    ids=["once", "never", "again-after-a-kill", "again-unexplained", "twice-by-one-run",
         "of-nothing-published"],
)  # fmt: skip
def test_every_orphan_published_live_is_retracted_exactly_once(
    tmp_path: Path,
    live: list[tuple[str, float]],
    removed: list[tuple[str, float]],
    killed: bool,
    expected: dict[str, int],
) -> None:
    procs = {t: proc(tmp_path, t, -9 if killed and t == "r1" else 0) for t in ("r0", "r1", "r2")}
    figures: Counter[str] = Counter()
    findings: list[str] = []

    retractions(WORLD, [copy(ORPHAN, r, t) for r, t in live],
                [copy(ORPHAN, r, t, removed=True) for r, t in removed], procs, figures,
                findings)  # fmt: skip

    assert {k: v for k, v in figures.items() if k != "orphans_published"} == expected
    assert bool(findings) == any(k in expected for k in ("unretracted", "retracted_wrong"))


def test_a_retraction_must_carry_the_live_data(tmp_path: Path) -> None:
    figures: Counter[str] = Counter()
    findings: list[str] = []
    procs = {"r0": proc(tmp_path, "r0", 0), "r1": proc(tmp_path, "r1", 0)}

    retractions(WORLD, [copy(ORPHAN, "r0", 1)],
                [copy(ORPHAN, "r1", 2, removed=True, args={"n": "2"})], procs, figures,
                findings)  # fmt: skip

    assert figures["retracted_wrong"] == 1


def test_a_canonical_event_is_never_retracted(tmp_path: Path) -> None:
    figures: Counter[str] = Counter()
    findings: list[str] = []

    retractions(WORLD, [copy(KEPT, "r0", 1)], [copy(KEPT, "r1", 2, removed=True)], {}, figures,
                findings)  # fmt: skip

    assert figures["retracted_wrong"] == 1 and "still canonical" in findings[0]


def _grant(lease: str, fence: int, t: float) -> dict[str, Any]:
    return {"what": "acquired", "lease": lease, "fence": fence, "t": t}


@pytest.mark.parametrize(
    ("journals", "expected"),
    [
        ({"a": [_grant("job", 1, 1.0)], "b": [_grant("job", 2, 5.0)]},
         {"a": 5.0, "b": float("inf")}),
        # two backfill tasks: fences of different leases never take one another over
        ({"a": [_grant("task1", 1, 1.0)], "b": [_grant("task2", 1, 2.0)]},
         {"a": float("inf"), "b": float("inf")}),
        ({"a": [_grant("job", 1, 1.0)], "b": [_grant("job", 2, 5.0)],
          "c": [_grant("job", 3, 7.0)]}, {"a": 5.0, "b": 7.0, "c": float("inf")}),
    ],
    ids=["one-lease", "two-tasks", "a-chain"],
)  # fmt: skip
def test_takeovers_count_fences_per_lease(
    journals: dict[str, list[dict[str, Any]]], expected: dict[str, float]
) -> None:
    assert takeovers(journals) == expected


@pytest.mark.parametrize(
    ("entries", "stale"),
    [
        ([{"what": "recorded", "t": 4.0, "event_ids": ["e"]}, {"what": "committed", "t": 4.5}],
         0),
        ([{"what": "recorded", "t": 6.0, "event_ids": ["e"]}], 1),
        ([{"what": "recorded", "t": 6.0, "event_ids": ["e"]}, {"what": "committed", "t": 6.5}],
         2),
        ([{"what": "recorded", "t": 6.0, "event_ids": []}], 0),  # nothing to write: no write
        ([{"what": "handed", "t": 6.0}], 0),  # publishing late is double publication's business
        ([{"what": "recorded", "t": 6.0, "started": 4.9, "event_ids": ["e"]}], 0),  # frozen after
    ],
    ids=["before", "a-record-after", "record-and-commit-after", "an-empty-record",
         "not-a-write", "begun-before"],
)  # fmt: skip
def test_a_run_whose_lease_was_taken_over_writes_nothing(
    entries: list[dict[str, Any]], stale: int
) -> None:
    figures: Counter[str] = Counter()
    findings: list[str] = []

    stale_writes({"a": entries}, {"a": 5.0}, figures, findings)

    assert figures["stale_writes"] == stale


def test_a_record_must_name_a_received_message() -> None:
    live = [copy(KEPT, "r0", 1)]
    figures: Counter[str] = Counter()
    findings: list[str] = []

    records_match([{"event_id": KEPT, "message_id": live[0].message_id, "state": "published"},
                   {"event_id": ORPHAN, "message_id": "nobody", "state": "published"},
                   {"event_id": ORPHAN, "message_id": "nobody", "state": "removed"}],
                  live, figures, findings)  # fmt: skip

    assert figures["records_wrong"] == 1
