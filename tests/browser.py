"""Headless Chromium behind Debian's chromedriver, spoken to in W3C WebDriver over plain
HTTP (`requests`): no browser library or downloaded browser is needed. The status page's
tests read what a person sees through it and keep screenshots."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.demo import free_port

SETUP = "apt-get update && apt-get install -y chromium chromium-driver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Where screenshots are copied besides the test's own directory, for a person to look at
SHOTS_ENV = "STATUS_PAGE_SHOTS"


class Browser:
    """Headless Chromium behind Debian's chromedriver, spoken to in W3C WebDriver."""

    def __init__(self, profile: Path) -> None:
        chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
        if not chromium or not driver:
            pytest.fail(f"Chromium and chromedriver are needed for this test; install: {SETUP}")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while not self._ready():
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("chromedriver did not start within 20 s")
            time.sleep(0.1)
        options = {"binary": chromium, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]}
        chrome: dict[str, Any] = {"browserName": "chrome", "goog:chromeOptions": options}
        caps = {"alwaysMatch": chrome}
        answer = requests.post(f"{self.base}/session", json={"capabilities": caps}, timeout=60)
        if not answer.ok:
            self.proc.kill()
            pytest.fail(f"Chromium did not start under chromedriver: {answer.text}")
        self.session = f"{self.base}/session/{answer.json()['value']['sessionId']}"

    def _ready(self) -> bool:
        try:
            return bool(requests.get(f"{self.base}/status", timeout=1).json()["value"]["ready"])
        except (requests.RequestException, ValueError, KeyError):
            return False

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = requests.request(method, self.session + path, json=body, timeout=60)
        value = answer.json()["value"]
        assert answer.ok, f"WebDriver {method} {path}: {value}"
        return value

    def cdp(self, cmd: str, **params: Any) -> Any:
        return self.call("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def open(self, url: str, width: int, height: int, mobile: bool) -> None:
        """Load `url` in a viewport of `width` x `height` CSS pixels (a phone's when `mobile`)."""
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=2 if mobile else 1,
            mobile=mobile,
        )
        self.call("POST", "/url", {"url": url})

    def js(self, script: str) -> Any:
        return self.call("POST", "/execute/sync", {"script": script, "args": []})

    def find(self, css: str) -> list[str]:
        found = self.call("POST", "/elements", {"using": "css selector", "value": css})
        return [next(iter(e.values())) for e in found]

    def text(self, css: str = "body") -> str:
        """What a person sees of the first match: rendered text, hidden elements left out."""
        return str(self.call("GET", f"/element/{self.find(css)[0]}/text"))

    def screenshot(self, path: Path) -> None:
        """The whole page, beyond the viewport, as PNG."""
        shot = self.cdp("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def shot_of(self, css: str, path: Path) -> None:
        """The first element matching `css` alone, as PNG (a part to look at closely)."""
        script = "document.querySelector(arguments[0]).scrollIntoView()"  # into the viewport
        self.call("POST", "/execute/sync", {"script": script, "args": [css]})
        data = self.call("GET", f"/element/{self.find(css)[0]}/screenshot")
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            requests.delete(self.session, timeout=10)
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        b = Browser(Path(profile))
        try:
            yield b
        finally:
            b.close()


def keep(shot: Path) -> None:
    """Copy a screenshot to $STATUS_PAGE_SHOTS when set (a person looks at it there)."""
    where = os.environ.get(SHOTS_ENV)
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(where) / shot.name)
