"""Health from the stored document (function.ops.status, docs/CONTRACT.md §5): staleness
counts looks at the chain, and a follower shows as one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

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
