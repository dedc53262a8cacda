"""The README's reliability table from a campaign's figures (devstack/faults/markdown.py)."""

from __future__ import annotations

from devstack.faults.markdown import rows


def test_one_row_per_kind_that_ran_and_the_total() -> None:
    body = {"scenarios": {
        "crash@after_lease": {"trials": 2, "runs": 6, "kills": 4, "events": 120, "messages": 121,
                              "dup_events": 1},
        "crash@after_plan": {"trials": 1, "runs": 3, "kills": 2, "events": 60, "messages": 60},
        "reorg@getlogs": {"trials": 1, "runs": 4, "events": 3, "messages": 7,
                          "orphans_published": 2, "retracted": 2},
        "backfills": {"trials": 1, "runs": 5, "events": 60, "messages": 62, "dup_events": 2,
                      "dup_unexplained": 2},
        "TOTAL": {"trials": 99},
    }}  # fmt: skip

    got = rows(body)

    assert got[2] == "| kill at every named step | 3 | 9 | 6 | 180 | 181 | 0 | 1 | 0 | – | 0 |"
    assert got[3].startswith("| 4. reorganisation between") and "| 2 / 2 | 0 |" in got[3]
    assert got[4].endswith("| 0 | – | dup_unexplained 2 |")  # a violation is named
    assert got[-1] == ("| **total** | 5 | 18 | 6 | 243 | 250 | 0 | 3 | 0 | 2 / 2 "
                       "| dup_unexplained 2 |")  # fmt: skip
    assert len(got) == 6  # header, rule, three kinds, total: kinds that did not run are left out
