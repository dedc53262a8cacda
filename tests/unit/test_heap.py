"""The job's process sets the garbage collector for one run (`function.ops.heap`): what its
build imported is kept out of every collection, and collections come less often. The HTTP
functions' processes serve many requests and keep Python's defaults.

Each test puts the collector back as it found it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import function.ops.app as app
from function.config import Runtime, load_settings
from function.core.summary import RunSummary
from function.ops import heap
from function.run.relay import Outcome
from function.stopping import StopSignal
from minimal_env import MINIMAL


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settling_freezes_what_is_alive_and_collects_less_often() -> None:
    gc.unfreeze()
    alive = [object() for _ in range(10)] + [[i] for i in range(1000)]
    heap.settle_for_one_run()
    assert gc.get_freeze_count() >= len(alive) - 10  # the lists (objects are not tracked)
    assert gc.get_threshold()[0] == heap.GEN0_THRESHOLD > 700  # Python's default: 700


class _Stub:
    """A built run that notes what the collector looked like when it ran."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen
        self.execution: str | None = None
        self.current = None

    def run(self) -> Outcome:
        self.seen.append(("run", gc.get_freeze_count(), gc.get_threshold()[0]))
        return Outcome(RunSummary("-", "r", datetime.now(UTC)))


def test_a_job_settles_the_heap_after_its_build_and_before_its_run() -> None:
    gc.unfreeze()
    seen: list[Any] = []

    def build(settings: Any, stop: StopSignal) -> Any:
        seen.append(("build", gc.get_freeze_count(), gc.get_threshold()[0]))
        return _Stub(seen)

    settings = load_settings(MINIMAL)
    app.run_relayers(Runtime(None, 0, 1), [settings], StopSignal(), build=build,
                     settle=heap.settle_for_one_run)  # fmt: skip
    (b, frozen_at_build, _), (r, frozen_at_run, threshold_at_run) = seen
    assert (b, r) == ("build", "run")
    assert frozen_at_build == 0 and frozen_at_run > 0
    assert threshold_at_run == heap.GEN0_THRESHOLD


def test_without_settle_a_run_leaves_the_collector_as_it_was() -> None:
    """The relay HTTP function's path: its process serves request after request."""
    gc.unfreeze()
    before = gc.get_threshold()
    seen: list[Any] = []
    settings = load_settings(MINIMAL)
    app.run_relayers(Runtime(None, 0, 1), [settings], StopSignal(),
                     build=lambda s, stop: _Stub(seen))  # fmt: skip
    assert seen == [("run", 0, before[0])]
    assert gc.get_threshold() == before


def test_the_job_settles_and_the_http_function_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def recording(runtime: Any, fleet: Any, stop: Any, build: Any = None, **kw: Any) -> list[Any]:
        calls.append(kw.get("settle"))
        return []

    monkeypatch.setattr(app, "run_relayers", recording)
    monkeypatch.setattr(app, "install_sigterm", lambda stop: None)
    monkeypatch.setattr(app.logs, "setup", lambda *a, **k: None)
    assert app.run_job(MINIMAL) == 0
    assert calls == [heap.settle_for_one_run]
