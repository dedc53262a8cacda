"""The status page at `GET /`: `render` on hand-made bodies, then the real page in a real
browser (Debian's headless Chromium, `browser.Browser`) against anvil and the emulators, as
a person sees it. Screenshots are kept in `artifacts/` (and in $STATUS_PAGE_SHOTS when set).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import requests
from browser import Browser, browser, keep

from devstack.demo import Function
from function.ops import status_page
from function.ops.status import html_page
from harness import ROOT, Deployment, run_main

__all__ = ["browser"]  # the fixture

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
ARTIFACTS = ROOT / "artifacts"


def iso(delta_s: float) -> str:
    return (NOW - timedelta(seconds=delta_s)).isoformat().replace("+00:00", "Z")


def run(outcome: str, ago_s: float, events: int, lag: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": f"r{ago_s:.0f}",
        "outcome": outcome,
        "started_at": iso(ago_s),
        "duration_s": 1.25,
        "from_block": 100,
        "to_block": 120,
        "events_published": events,
        "lag_blocks": lag,
        "error": None,
        **extra,
    }


def relayer(rid: str = "31337-0xabc", **overrides: Any) -> dict[str, Any]:
    runs = [run("ok", 300, 20, 0), run("idle", 240, 0, 0), run("ok", 60, 7, 2)]
    entry: dict[str, Any] = {
        "relayer_id": rid,
        "chain_id": 31337,
        "contracts": ["0x5FbDB2315678afecb367f032d93F642f64180aa3"],
        "topic": "settlement.events.v1",
        "next_block": 121,
        "head_block": 121,
        "lag_blocks": 1,
        "lag_seconds": 12.0,
        "last_run": runs[-1],
        "last_success_at": iso(59),
        "totals": {
            "events_published": 27,
            "events_retracted": 0,
            "events_deadlettered": 0,
            "runs": 3,
            "outcomes": {"ok": 2, "idle": 1, "skipped": 0, "failed": 0},
        },
        "healthy": True,
        "reasons": [],
        "recent_runs": runs,
    }
    entry.update(overrides)
    return entry


class _Text(HTMLParser):
    """The page's text as a reader gets it (no tags, no CSS), and its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def read(page: str) -> tuple[str, list[tuple[str, dict[str, str | None]]]]:
    parser = _Text()
    parser.feed(page)
    return re.sub(r"\s+", " ", " ".join(parser.parts)), parser.tags


def count(tags: list[tuple[str, dict[str, str | None]]], tag: str, css: str = "") -> int:
    classes = [(a.get("class") or "").split() for t, a in tags if t == tag]
    return sum(1 for c in classes if not css or css in c)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59.4, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (7500, "2 h 5 min"),
        (90000, "1 d 1 h"),
    ],
)
def test_duration_reads_like_a_person_says_it(seconds: float, text: str) -> None:
    assert status_page.duration(seconds) == text


@pytest.mark.parametrize(
    ("blocks", "seconds", "text"),
    [
        (0, 0, "0 blocks · caught up"),
        (1, 12, "1 block · 12 s behind"),
        (40, 180, "40 blocks · 3 min behind"),
        (5, None, "5 blocks · time unknown"),
        (None, None, "unknown (chain head unavailable)"),
    ],
)
def test_lag_in_blocks_and_in_time(blocks: int | None, seconds: float | None, text: str) -> None:
    assert status_page.lag_text(blocks, seconds) == text


def test_a_healthy_relayer() -> None:
    page = status_page.render({"healthy": True, "relayers": [relayer()]}, NOW)
    text, tags = read(page)

    assert page.startswith("<!doctype html>")
    assert '<meta name="viewport" content="width=device-width,initial-scale=1">' in page
    assert "✓ Relayer healthy" in text and "✓ healthy" in text and "unhealthy" not in text
    assert "31337-0xabc" in text and "0x5FbDB2315678afecb367f032d93F642f64180aa3" in text
    assert "1 block · 12 s behind" in text
    assert "Last success 59 s ago" in text
    assert "Runs 3 (2 ok, 1 idle)" in text
    assert count(tags, "h1") == 1 and count(tags, "h2") == 1
    assert count(tags, "svg") == 3 and count(tags, "rect", "bar") == 3 * 3  # lag, events, time
    assert all(a.get("aria-label") for t, a in tags if t == "svg")
    assert count(tags, "th") == 6 and all(a.get("scope") == "col" for t, a in tags if t == "th")
    assert count(tags, "tr") == 1 + 3  # header and one row per run, newest first
    assert text.index("1 min ago") < text.index("4 min ago") < text.index("5 min ago")
    assert not re.search(r"\b(src|href)=\"?(https?:)?//", page)  # no external asset
    assert count(tags, "script") == 0 and count(tags, "link") == 0


def test_an_unhealthy_relayer_says_why() -> None:
    failed = run("failed", 10, 0, None, error="CHAIN_ID=5 but the node at host is chain 31337")
    entry = relayer(
        healthy=False,
        reasons=["last run failed: CHAIN_ID=5 but the node at host is chain 31337"],
        lag_blocks=40,
        lag_seconds=180.0,
        recent_runs=[*relayer()["recent_runs"], failed],
    )
    page = status_page.render({"healthy": False, "relayers": [entry]}, NOW)
    text, tags = read(page)

    assert "✗ Relayer unhealthy" in text and "✗ unhealthy" in text
    assert "last run failed: CHAIN_ID=5 but the node at host is chain 31337" in text
    assert "40 blocks · 3 min behind" in text
    assert "✗ failed" in text  # the failed run's outcome, not only a red colour
    assert count(tags, "rect", "bar") == 3 * 4
    assert count(tags, "rect", "none") == 1  # the failed run's lag is unknown: a pale bar
    assert "UNHEALTHY" in page.split("</title>")[0]


def test_a_relayer_that_never_ran() -> None:
    entry = relayer(
        healthy=False,
        reasons=["no run has recorded state yet"],
        head_block=None,
        lag_blocks=None,
        lag_seconds=None,
        last_run=None,
        last_success_at=None,
        recent_runs=[],
        totals={"events_published": 0, "runs": 0, "outcomes": {}},
    )
    text, tags = read(status_page.render({"healthy": False, "relayers": [entry]}, NOW))

    assert "no run has recorded state yet" in text and "No runs yet." in text
    assert "Last success never" in text and "Head block unavailable" in text
    assert "unknown (chain head unavailable)" in text
    assert count(tags, "svg") == 0 and count(tags, "table") == 0


def test_two_relayers_one_unhealthy() -> None:
    body = {
        "healthy": False,
        "relayers": [relayer("1-0xaaa"), relayer("2-0xbbb", healthy=False, reasons=["stale"])],
    }
    text, tags = read(html_page(body, NOW))

    assert "✗ 1 of 2 relayers unhealthy 2-0xbbb : stale Healthy: 1-0xaaa" in text
    # the unhealthy relayer's card comes first, whatever the deployment's order
    cards = text.split("Updated ")[1]
    assert cards.index("2-0xbbb") < cards.index("✗ unhealthy") < cards.index("stale")
    assert cards.index("stale") < cards.index("1-0xaaa") < cards.index("✓ healthy")
    assert count(tags, "h2") == 2 and count(tags, "section") == 2
    ids = [a["id"] for _, a in tags if a.get("id")]
    assert len(ids) == len(set(ids))
    assert (
        "✓ All 2 relayers healthy"
        in read(
            html_page({"healthy": True, "relayers": [relayer("1-0xaaa"), relayer("2-0xbbb")]}, NOW)
        )[0]
    )


def test_everything_shown_is_escaped() -> None:
    evil = '<script>alert("id")</script>'
    entry = relayer(
        evil,
        healthy=False,
        topic="<b>topic</b>",
        reasons=['<img src=x onerror="alert(1)">'],
        recent_runs=[run("failed", 5, 0, None, error="</td><script>alert(2)</script>")],
    )
    page = status_page.render({"healthy": False, "relayers": [entry]}, NOW)
    text, tags = read(page)

    assert count(tags, "script") == 0 and count(tags, "img") == 0 and count(tags, "b") == 0
    assert evil in text and "</td><script>alert(2)</script>" in text
    assert '<img src=x onerror="alert(1)">' in text
    assert "&lt;script&gt;" in page


# --- In a real browser --------------------------------------------------------------------


def relay(env: dict[str, str], code: int) -> None:
    done = run_main(env)
    assert done.code == code, done.stdout + done.stderr


def test_the_page_in_a_real_browser(browser: Browser, deployment: Deployment) -> None:
    env = deployment.env(RELAYER_BATCH_SIZE="3", LOG_FORMAT="text")
    deployment.make_activity(20, blocks=4)
    relay(env, 0)  # blocks 0-2
    deployment.make_activity(10, blocks=2, seed=2)
    for _ in range(3):
        relay(env, 0)  # 3-5, 6-7, then idle
    relay({**env, "CHAIN_ID": "5", "RELAYER_ID": deployment.relayer_id}, 2)
    deployment.mine(5)
    ARTIFACTS.mkdir(exist_ok=True)

    status = Function("status", env)
    try:
        body = requests.get(status.url("/status"), timeout=30).json()
        (entry,) = body["relayers"]
        runs = entry["recent_runs"]
        assert [r["outcome"] for r in runs] == ["ok", "ok", "ok", "idle", "failed"]
        assert requests.get(status.url("/"), timeout=30).status_code == 503  # still readable

        browser.open(status.url("/"), 390, 844, mobile=True)
        assert browser.js("return window.innerWidth") == 390
        seen = browser.text()
        assert deployment.relayer_id in seen
        assert "✗ Relayer unhealthy" in seen and "✗ unhealthy" in seen
        assert "last run failed: CHAIN_ID=5" in seen
        assert re.search(r"Lag\n5 blocks · \d+ s behind", seen), seen
        assert f"Head block\n{deployment.head()}" in seen
        assert "Events published\n30" in seen
        rows = [line for line in seen.splitlines() if " ago " in line]
        assert len(rows) == len(runs)  # one table row per run, newest first
        assert re.fullmatch(r"\d+ s ago ✗ failed 0 [\d.]+ s", rows[0]), rows
        assert re.fullmatch(r"\d+ s ago ✓ ok 6 [\d.]+ s", rows[-1]), rows
        assert "Blocks" not in browser.text("table")  # a column hidden at phone width
        assert len(browser.find("svg[aria-label]")) == 3
        assert len(browser.find("svg rect.bar")) == 3 * len(runs)
        assert "Lag after each run (blocks)" in seen and "now" in seen
        assert browser.js("return document.documentElement.scrollWidth") <= 390  # no sideways
        browser.screenshot(ARTIFACTS / "status-page-phone.png")
        keep(ARTIFACTS / "status-page-phone.png")

        browser.open(status.url("/"), 1280, 900, mobile=False)
        assert "Blocks" in browser.text("table") and "0–2" in browser.text("table")
        assert browser.js("return document.documentElement.scrollWidth") <= 1280
        browser.screenshot(ARTIFACTS / "status-page-desktop.png")
        keep(ARTIFACTS / "status-page-desktop.png")

        relay({**env, "RELAYER_BATCH_SIZE": "100"}, 0)  # recovered: relays the 5 new blocks
        browser.open(status.url("/"), 1280, 900, mobile=False)
        seen = browser.text()
        assert "✓ Relayer healthy" in seen and "unhealthy" not in seen
        assert "last run failed" not in seen and "✗ failed" in seen  # still in the history
        assert "Lag\n0 blocks · caught up" in seen
        assert len(browser.find("svg rect.bar")) == 3 * (len(runs) + 1)
    finally:
        status.stop()
