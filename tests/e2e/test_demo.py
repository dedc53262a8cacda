"""`make demo` keeps working: it is a newcomer's first contact with the product."""

from __future__ import annotations

import subprocess
import sys

from harness import ROOT


def test_demo_relays_every_event_exactly_once() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "300 distinct events of 300 emitted, 0 duplicates, 300 exactly as emitted" in done.stdout
    assert "POST relay -> 200      ok" in done.stdout
    assert '"healthy": true' in done.stdout
    assert "demo-secret-key" not in done.stdout + done.stderr
