"""Supervise the local stack's child processes: start them, wait for them, never leak them.

Each service runs in its own process group, so the Java grandchildren of the emulator scripts end
with it, and writes its output to a scratch directory that `stop()` deletes. Every started
process is also recorded for an atexit backstop, so a crashed test run leaves nothing running.

Ports: `listening_ports` reads from /proc the ports a process listens on (how a service that
bound port 0 is found); `free_port` picks one for a service that must be told its port. A
service counts as ready when its own output shows its marker and it answers; a bind failure in
its output raises PortTaken, so that the caller can try another port.

Errors: DevstackError > ServiceStartError (its message ends with the service's output).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

import requests

HOST = "127.0.0.1"
_LOG = "output.log"
_BIND_FAILURE = "Address already in use"


class DevstackError(RuntimeError):
    """A local service could not be started, stopped or used."""


class ServiceStartError(DevstackError):
    """A service did not come up; the message carries the tail of its output."""


class PortTaken(ServiceStartError):
    """Someone else bound the port between our pick and the service's bind: try another."""


# --- processes ---------------------------------------------------------------------------------

# by the object, not its pid: a pid is reused once its process is reaped
_LIVE: dict[int, tuple[subprocess.Popen[bytes], Path]] = {}
_LIVE_LOCK = threading.RLock()  # reentrant: the SIGTERM backstop may run inside a holder


def spawn(
    argv: Sequence[str], scratch: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start argv as a process group leader writing to scratch, and record it for cleanup."""
    try:
        with open(scratch / _LOG, "wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=scratch,
                env=env,
                start_new_session=True,
            )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    with _LIVE_LOCK:
        _LIVE[id(proc)] = (proc, scratch)
    return proc


def release(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the group, SIGKILL what is left after timeout, reap, delete scratch; idempotent."""
    with _LIVE_LOCK:
        entry = _LIVE.pop(id(proc), None)
    if entry is None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not _group_is_ours(proc):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait_s
        while _group_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _group_alive(proc):
            break
    proc.wait(timeout=5.0)
    shutil.rmtree(entry[1], ignore_errors=True)


def _group_is_ours(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process group `proc.pid` may still be signalled as ours. Once its leader
    exited and was reaped, the kernel may give that number to a new process, which then
    leads a group of the same id: another test's emulator, under pytest-xdist. Signalling
    it would kill a stranger. A live process with the leader's pid that is not our leader
    (ours is reaped) means the id was reused; otherwise what is left of the group is ours
    (stragglers of our leader keep the id from being reused)."""
    if proc.poll() is None:
        return True  # the leader itself is alive (or an unreaped zombie): the group is ours
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return True  # no process has the number: what is left of group `pid` is ours
    # A thread of another process may carry the number (its Tgid differs): no group of its own.
    return f"\nTgid:\t{proc.pid}\n" not in status


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    """Whether a non-zombie is left in the group (orphaned zombies may never be reaped here)."""
    proc.poll()  # reap our own child so it stops counting
    if not _group_is_ours(proc):
        return False  # the id now belongs to someone else: nothing of ours is left in it
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(stat[2]) == proc.pid and stat[0] != "Z":
                return True
    return False


@atexit.register
def _stop_all() -> None:
    """Backstop: whatever a crashed test or demo did not stop ends with the interpreter."""
    with _LIVE_LOCK:
        procs = [proc for proc, _ in _LIVE.values()]
    for proc in procs:
        with contextlib.suppress(Exception):  # one stuck process must not spare the others
            release(proc, timeout=5.0)


def _stop_all_then_terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM skips atexit, so stop our services first, then die of the signal as before."""
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# Only where nobody chose a handler yet (the demo, pytest): an application's own handler wins.
if (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
):
    signal.signal(signal.SIGTERM, _stop_all_then_terminate)


def _tail(scratch: Path, lines: int = 40) -> str:
    try:
        text = (scratch / _LOG).read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:])[-6000:] or "(no output)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def listening_ports(pid: int) -> list[int]:
    """TCP ports `pid` listens on, from /proc: how we learn the port anvil got for `--port 0`."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                inodes.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for cols in (row.split() for row in rows):
            if cols[3] == "0A" and f"socket:[{cols[9]}]" in inodes:  # 0A = LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def http_session() -> requests.Session:
    """A session that ignores *_PROXY variables: a CI proxy must never see 127.0.0.1 calls."""
    session = requests.Session()
    session.trust_env = False
    return session


def await_ready(
    name: str,
    proc: subprocess.Popen[bytes],
    scratch: Path,
    *,
    marker: str,
    answers: Callable[[], bool],
    timeout: float,
    poll_s: float,
) -> None:
    """Wait until the service's own output shows `marker` and it answers, else raise."""
    deadline = time.monotonic() + timeout
    while True:
        output = (scratch / _LOG).read_text(errors="replace")
        if _BIND_FAILURE in output:
            raise PortTaken(f"{name} could not bind its port:\n{_tail(scratch)}")
        if (code := proc.poll()) is not None:
            raise ServiceStartError(f"{name} exited with code {code}:\n{_tail(scratch)}")
        if marker in output and answers():
            return
        if time.monotonic() > deadline:
            raise ServiceStartError(f"{name} not ready after {timeout:g} s:\n{_tail(scratch)}")
        time.sleep(poll_s)


# --- handles -----------------------------------------------------------------------------------


class StopsOnExit:
    """`with` support for whatever has a `stop()`: it stops on the way out."""

    def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(eq=False)
class ServiceProcess(StopsOnExit):
    """A running local service; `stop()` ends its process group and deletes its scratch dir."""

    host: str
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    scratch: Path = field(repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def output_tail(self, lines: int = 40) -> str:
        """The end of the service's output, for error messages."""
        return _tail(self.scratch, lines)

    def stop(self, timeout: float = 10.0) -> None:
        """End the process group; safe to call twice."""
        release(self.process, timeout)
