"""Timing a child process, with its own peak RSS, and the statistics the bench reports.

Peak RSS is the kernel's `ru_maxrss` of the child as GNU time reports it (`/usr/bin/time -f
%M`). Not `wait4` from here: Linux carries a process's high-water mark across `exec`, so a
child forked from this (large) process would report at least this process's RSS; GNU time
is small. Without GNU time the wait4 figure is kept and flagged as an upper bound.

CPU is user + system time from the same `wait4`: the wrapper's, which includes the child it
waited for (GNU time's own is a millisecond or two).
"""

from __future__ import annotations

import compileall
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time" if shutil.which("/usr/bin/time") else None


def compiled(*roots: Path) -> None:
    """The measured code's bytecode, written before anything is timed, as the image has it
    (the Dockerfile's compileall step): with PYTHONDONTWRITEBYTECODE (set in the image, and
    on this machine) a process whose bytecode is missing or older than its source compiles
    those modules at every start, and the bench would time the compiler, more of it for the
    side with more modules of its own."""
    for root in dict.fromkeys(roots):  # the measured tree is often the bench's own
        for path in (root / "function", root / "bench"):  # main.py runs as a script: its
            if not path.is_dir():  # bytecode is never used
                continue
            # Written again whatever is there: compileall's own freshness test compares a
            # source's mtime in whole seconds (the importer also its size), so a file edited
            # within the second of its last bytecode would keep that bytecode.
            if not compileall.compile_dir(path, quiet=1, force=True):
                raise BenchError(f"{path} does not compile")


class BenchError(RuntimeError):
    """A measured step did not do its job, so its timing would mean nothing."""


@dataclass(frozen=True)
class Finished:
    """One child process: exit code, output, wall seconds and peak RSS."""

    code: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mb: float
    rss_exact: bool  # False: an upper bound (no GNU time)
    cpu_s: float = 0.0  # user + system seconds of the process (and GNU time's)


def run_timed(
    argv: Sequence[str], env: Mapping[str, str], *, cwd: Path = ROOT, timeout: float = 600.0
) -> Finished:
    """Run argv (in the repository root by default); wall time from spawn to exit, peak RSS
    from GNU time, CPU from wait4."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        wrapper = [GNU_TIME, "-f", "%M", "-o", rss.name] if GNU_TIME else []
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*wrapper, *argv], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
            stderr=err, start_new_session=True,  # a timeout ends the child with its wrapper
        )  # fmt: skip
        status, usage = _wait4(proc, timeout)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        reported = rss.read().strip().splitlines()
        exact = bool(reported) and reported[-1].isdigit()
        max_rss_kb = int(reported[-1]) if exact else usage.ru_maxrss  # kB on Linux
        return Finished(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            wall,
            max_rss_kb / 1024,
            exact,
            usage.ru_utime + usage.ru_stime,
        )


def _wait4(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, resource.struct_rusage]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            return status, usage
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise BenchError(f"{proc.args!r} still running after {timeout:g} s")
        time.sleep(0.002)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max: enough to see whether a median can be trusted."""
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}
