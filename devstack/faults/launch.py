"""Starting the campaign's runs: each `devstack/faults/crashing_main.py` (which runs
main.py) in a process of its own, either spawned (`python devstack/faults/crashing_main.py`,
~0.6 s of imports) or forked from the zygote (devstack/faults/zygote.py, a few ms). Both
report the exit code as subprocess does: negative when a signal ended the run.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Protocol

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = Path(__file__).resolve().parent / "crashing_main.py"

OnExit = Callable[[int], None]


class Launcher(Protocol):
    startup_s: float  # from start() to the run's first step, about

    def start(
        self,
        env: dict[str, str],
        out: Path,
        on_exit: OnExit,
        code: str | None = None,
        args: Sequence[str] = (),
    ) -> int:
        """Start a run (or `code`, a Python program) writing stdout and stderr to `out`;
        its pid. `on_exit(exit code)` follows. `args`: the `relayer` CLI's, not main.py."""

    def close(self) -> None: ...


class Spawner:
    """`python devstack/faults/crashing_main.py` per run."""

    startup_s = 0.5

    def start(
        self,
        env: dict[str, str],
        out: Path,
        on_exit: OnExit,
        code: str | None = None,
        args: Sequence[str] = (),
    ) -> int:
        argv = [sys.executable, "-c", code] if code else [sys.executable, str(WRAPPER), *args]
        with open(out, "wb") as sink:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        threading.Thread(target=lambda: on_exit(popen.wait()), daemon=True).start()
        return popen.pid

    def close(self) -> None:
        return None


class Zygote:
    """Runs forked from one process that already imported everything a run needs."""

    startup_s = 0.03

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.faults.zygote"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pids: dict[int, int] = {}
        self._callbacks: dict[int, OnExit] = {}  # by request id, then by pid
        self._started = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name="zygote").start()

    def start(
        self,
        env: dict[str, str],
        out: Path,
        on_exit: OnExit,
        code: str | None = None,
        args: Sequence[str] = (),
    ) -> int:
        request_id = next(self._ids)
        argv = [str(WRAPPER), *args]
        request = {"id": request_id, "env": env, "out": str(out), "argv": argv}
        if code:
            request["code"] = code
        with self._started:
            self._callbacks[request_id] = on_exit
        with self._lock:
            stdin: IO[bytes] = self._proc.stdin  # type: ignore[assignment]
            stdin.write((json.dumps(request) + "\n").encode())
            stdin.flush()
        with self._started:
            if not self._started.wait_for(lambda: request_id in self._pids, timeout=60):
                raise RuntimeError("the zygote did not fork: " + str(self._proc.poll()))
            return self._pids.pop(request_id)

    def _read(self) -> None:
        stdout: IO[bytes] = self._proc.stdout  # type: ignore[assignment]
        pids: dict[int, OnExit] = {}
        for raw in stdout:
            kind, first, second = raw.decode().split()
            if kind == "started":
                with self._started:
                    pids[int(second)] = self._callbacks.pop(int(first))
                    self._pids[int(first)] = int(second)
                    self._started.notify_all()
            else:
                pids.pop(int(first))(int(second))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._proc.stdin:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
