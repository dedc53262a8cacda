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
]


@pytest.mark.parametrize(("fields", "options", "keys"), FIELDS)
def test_log_fields_say_each_thing_once(
    fields: dict[str, Any], options: dict[str, bool], keys: list[str]
) -> None:
    shown = log_fields(summary(**fields), **options)
    assert sorted(shown) == sorted(keys)
    assert "error" not in shown  # the message carries it
