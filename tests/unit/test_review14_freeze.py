"""Review 14 (guard, passes): the fault wrapper's freeze (834e77c) stops the thread that
calls it before that thread does anything more, and stops every other thread of the
process too (a busy one included), until SIGCONT; then the caller goes on.

The wrapper's own `_pause` is run (its source, taken from devstack/faults/crashing_main.py:
importing the wrapper would start a relayer run) in a child process with two threads
spinning beside the caller. Before the change (`os.kill(os.getpid(), SIGSTOP)`) the caller
wrote its next line after the stop in 30 of 40 tries of the same experiment (the kernel
hands a process-wide stop to another thread); this asserts it never does now."""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "devstack" / "faults" / "crashing_main.py"

CHILD = r"""
import os, signal, sys, threading, time
fd = int(sys.argv[1])
ACTION, PAUSE = "freeze", 0.0
def note(what, **fields):
    os.write(fd, (what + "\n").encode())
exec(sys.argv[2])  # the wrapper's _pause
stop = False
def busy():
    x = 0
    while not stop:
        x += 1
for _ in range(2):
    threading.Thread(target=busy, daemon=True).start()
def worker():
    os.write(fd, b"before\n")
    _pause("x")
    os.write(fd, b"after\n")
time.sleep(0.05)
t = threading.Thread(target=worker)
t.start()
t.join()
stop = True
"""


def _pause_source() -> str:
    tree = ast.parse(WRAPPER.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_pause"]
    return ast.get_source_segment(WRAPPER.read_text(), node) or ""


def _states(pid: int) -> set[str]:
    tasks = Path(f"/proc/{pid}/task")
    return {(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()}


def _one_freeze() -> tuple[bytes, bytes]:
    r, w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(w), _pause_source()], pass_fds=(w,))
    os.close(w)
    try:
        seen = b""
        while b"before\n" not in seen:
            seen += os.read(r, 100)
        for _ in range(2000):  # until the kernel has stopped every thread (no timing asserted)
            if _states(child.pid) == {"T"}:
                break
            time.sleep(0.005)
        assert _states(child.pid) == {"T"}, _states(child.pid)
        os.set_blocking(r, False)
        with contextlib.suppress(BlockingIOError):
            seen += os.read(r, 100)
        frozen = seen
        child.send_signal(signal.SIGCONT)
        assert child.wait(timeout=60) == 0
        os.set_blocking(r, True)
        while chunk := os.read(r, 100):
            seen += chunk
        return frozen, seen
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
        os.close(r)


def test_a_freeze_stops_its_caller_at_once_and_every_thread_until_sigcont() -> None:
    assert "pthread_kill" in _pause_source()
    for _ in range(10):
        frozen, whole = _one_freeze()
        assert frozen == b"before\n"  # nothing of the caller after the stop
        assert whole == b"before\nresumed\nafter\n"
