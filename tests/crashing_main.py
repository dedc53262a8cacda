"""`python main.py` (or, with arguments, the `relayer` CLI) with a crash point, for the
crash tests only.

Production code carries no crash hooks: this wrapper patches the run's adapters in its own
process and then runs main.py exactly as the job does. CRASH_AT names the point, CRASH_ON
the how-many-th call of that point crashes (1-based):
- `mid_publish`: Pub/Sub accepts half of a block's messages, then SIGKILL;
- `before_record`: every message of the chunk accepted, SIGKILL before any record is written;
- `slow_publish`: no crash; each submit sleeps CRASH_SLEEP seconds (a slow Pub/Sub, for SIGTERM).
"""

from __future__ import annotations

import concurrent.futures
import os
import runpy
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from function.publisher import Publisher  # noqa: E402
from function.state import FirestoreState  # noqa: E402

POINT = os.environ["CRASH_AT"]
ON = int(os.environ.get("CRASH_ON", "1"))
calls = {"n": 0}


def _due() -> bool:
    calls["n"] += 1
    return calls["n"] == ON


def _kill() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


original_submit = Publisher.submit
original_record = FirestoreState.record

if POINT == "mid_publish":

    def submit(self: Publisher, messages: Any) -> Any:
        if not _due():
            return original_submit(self, messages)
        half = original_submit(self, messages[: max(1, len(messages) // 2)])
        concurrent.futures.wait(half, timeout=30)
        _kill()
        return half

    Publisher.submit = submit  # type: ignore[method-assign]
elif POINT == "before_record":

    def record(self: FirestoreState, docs: Any) -> None:
        if _due():
            _kill()
        original_record(self, docs)

    FirestoreState.record = record  # type: ignore[method-assign]
elif POINT == "slow_publish":
    pause = float(os.environ.get("CRASH_SLEEP", "0.5"))

    def slow_submit(self: Publisher, messages: Any) -> Any:
        time.sleep(pause)
        return original_submit(self, messages)

    Publisher.submit = slow_submit  # type: ignore[method-assign]
else:
    raise SystemExit(f"unknown CRASH_AT={POINT}")

os.chdir(ROOT)
if len(sys.argv) > 1:  # `crashing_main.py backfill --from-block ...`: the operator CLI
    from function.cli import main

    main(sys.argv[1:])
else:
    runpy.run_path(str(ROOT / "main.py"), run_name="__main__")
