"""A run killed between a write's read and the write itself must not hold the relayer up.

Read-write transactions of the server client libraries lock what they read: a process
SIGKILLed inside one leaves the documents locked until Firestore expires the transaction
(about 60 s on the emulator, every write meanwhile aborted with "Transaction lock
timeout"), whatever RELAYER_LEASE_SECONDS says. The state adapter writes conditionally
instead (a plain read, then writes with a precondition on what was read), so nothing is
left behind: once the killed run's short lease has expired, the next run takes the lease
at its first attempt and commits.

The child is this file run as a script: it takes the lease and is killed in the window
between the read and the write of one step (the lease's acquisition, a block record write,
a checkpoint commit), by patching the pure decision the adapter asks in that window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # the child: the checkout's packages and the test harness
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pytest  # noqa: E402
from google.cloud import firestore  # noqa: E402

import function.adapters.firestore.blockstore as blockstore_module  # noqa: E402
import function.adapters.firestore.state as state_module  # noqa: E402
import function.core.lease as lease_module  # noqa: E402
from devstack.stack.services import FirestoreEmulator  # noqa: E402
from function.adapters.firestore.state import FirestoreState  # noqa: E402
from function.core.checkpoint import Commit, Progress  # noqa: E402
from function.core.model import BlockRecord, RecordEntry  # noqa: E402
from function.core.summary import OK, RunSummary  # noqa: E402
from harness import PROJECT  # noqa: E402

LEASE_S = 1.0  # the killed run's lease: short, so the successor need not wait long
IDENTITY: dict[str, Any] = {"chain_id": 31337, "contracts": []}
BACKFILL_TASK = "backfill-0-99"


def _state(project: str, relayer_id: str, task: str | None) -> FirestoreState:
    return FirestoreState(firestore.Client(project=project), relayer_id, IDENTITY, task)


def _record(run_id: str, number: int) -> BlockRecord:
    now = datetime.now(UTC)
    entry = RecordEntry(f"e{number}", 0, "0xt", "E", "m", "published", "{}")
    return BlockRecord(number, f"0x{number:064x}", (entry,), run_id, now, now)


def _killed_in(window: str) -> None:
    """Patch the decision the adapter asks between its read and its write: SIGKILL there."""

    def kill(*_: Any, **__: Any) -> Any:
        print(json.dumps({"in_window": window}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    if window == "acquire":
        lease_module.acquire = kill  # the adapter asks `leases.acquire`
    elif window == "record":
        blockstore_module.check_fence = kill  # type: ignore[assignment]
    else:
        state_module.lease_after = kill  # type: ignore[assignment]


def _child(project: str, relayer_id: str, task: str | None, window: str) -> None:
    state = _state(project, relayer_id, task)
    now = datetime.now(UTC)
    if window == "acquire":
        _killed_in(window)
        state.acquire("killed", now, LEASE_S)
        return
    grant = state.acquire("killed", now, LEASE_S)
    assert grant is not None
    print(json.dumps({"fence": grant.fence}), flush=True)
    _killed_in(window)
    if window == "record":
        state.records.write(grant, [_record("killed", 5)])
    else:
        progress = Progress(6, f"0x{5:064x}", (), 1)
        state.commit(grant, now, Commit(progress=progress, lease_until=now + timedelta(seconds=1)))
    raise SystemExit("the child should have been killed in the window")


def _run_killed_child(relayer_id: str, task: str | None, window: str) -> list[dict[str, Any]]:
    args = [PROJECT, relayer_id, task or "-", window]
    child = subprocess.run(
        [sys.executable, __file__, *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    lines = [json.loads(x) for x in child.stdout.splitlines() if x.startswith("{")]
    assert {"in_window": window} in lines, child.stdout + child.stderr
    return lines


def _until_the_lease_is_free(state: FirestoreState) -> None:
    """A plain read, polled until the killed run's lease has expired (by our clock)."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        held = state.read_lease()
        if held.expires_at is None or held.expires_at < datetime.now(UTC):
            return
        time.sleep(0.1)
    raise AssertionError(f"the killed run's lease never expired: {held}")


@pytest.mark.parametrize(
    ("task", "window"),
    [
        (None, "acquire"),
        (None, "record"),
        (None, "commit"),
        (BACKFILL_TASK, "commit"),
    ],
    ids=["job-acquire", "job-record", "job-commit", "backfill-commit"],
)
def test_the_next_run_takes_over_from_a_run_killed_between_read_and_write(
    firestore_reset: FirestoreEmulator, task: str | None, window: str
) -> None:
    relayer_id = f"killed-{uuid.uuid4().hex[:8]}"
    lines = _run_killed_child(relayer_id, task, window)
    killed_fence = next((x["fence"] for x in lines if "fence" in x), 0)
    state = _state(PROJECT, relayer_id, task)
    _until_the_lease_is_free(state)

    grant = state.acquire("successor", datetime.now(UTC), 30)

    assert grant is not None, "the successor was skipped: the killed run still blocks it"
    assert grant.fence == killed_fence + 1
    state.records.write(grant, [_record("successor", 7)])
    now = datetime.now(UTC)
    progress = Progress(8, f"0x{7:064x}", (), 1)
    state.commit(grant, now, Commit(progress=progress, lease_until=now + timedelta(seconds=30)))
    summary = RunSummary("successor", relayer_id, now, outcome=OK, finished_at=now)
    state.commit(grant, now, Commit(summary=summary))
    doc = state.read() or {}
    assert doc["next_block"] == 8 and doc["last_run"]["run_id"] == "successor"
    assert state.read_lease().owner is None
    assert [(r.number, r.run_id) for r in state.records.read(0)] == [(7, "successor")]


if __name__ == "__main__":
    project_arg, relayer_arg, task_arg, window_arg = sys.argv[1:5]
    _child(project_arg, relayer_arg, None if task_arg == "-" else task_arg, window_arg)
