"""One run of a fault trial: its process, its output and its journal
(see devstack/faults/crashing_main.py), and how it ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_TIMEOUT_S = 90.0  # a run still going after this long has no clear outcome: it is killed


@dataclass
class Proc:
    """One run's process, its output and its journal (see devstack/faults/crashing_main.py)."""

    tag: str
    pid: int
    spawned: float
    out: Path
    journal_path: Path
    point: str
    action: str
    ended: float | None = None
    code: int | None = None
    killed_by_us: bool = False  # SIGKILL sent from outside (a random instant)
    hung: bool = False
    term_sent: float | None = None
    doc_after: dict[str, Any] | None = None  # the relayer document right after it ended
    cli: bool = False  # the `relayer` CLI (a backfill), not `python main.py`
    expect_interrupted: bool = False  # SIGTERM came mid-work: the summary must say so
    frozen: bool = False  # SIGSTOP sent from outside
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        if not self.done.wait(timeout):
            self.hung = True
            self.signal(signal.SIGKILL)
            self.done.wait(10)
        assert self.code is not None
        return self.code

    def signal(self, sig: int) -> None:
        if sig == signal.SIGSTOP:
            self.frozen = True  # frozen from outside: it may have lost its lease meanwhile
        if not self.done.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def journal(self) -> list[dict[str, Any]]:
        try:
            text = self.journal_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def first(self, what: str) -> dict[str, Any] | None:
        return next((e for e in self.journal() if e["what"] == what), None)

    def summaries(self) -> list[dict[str, Any]]:
        found = []
        for line in self.out.read_text(errors="replace").splitlines():
            if '"run_summary"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL
