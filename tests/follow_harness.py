"""Follow mode across executions: `python main.py` processes started side by side as Cloud
Scheduler would start them, read while they run, and a chain that keeps getting events
while they follow (tests/e2e/test_follow*.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from web3 import Web3

from devstack.chain.escrow import ExpectedEvent, make_activity
from harness import ROOT, Deployment, relayer_doc_or_none

CRASHING_MAIN = "devstack/faults/crashing_main.py"


# A warm process: what a run imports is imported, then it waits for a line on stdin (the
# scheduler firing) and runs the script as `python <script>` would. Start-up on a busy
# machine varies by seconds, mostly imports; a test whose executions must arrive while
# another one still follows starts them ahead and fires them on time.
WARM = (
    "import runpy, sys; import main; sys.stderr.write('warm\\n'); sys.stderr.flush(); "
    "sys.stdin.readline(); sys.argv = [{script!r}]; runpy.run_path({script!r}, run_name='__main__')"
)


@dataclass
class Execution:
    """One `python main.py` (or crashing_main.py) in the background, its output in files so
    that it can be read while the process runs (a pipe nobody reads would block it)."""

    name: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    spawned_at: float  # wall clock (time.time()) when it was started, or fired (warm)

    @classmethod
    def start(cls, name: str, env: dict[str, str], tmp: Path, script: str = "main.py") -> Execution:
        return cls._popen(name, env, tmp, [script])

    @classmethod
    def warm(cls, name: str, env: dict[str, str], tmp: Path, script: str = "main.py") -> Execution:
        """Imported (`warmed`) and waiting for `fire()` to run `script`."""
        code = WARM.format(script=script)
        return cls._popen(name, env, tmp, ["-c", code], stdin=subprocess.PIPE)

    @classmethod
    def _popen(
        cls, name: str, env: dict[str, str], tmp: Path, argv: list[str], stdin: int | None = None
    ) -> Execution:
        out, err = tmp / f"{name}.out", tmp / f"{name}.err"
        spawned_at = time.time()
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [sys.executable, *argv], cwd=ROOT, env=env, stdin=stdin, stdout=o, stderr=e
            )
        return cls(name, proc, out, err, spawned_at)

    @property
    def warmed(self) -> bool:
        """A warm execution has imported everything and waits to be fired."""
        return self.err.read_text(errors="replace").startswith("warm\n")

    def fire(self) -> None:
        """A warm execution starts its run now."""
        assert self.proc.stdin is not None
        self.spawned_at = time.time()
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.out.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line still being written, or a library's plain text
            if isinstance(record, dict):
                found.append(record)
        return found

    def looks(self) -> list[float]:
        """When each of its looks at the chain ended (wall clock), from the DEBUG records."""
        return [
            datetime.fromisoformat(r["looked_at"]).timestamp()
            for r in self.records()
            if "look" in r and "looked_at" in r
        ]

    def summary(self) -> dict[str, Any]:
        found = [r for r in self.records() if r.get("run_summary")]
        assert len(found) == 1, f"{self.name}: expected one summary line:\n{self.text()}"
        return found[0]

    def logged(self, fragment: str) -> bool:
        return any(fragment in str(r.get("message", "")) for r in self.records())

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def reap(self) -> None:
        """Kill it if still running (a failed test must not leave a follower behind)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def lease_owner(relayer_id: str) -> str | None:
    doc = relayer_doc_or_none(relayer_id) or {}
    owner = (doc.get("lease") or {}).get("owner")
    return str(owner) if owner else None


def follow_env(deployment: Deployment, window_s: float, **overrides: str) -> dict[str, str]:
    """A follower polling every second, one DEBUG record per look (docs/CONTRACT.md §1)."""
    return deployment.env(
        RELAYER_RUN_SECONDS=f"{window_s:g}",
        RELAYER_POLL_INTERVAL="1",
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
        **overrides,
    )


class Emitter:
    """A thread that keeps mining blocks with escrow events until stopped (its own Web3: the
    test's may be used meanwhile). What it mined is what the relayer must publish."""

    def __init__(self, deployment: Deployment, seed: int = 100, pause_s: float = 0.3) -> None:
        self._w3 = Web3(Web3.HTTPProvider(deployment.anvil.rpc_url, request_kwargs={"timeout": 60}))
        self._contract = deployment.contract
        self._seed = seed
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.events: list[ExpectedEvent] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Emitter:
        self._thread.start()
        return self

    def _run(self) -> None:
        rounds = 0
        try:
            while not self._stop.is_set():
                mined = make_activity(
                    self._w3, self._contract, 2, blocks=2, seed=self._seed + rounds
                )
                self.events.extend(mined)
                rounds += 1
                self._stop.wait(self._pause_s)
        except BaseException as e:  # surfaced by stop(): a dead emitter would prove nothing
            self._error = e

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def stop(self) -> list[ExpectedEvent]:
        """Stop mining; every event mined, in chain order."""
        self.close()
        if self._error is not None:
            raise AssertionError(f"the emitter failed: {self._error!r}") from self._error
        assert self.events, "the emitter mined nothing"
        return list(self.events)


def first_copies(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads with each event once, in arrival order; every copy of an event (a
    duplicate docs/CONTRACT.md §7.4 allows) must be the same message."""
    seen: dict[str, dict[str, Any]] = {}
    for payload in got:
        earlier = seen.setdefault(payload["event_id"], payload)
        assert earlier == payload, f"two different messages for {payload['event_id']}"
    return list(seen.values())


def assert_chain_order(got: list[dict[str, Any]]) -> None:
    """The ordered subscription received the contract's events in chain order."""
    order = [(p["block_number"], p["log_index"]) for p in got]
    assert order == sorted(order), "events arrived out of chain order"


def journal(path: Path) -> list[dict[str, Any]]:
    """crashing_main.py's FAULT_LOG lines."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
