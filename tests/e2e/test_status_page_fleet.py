"""The status page as on call finds it: a fleet of three relayers (one whose last runs failed,
one back from an hour-long outage and still catching up, one healthy follower), from stored
documents through `relayer_status` to the page, read as text and in headless Chromium.

What a person must see is asserted (who is unhealthy and why, first; the scales; the gap),
never pixels. The screenshots are kept in the test's directory and in $STATUS_PAGE_SHOTS.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from browser import Browser, browser, keep
from test_status_page import count, read

from function.config import Settings
from function.ops.status import relayer_status, report
from function.ops.status_page import render

__all__ = ["browser"]  # the fixture

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
FAILED = "1-0xfa11ed"
CAUGHT_OUT = "42161-0xbeef"
FOLLOWER = "137-0xc0ffee"
ERROR = "RPC eth.example.com answered HTTP 401: invalid project id"
STALE = (
    "stale: last successful look at the chain 250 s ago (limit 180 s = 3 x RELAYER_POLL_INTERVAL)"
)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def settings(rid: str, chain_id: int, *urls: str, **more: Any) -> Settings:
    return Settings(
        chain_id=chain_id,
        rpc_urls=urls,
        contracts=("0x5FbDB2315678afecb367f032d93F642f64180aa3",),
        abi_uri="gs://abis/escrow.json",
        pubsub_project="p",
        topic="settlement.events.v1",
        start_block=0,
        relayer_id=rid,
        **more,
    )


def entry(
    rid: str, outcome: str, ago_s: float, events: int, lag: int | None, took: float = 2.5
) -> dict[str, Any]:
    """A `recent_runs` entry as the state keeps it (`_history_entry`)."""
    return {
        "run_id": f"{rid[-4:]}{int(ago_s):06d}",
        "outcome": outcome,
        "started_at": ago(ago_s),
        "duration_s": took,
        "from_block": 100,
        "to_block": 120,
        "events_published": events,
        "lag_blocks": lag,
        "error": ERROR if outcome == "failed" else None,
    }


def summary(run: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The `last_run` a history entry came with."""
    finished = run["started_at"] + timedelta(seconds=run["duration_s"])
    return {**run, "finished_at": finished, **more}


def failed_relayer() -> tuple[Settings, dict[str, Any], int]:
    """Every minute for 40 minutes, then three runs that failed on the RPC key."""
    s = settings(FAILED, 1, "https://eth.example.com/v2/KEY1", "https://backup.example.org/K2")
    runs = [entry(FAILED, "ok", 60 * (40 - i) + 20, 5, 12) for i in range(37)]
    runs += [entry(FAILED, "failed", 60 * k + 20, 0, None, took=10.2) for k in (3, 2, 1)]
    doc = {
        "next_block": 1000,
        "last_run": summary(runs[-1]),
        "last_success_at": ago(250),
        "last_look_at": ago(250),
        "lease": {"owner": None, "expires_at": None, "fence": 41},
        "recent_runs": runs,
        "totals": {"events_published": 185, "runs": 40, "outcomes": {"ok": 37, "failed": 3}},
    }
    return s, doc, 1019


def caught_out_relayer() -> tuple[Settings, dict[str, Any], int]:
    """Half an hour of runs, an hour and 20 minutes without any, ten catching up since."""
    s = settings(CAUGHT_OUT, 42161, "https://arb1.arbitrum.io/rpc", confirmations=12)
    runs = [entry(CAUGHT_OUT, "ok", 7200 - 60 * i, 3, 12) for i in range(30)]
    runs += [entry(CAUGHT_OUT, "ok", 600 - 60 * i, 1000, 12000 - 1000 * i, 40) for i in range(10)]
    doc = {
        "next_block": 5000,
        "last_run": summary(runs[-1]),
        "last_success_at": ago(20),
        "last_look_at": ago(20),
        "lease": {
            "owner": "9c1d5e0a7b3f4e21",
            "expires_at": ago(-275),
            "fence": 88,
            "since": ago(25),
        },
        "rpc_limits": [{"host": "arb1.arbitrum.io", "blocks": 2000}],
        "recent_runs": runs,
        "totals": {"events_published": 10090, "runs": 40, "outcomes": {"ok": 40}},
    }
    return s, doc, 7411


def follower() -> tuple[Settings, dict[str, Any], int]:
    """Follow mode: 10-minute runs back to back for 8 hours, a look every 5 s, the current
    run 40 s in; the run before it rewound over a 3-block reorganisation."""
    s = settings(
        FOLLOWER, 137, "https://polygon.example.net/KEY3", poll_interval_s=5.0, run_s=600.0,
        lease_s=30.0,
    )  # fmt: skip
    runs = [entry(FOLLOWER, "ok", 600 * (48 - i) + 40, 20 + i % 7 * 9, 12, took=598)
            for i in range(48)]  # fmt: skip
    runs[-1]["reorg"] = {"depth": 3, "ancestor": 987, "retracted": 4}
    doc = {
        "next_block": 1000,
        "last_run": summary(runs[-1]),
        "last_success_at": ago(42),
        "last_look_at": ago(3),
        "lease": {
            "owner": "3f2a9c0d11e24b7a",
            "expires_at": ago(-26),
            "fence": 7,
            "since": ago(40),
            "follow_until": ago(-560),
        },
        "recent_runs": runs,
        "totals": {
            "events_published": 1884,
            "events_retracted": 4,
            "runs": 48,
            "outcomes": {"ok": 48},
        },
    }
    return s, doc, 1011


def fleet_body() -> dict[str, Any]:
    """The `/status` body, the relayers in the deployment's order: the healthy first."""
    made = [(follower(), 24.0), (caught_out_relayer(), 600.0), (failed_relayer(), 240.0)]
    return report([relayer_status(s, d, head, NOW, lag_s) for (s, d, head), lag_s in made])


def test_the_fleet_status_says_who_is_unhealthy_and_why() -> None:
    body = fleet_body()
    by_id = {r["relayer_id"]: r for r in body["relayers"]}
    assert not body["healthy"]
    assert by_id[FOLLOWER]["healthy"], by_id[FOLLOWER]["reasons"]
    assert by_id[FAILED]["reasons"] == [f"last run failed: {ERROR}", STALE]
    (lagging,) = by_id[CAUGHT_OUT]["reasons"]
    assert lagging.startswith("lagging: 2412 blocks behind the head, more than the next run")


def test_the_banner_names_the_unhealthy_first_the_stopped_before_the_lagging() -> None:
    text, tags = read(render(fleet_body(), NOW))

    banner = text.split("Updated ")[0]
    assert banner.index("✗ 2 of 3 relayers unhealthy") < banner.index(FAILED)
    assert banner.index(FAILED) < banner.index(ERROR) < banner.index(CAUGHT_OUT)
    assert banner.index(CAUGHT_OUT) < banner.index("lagging: 2412 blocks behind")
    assert banner.index("Healthy: ") < banner.index(FOLLOWER)
    cards = [text.index(f"{rid} {badge}") for rid, badge in (
        (FAILED, "✗ unhealthy"), (CAUGHT_OUT, "✗ unhealthy"), (FOLLOWER, "✓ healthy"))]  # fmt: skip
    assert cards == sorted(cards)
    links = [a.get("href") for t, a in tags if t == "a" and (a.get("href") or "").startswith("#")]
    assert links == ["#relayer-0", "#relayer-1"]  # each name leads to its card


def test_each_card_says_who_holds_the_lease_where_it_reads_and_what_reorganised() -> None:
    page = render(fleet_body(), NOW)
    text, _ = read(page)
    failed, caught_out, follower = (
        text[text.index(f"{rid} ✗") if rid != FOLLOWER else text.index(f"{rid} ✓") :]
        for rid in (FAILED, CAUGHT_OUT, FOLLOWER)
    )
    assert "Lease free (no run in progress)" in failed
    assert f"Last run ✗ failed · run 11ed{80:06d} · finished 1 min ago" in failed
    assert "eth.example.com (every run starts here); fails over to backup.example.org" in failed
    assert "KEY1" not in page and "K2" not in page and "KEY3" not in page
    assert "Lease run 9c1d5e0a7b3f4e21 , since 25 s ago , expires in 4 min" in caught_out
    assert "Learned log spans arb1.arbitrum.io ≤ 2,000 blocks" in caught_out
    assert "expires in 26 s ; follows the chain for 9 min more" in follower
    assert (
        "Reorganisations 10 min ago , run ffee000640 : 3 blocks deep, back to block 987, "
        "4 retracted 4 events retracted in all"
    ) in follower


def test_the_charts_have_a_time_axis_a_labelled_scale_and_the_gap() -> None:
    text, tags = read(render(fleet_body(), NOW))
    caught_out = text[text.index(f"{CAUGHT_OUT} ✗") : text.index(f"{FOLLOWER} ✓")]

    assert "Lag after each run (blocks)" in caught_out
    assert "Events published (events)" in caught_out and "Run duration (seconds)" in caught_out
    assert "no run for 1 h 20 min" in caught_out  # on the chart, over the gap
    assert "No run for 1 h 20 min: 2026-05-01 10:29 to 11:50 UTC" in caught_out
    assert "09:58 now 10:30 11:00 11:30" in caught_out  # the oldest run, now, and the hours
    assert "12 confirmations: normal" in caught_out and "lag limit 1012" in caught_out
    assert count(tags, "rect", "gap") == 3  # the one gap, in each of the three charts
    assert count(tags, "rect", "reorg") == 1  # the follower's reorganisation, on its lag chart
    # a follower's runs follow one another: no gap, though it looks every 5 s
    assert "No run for" not in text[text.index(f"{FOLLOWER} ✓") :]


def test_a_steady_lag_at_the_confirmations_is_drawn_below_the_top_at_the_line() -> None:
    page = render(fleet_body(), NOW)
    follower = page[page.index(f">{FOLLOWER}<") :]
    lag_chart = follower[: follower.index("</svg>")]
    heights = {
        float(h) for h in re.findall(r'class="bar (?:ok|idle)"[^>]*height="([\d.]+)"', lag_chart)
    }
    (line,) = re.findall(r'<line class="level"[^>]*y1="([\d.]+)"', lag_chart)
    assert heights == {48.0}  # 12 blocks on a scale of 25: half-height, not a full bar
    assert float(line) == 100 - 48.0  # and the confirmations' line runs along their tops


def test_the_fleet_in_a_real_browser(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "status.html"
    page.write_text(render(fleet_body(), NOW))
    browser.open(page.as_uri(), 1280, 2000, mobile=False)  # tall: each card shot whole

    banner = browser.text(".summary")
    assert banner.splitlines()[0] == "✗ 2 of 3 relayers unhealthy"
    assert banner.splitlines()[1] == f"{FAILED}: last run failed: {ERROR}; {STALE}"
    assert banner.splitlines()[2].startswith(f"{CAUGHT_OUT}: lagging: 2412 blocks behind")
    assert banner.splitlines()[-1] == f"Healthy: {FOLLOWER}"
    assert browser.text("h2") == FAILED  # the first card
    seen = browser.text()
    assert "No run for 1 h 20 min: 2026-05-01 10:29 to 11:50 UTC" in seen
    assert "no run for 1 h 20 min" in seen and "12 confirmations: normal" in seen
    # the gap takes its share of the axis: 80 of the 120 minutes shown
    share = browser.js(
        "const g = document.querySelectorAll('section')[1].querySelector('rect.gap');"
        "return g.getBoundingClientRect().width / g.ownerSVGElement.getBoundingClientRect().width"
    )
    assert 0.6 < share < 0.7, share
    assert browser.js("return document.documentElement.scrollWidth") <= 1280
    shots = [tmp_path / "status-fleet-desktop.png", tmp_path / "status-fleet-banner.png"]
    browser.screenshot(shots[0])
    browser.shot_of(".summary", shots[1])
    for i, name in enumerate(("failed", "outage", "healthy")):
        shots.append(tmp_path / f"status-fleet-card-{name}.png")
        browser.shot_of(f'[aria-labelledby="relayer-{i}"]', shots[-1])

    browser.open(page.as_uri(), 390, 2400, mobile=True)  # a phone's width, tall for the shots
    assert browser.js("return document.documentElement.scrollWidth") <= 390  # no sideways
    assert browser.text(".summary").splitlines()[1].startswith(FAILED)
    shots.append(tmp_path / "status-fleet-phone.png")
    browser.screenshot(shots[-1])
    shots.append(tmp_path / "status-fleet-phone-outage.png")
    browser.shot_of('[aria-labelledby="relayer-1"]', shots[-1])
    shots.append(tmp_path / "status-fleet-phone-outage-charts.png")
    browser.shot_of('[aria-labelledby="relayer-1"] .charts', shots[-1])
    for shot in shots:
        assert shot.stat().st_size > 0
        keep(shot)


def test_in_a_large_fleet_the_healthy_cards_start_folded() -> None:
    s, doc, head = follower()
    crashed = {**doc, "lease": {**doc["lease"], "expires_at": ago(30)}, "last_look_at": ago(400)}
    healthy = [relayer_status(replace(s, relayer_id=f"ok-{i}"), doc, head, NOW) for i in range(5)]
    stuck = relayer_status(replace(s, relayer_id="stuck"), crashed, head, NOW)
    text, tags = read(render(report([*healthy, stuck]), NOW))

    assert count(tags, "details") == 5 and count(tags, "section") == 1
    assert not any("open" in a for t, a in tags if t == "details")
    assert text.index("stuck ✗ unhealthy") < text.index("ok-0 ✓ healthy")
    assert (
        "Lease expired 30 s ago : run 3f2a9c0d11e24b7a did not release it (a crash or a kill); "
        "the next run takes it"
    ) in text
