"""The stack's process supervision never signals a stranger (devstack/stack/processes.py).

Once a service's leader has exited and been reaped, the kernel may hand its number to a new
process, which then leads a process group with the same id (under pytest-xdist: another
worker's emulator). Releasing the old service must leave that group alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.stack import processes


def test_releasing_a_reaped_service_leaves_a_group_that_reused_its_number_alone(
    tmp_path: Path,
) -> None:
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        scratch = tmp_path / "svc"
        scratch.mkdir()
        service = processes.spawn([sys.executable, "-c", "pass"], scratch)
        service.wait(timeout=30)  # exited and reaped: its number is free for the kernel
        # The kernel gave the number to `stranger` (forced here: pids wrap at pid_max).
        service.pid = stranger.pid
        processes.release(service, timeout=0.5)
        time.sleep(0.2)
        assert stranger.poll() is None, "release signalled a group that is not the service's"
        assert not scratch.exists()  # the service's own cleanup still happened
    finally:
        os.killpg(stranger.pid, signal.SIGKILL)
        stranger.wait()


def test_a_live_service_and_its_children_are_still_stopped(tmp_path: Path) -> None:
    scratch = tmp_path / "svc"
    scratch.mkdir()
    code = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(60)']); time.sleep(60)"
    )
    service = processes.spawn([sys.executable, "-c", code], scratch)
    time.sleep(0.5)
    processes.release(service, timeout=5)
    assert service.poll() is not None
    assert not _members(service.pid), "a child of the service outlived its release"


def _members(pgid: int) -> list[int]:
    """Live (not zombie) processes of group `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != "Z":
                found.append(int(entry.name))
    return found
