"""/status reads a fleet's relayers side by side: a hung endpoint costs one timeout, not
one per relayer (ten of them would otherwise time the function out when it is needed)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import function.ops.app as app
from devstack.sim.events import settings
from function.config import Settings


def test_the_fleets_relayers_are_read_at_once_and_answered_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = [settings(relayer_id=f"r{n}") for n in range(3)]
    together = threading.Barrier(3, timeout=10)  # passes only if all three read at once

    def entry(s: Settings) -> dict[str, Any]:
        together.wait()
        return {"relayer_id": s.relayer_id, "healthy": s.relayer_id != "r1"}

    monkeypatch.setattr(app, "_relayer_entry", entry)
    body = app.status_body(fleet)
    assert [r["relayer_id"] for r in body["relayers"]] == ["r0", "r1", "r2"]
    assert body["healthy"] is False
