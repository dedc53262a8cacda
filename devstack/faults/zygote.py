"""A fork server for the fault campaign: runs start in milliseconds instead of ~0.6 s.

`python -m devstack.faults.zygote` imports what a run imports (web3, the Google clients,
the relayer) and then, single-threaded, forks a child per request read from stdin (a JSON
line: `id`, `env`, `out`, `argv`). The child takes that environment, writes to `out`, and
runs `argv[0]` as `__main__` (devstack/faults/crashing_main.py, which runs main.py) or
`code`, a small program, ending as a fresh interpreter would: atexit handlers, non-daemon
threads joined, its own exit code. No client, channel or thread exists before the fork, so
the child builds its own, as a `python main.py` does. Lines out (on the original stdout):
`started <id> <pid>` and `exit <pid> <code>` (a negative code: killed by that signal, as
subprocess reports it).
"""

from __future__ import annotations

import io
import json
import os
import runpy
import select
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import google.cloud.firestore_v1.transaction  # noqa: E402, F401

import function.ops.app  # noqa: E402
import function.ops.cli  # noqa: E402
import function.ops.wiring  # noqa: E402, F401


def _status(raw: int) -> int:
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def serve(reply_fd: int) -> dict[str, Any]:
    """Fork per request until stdin closes (then exit); returns only in a child."""
    buffer = b""
    children: set[int] = set()
    open_input = True
    while open_input or children:
        readable, _, _ = select.select([0] if open_input else [], [], [], 0.005)
        if readable:
            chunk = os.read(0, 65536)
            open_input = bool(chunk)
            buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                os.close(reply_fd)
                return dict(request)
            children.add(pid)
            os.write(reply_fd, f"started {request['id']} {pid}\n".encode())
        while children:
            pid, raw = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            os.write(reply_fd, f"exit {pid} {_status(raw)}\n".encode())
    sys.exit(0)


def become(request: dict[str, Any]) -> None:
    """In the child: the request's environment, output and working directory."""
    os.setsid()  # like a process of its own: signals to the zygote's group spare it
    os.environ.clear()
    os.environ.update(request["env"])
    out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), line_buffering=True)  # noqa: SIM115
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), line_buffering=True)  # noqa: SIM115
    sys.argv = list(request["argv"])
    os.chdir(ROOT)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    reply = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints must not garble the replies
    child = serve(reply)
    become(child)
    if "code" in child:  # a small program (the campaign's /status check)
        exec(compile(child["code"], "<request>", "exec"), {"__name__": "__main__"})
    else:
        runpy.run_path(child["argv"][0], run_name="__main__")
