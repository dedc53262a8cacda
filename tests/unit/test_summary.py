"""The summary line: its message leads with the problem, its fields stay few (audit item 17)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from function.core.summary import RunSummary, headline, log_fields

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ABI_MISSING = "ABI_URI gs://heldout-abis/escrow.json does not exist: upload it or fix ABI_URI"


def summary(**fields: Any) -> RunSummary:
    return RunSummary("r1", "escrow", T0, **{"duration_s": 1.234, **fields})


HEADLINES = [
    ({"outcome": "failed", "error": ABI_MISSING}, f"run failed: {ABI_MISSING}"),
    (
        {"outcome": "ok", "from_block": 40, "to_block": 41, "events_published": 18},
        "run ok: blocks 40..41, 18 published, 0 duplicates skipped in 1.23 s",
    ),
    (
        {"outcome": "failed", "from_block": 5, "to_block": 9, "events_published": 3,
         "duplicates_skipped": 2, "error": "Pub/Sub did not accept 4 messages"},
        "run failed: Pub/Sub did not accept 4 messages "
        "(blocks 5..9, 3 published, 2 duplicates skipped in 1.23 s)",
    ),
    (
        {"outcome": "failed", "from_block": 5, "error": "eth_getLogs failed at 127.0.0.1:9"},
        "run failed: eth_getLogs failed at 127.0.0.1:9 (no block relayed from 5 in 1.23 s)",
    ),
    ({"outcome": "idle", "from_block": 42}, "run idle: nothing new from block 42 in 1.23 s"),
    ({"outcome": "skipped"}, "run skipped in 1.23 s"),
    (
        {"outcome": "skipped", "error": "another run took the lease"},
        "run skipped: another run took the lease",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "line"), HEADLINES)
def test_headline_leads_with_the_problem(fields: dict[str, Any], line: str) -> None:
    assert headline(summary(**fields)) == line
    assert "None" not in line


REQUIRED = [
    "outcome", "from_block", "to_block", "events_published", "duplicates_skipped", "duration_s",
]  # fmt: skip
FIELDS = [
    ({"outcome": "failed", "error": ABI_MISSING}, {"started": False}, REQUIRED),
    ({"outcome": "failed", "error": ABI_MISSING}, {}, [*REQUIRED, "run_id"]),
    ({"outcome": "ok", "head_block": 41}, {}, [*REQUIRED, "run_id", "head_block"]),
    ({"outcome": "ok"}, {"dead_letters": True}, [*REQUIRED, "run_id", "dead_lettered"]),
    ({"outcome": "ok", "dead_lettered": 2}, {}, [*REQUIRED, "run_id", "dead_lettered"]),
    ({"outcome": "ok", "interrupted": True}, {}, [*REQUIRED, "run_id", "interrupted"]),
    ({"outcome": "ok", "extra": {"reorg": {"depth": 2}}}, {}, [*REQUIRED, "run_id", "reorg"]),
    # The lag after the run (log-based metrics): only what the run learnt, never a 0 for it.
    (
        {"outcome": "ok", "to_block": 40, "head_block": 52},
        {},
        [*REQUIRED, "run_id", "head_block", "lag_blocks"],
    ),
    (
        {"outcome": "ok", "to_block": 40, "head_block": 52, "to_block_time": 1, "finished_at": T0},
        {},
        [*REQUIRED, "run_id", "head_block", "lag_blocks", "lag_seconds"],
    ),
    (
        {"outcome": "idle", "from_block": 41, "head_block": 52},
        {},
        [*REQUIRED, "run_id", "head_block"],
    ),
    ({"outcome": "ok", "to_block": 40, "to_block_time": 1}, {}, [*REQUIRED, "run_id"]),  # no end
]


@pytest.mark.parametrize(("fields", "options", "keys"), FIELDS)
def test_log_fields_say_each_thing_once(
    fields: dict[str, Any], options: dict[str, bool], keys: list[str]
) -> None:
    shown = log_fields(summary(**fields), **options)
    assert sorted(shown) == sorted(keys)
    assert "error" not in shown  # the message carries it


def test_the_lag_after_a_run_is_in_blocks_behind_the_head_and_seconds_behind_its_end() -> None:
    stamped = int(T0.timestamp()) - 30  # to_block was made 30 s before the run ended
    shown = log_fields(
        summary(outcome="ok", to_block=40, head_block=52, to_block_time=stamped, finished_at=T0)
    )
    assert (shown["lag_blocks"], shown["lag_seconds"]) == (12, 30.0)
    # A node behind the checkpoint (load-balanced RPC), a block stamped ahead of the clock:
    # no negative lag.
    ahead = summary(to_block=40, head_block=39, to_block_time=stamped + 60, finished_at=T0)
    assert (log_fields(ahead)["lag_blocks"], log_fields(ahead)["lag_seconds"]) == (0, 0.0)
