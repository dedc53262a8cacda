"""Health from the stored document (function.ops.status, docs/CONTRACT.md §5): staleness
counts looks at the chain, and a follower shows as one."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.sim.events import settings
from function.ops.status import metrics_text, relayer_status

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def doc(**fields: Any) -> dict[str, Any]:
    return {"next_block": 10, "last_run": {"outcome": "ok"}, **fields}


FOLLOWING = settings(poll_interval_s=5.0, run_s=60.0, lease_s=30.0)


def test_a_follower_looking_every_poll_interval_is_healthy_between_its_summaries() -> None:
    # one-minute schedule, RELAYER_RUN_SECONDS=60: the last summary is ~55 s old, the last look 4 s
    lease = {
        "owner": "r1", "expires_at": NOW + timedelta(seconds=26), "fence": 3,
        "since": ago(55), "follow_until": NOW + timedelta(seconds=5),
    }  # fmt: skip
    entry = relayer_status(
        FOLLOWING, doc(last_success_at=ago(55), last_look_at=ago(4), lease=lease), 20, NOW
    )
    assert entry["healthy"], entry["reasons"]
    assert entry["last_look_at"] == "2030-01-01T11:59:56Z"
    assert entry["following"] is True
    assert entry["following_since"] == "2030-01-01T11:59:05Z"
    assert entry["following_until"] == "2030-01-01T12:00:05Z"
    text = metrics_text([entry]).decode()
    assert 'relayer_following{relayer_id="sim"} 1.0' in text


def test_no_look_for_three_poll_intervals_is_stale() -> None:
    entry = relayer_status(FOLLOWING, doc(last_success_at=ago(55), last_look_at=ago(16)), 20, NOW)
    assert not entry["healthy"] and not entry["following"]
    assert entry["reasons"] == [
        "stale: last successful look at the chain 16 s ago (limit 15 s = 3 x RELAYER_POLL_INTERVAL)"
    ]
    assert 'relayer_following{relayer_id="sim"} 0.0' in metrics_text([entry]).decode()


def test_state_of_an_older_version_falls_back_to_the_last_success() -> None:
    older = settings(poll_interval_s=60.0)
    assert relayer_status(older, doc(last_success_at=ago(170)), 20, NOW)["healthy"]
    stale = relayer_status(older, doc(last_success_at=ago(190)), 20, NOW)
    assert stale["reasons"][0].startswith("stale: last successful look at the chain 190 s ago")
    # a newer look wins over an older success, and an older look loses to a newer success
    assert relayer_status(older, doc(last_success_at=ago(400), last_look_at=ago(5)), 1, NOW)[
        "healthy"
    ]
    assert relayer_status(older, doc(last_success_at=ago(5), last_look_at=ago(400)), 1, NOW)[
        "healthy"
    ]


def test_a_lease_that_expired_or_a_one_batch_run_is_not_following() -> None:
    expired = {"owner": "r1", "expires_at": ago(1), "fence": 3, "follow_until": NOW}
    batch = {"owner": "r2", "expires_at": NOW + timedelta(seconds=60), "fence": 4}
    for lease in (expired, batch):
        entry = relayer_status(FOLLOWING, doc(last_look_at=ago(1), lease=lease), 20, NOW)
        assert entry["following"] is False and entry["following_since"] is None


def test_a_follower_that_took_over_after_a_failed_run_is_healthy_while_it_looks() -> None:
    # the run before failed 50 s ago; the follower after it has looked every poll interval
    # since, and its own summary comes only at the end of its window (an hour on)
    failed = {"outcome": "failed", "error": "RPC 503", "finished_at": ago(50)}
    lease = {
        "owner": "r2", "expires_at": NOW + timedelta(seconds=26), "fence": 4,
        "since": ago(48), "follow_until": NOW + timedelta(seconds=3550),
    }  # fmt: skip
    entry = relayer_status(
        FOLLOWING,
        doc(last_run=failed, last_success_at=ago(120), last_look_at=ago(3), lease=lease),
        20,
        NOW,
    )
    assert entry["healthy"], entry["reasons"]
    # no look since the failure: the failure stands
    entry = relayer_status(
        FOLLOWING, doc(last_run=failed, last_success_at=ago(120), last_look_at=ago(60)), 20, NOW
    )
    assert not entry["healthy"] and any("last run failed" in r for r in entry["reasons"])


# --- The lag a relayer may have (RELAYER_MAX_LAG_BLOCKS and its default) ----------------------

ETH = settings(confirmations=12, batch_size=100, poll_interval_s=60.0)


def looked(**fields: Any) -> dict[str, Any]:
    return doc(last_success_at=ago(30), last_look_at=ago(30), **fields)


@pytest.mark.parametrize(
    ("overrides", "head", "next_block", "last_run", "lagging"),
    [
        # steady state: a run leaves the confirmations unrelayed, and the chain moves on
        ({}, 1011, 1000, {"outcome": "ok"}, None),
        # 50 blocks behind the confirmations: the next run (100 blocks) catches up
        ({}, 1061, 1000, {"outcome": "ok"}, None),
        # exactly one batch beyond the confirmations: still caught up by the next run
        ({}, 1111, 1000, {"outcome": "ok"}, None),
        # one block more: the next run cannot catch up
        ({}, 1112, 1000, {"outcome": "ok"}, "lagging: 113 blocks behind the head, more than"),
        # an explicit limit wins, both ways
        ({"max_lag_blocks": 50}, 1061, 1000, {"outcome": "ok"}, "lagging: 62 blocks behind"),
        ({"max_lag_blocks": 5000}, 3000, 1000, {"outcome": "ok"}, None),
        # RELAYER_HEAD=finalized: the finality gap is the chain's, the last run's head counts
        ({"head": "finalized"}, 5000, 1000, {"outcome": "ok", "head_block": 1011}, None),
        (
            {"head": "finalized"},
            5000,
            1000,
            {"outcome": "ok", "head_block": 1200},
            "lagging: 201 blocks behind the finalized head of the last run, more",
        ),
        ({"head": "safe"}, 5000, 1000, {"outcome": "ok"}, None),  # no head seen by a run
        ({"head": "safe", "max_lag_blocks": 50}, 1061, 1000, {"outcome": "ok"}, "lagging: 62"),
    ],
)
def test_the_lag_a_relayer_may_have(
    overrides: dict[str, Any],
    head: int,
    next_block: int,
    last_run: dict[str, Any],
    lagging: str | None,
) -> None:
    s = replace(ETH, **overrides)
    entry = relayer_status(s, looked(next_block=next_block, last_run=last_run), head, NOW)
    if lagging is None:
        assert entry["healthy"], entry["reasons"]
    else:
        (reason,) = entry["reasons"]
        assert reason.startswith(lagging), reason
    assert entry["max_lag_blocks"] == overrides.get("max_lag_blocks", 112)
    assert entry["max_lag_default"] is ("max_lag_blocks" not in overrides)


def test_the_default_limit_names_its_rule() -> None:
    entry = relayer_status(ETH, looked(next_block=1000), 1200, NOW)
    assert entry["reasons"] == [
        "lagging: 201 blocks behind the head, more than the next run can catch up (limit 112 = "
        "RELAYER_CONFIRMATIONS 12 + RELAYER_BATCH_SIZE 100; RELAYER_MAX_LAG_BLOCKS overrides)"
    ]
    assert entry["confirmations"] == 12 and entry["poll_interval_s"] == 60.0
    assert 'relayer_max_lag_blocks{relayer_id="sim"} 112.0' in metrics_text([entry]).decode()


# --- What the page shows beyond health -----------------------------------------------------


def test_the_lease_holder_is_shown_with_its_times() -> None:
    lease = {
        "owner": "3f2a9c", "expires_at": NOW + timedelta(seconds=26), "fence": 7,
        "since": ago(55), "follow_until": NOW + timedelta(seconds=5),
    }  # fmt: skip
    entry = relayer_status(FOLLOWING, doc(last_look_at=ago(4), lease=lease), 20, NOW)
    assert entry["lease"] == {
        "owner": "3f2a9c", "held": True, "since": "2030-01-01T11:59:05Z",
        "expires_at": "2030-01-01T12:00:26Z", "follow_until": "2030-01-01T12:00:05Z", "fence": 7,
    }  # fmt: skip
    released = {"owner": None, "expires_at": None, "fence": 7}
    free = relayer_status(FOLLOWING, doc(last_look_at=ago(4), lease=released), 20, NOW)
    assert free["lease"]["held"] is False and free["lease"]["fence"] == 7
    expired = {**lease, "expires_at": ago(1)}
    gone = relayer_status(FOLLOWING, doc(last_look_at=ago(4), lease=expired), 20, NOW)
    assert gone["lease"]["held"] is False and gone["lease"]["owner"] == "3f2a9c"


def test_endpoints_are_shown_by_host_with_their_learned_limits_and_never_by_url() -> None:
    keyed = settings(
        rpc_urls=(
            "https://user:pw@eth.example.com/v2/SECRETKEY",
            "wss://backup.example.org/x?k=K2",
        ),
    )
    limits = [{"host": "eth.example.com", "blocks": 2000}]
    entry = relayer_status(keyed, doc(last_look_at=ago(1), rpc_limits=limits), 20, NOW)
    assert entry["rpc_hosts"] == ["eth.example.com", "backup.example.org"]
    assert entry["rpc_limits"] == [{"host": "eth.example.com", "blocks": 2000}]
    shown = json.dumps(entry) + metrics_text([entry]).decode()
    assert "SECRETKEY" not in shown and "pw" not in shown and "K2" not in shown


def test_reorganisations_come_from_the_runs_that_kept_them_newest_first() -> None:
    older = {"run_id": "a1", "started_at": ago(600), "outcome": "ok",
             "reorg": {"depth": 3, "ancestor": 117, "retracted": 4}}  # fmt: skip
    plain = {"run_id": "b2", "started_at": ago(300), "outcome": "ok"}
    shallow = {"depth": 0, "retracted": 2, "orphaned_above_checkpoint": [130, 131]}
    last = {"run_id": "c3", "started_at": ago(60), "finished_at": ago(59), "outcome": "ok",
            "reorg": shallow}  # fmt: skip
    state = doc(last_look_at=ago(1), last_run=last, recent_runs=[older, plain, {**last}])
    entry = relayer_status(FOLLOWING, state, 20, NOW)
    assert entry["reorgs"] == [
        {"run_id": "c3", "at": "2030-01-01T11:59:00Z", "depth": 0, "ancestor": None,
         "retracted": 2, "orphaned_above_checkpoint": [130, 131]},
        {"run_id": "a1", "at": "2030-01-01T11:50:00Z", "depth": 3, "ancestor": 117,
         "retracted": 4, "orphaned_above_checkpoint": []},
    ]  # fmt: skip
    assert relayer_status(FOLLOWING, doc(last_look_at=ago(1)), 20, NOW)["reorgs"] == []
