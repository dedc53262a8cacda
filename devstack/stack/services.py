"""Start and stop the real local stack (anvil and the Google emulators) for tests and the demo.

Each service is a child process supervised by devstack/stack/processes.py: its own process group,
its output in a scratch directory that `stop()` deletes, an atexit backstop.

Ports: anvil binds port 0 and we read the kernel's choice from /proc (no race). The emulators get
a free port picked here; as the Pub/Sub and storage emulators keep running after failing to bind,
one counts as ready only when its own output says it listens *and* the port answers; a bind
failure is retried on another port.

Errors: a service that does not come up raises ServiceStartError (devstack/stack/processes.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import requests

from devstack.stack.processes import (
    HOST,
    DevstackError,
    PortTaken,
    ServiceProcess,
    StopsOnExit,
    await_ready,
    free_port,
    http_session,
    listening_ports,
    release,
    spawn,
)

ANVIL_BIN = (
    Path(__file__).resolve().parents[2] / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
)
_START_ATTEMPTS = 3


# --- handles -----------------------------------------------------------------------------------


@dataclass(eq=False)
class Anvil(ServiceProcess):
    """A local chain; its state lives in memory or in scratch, never in ~/.foundry."""

    chain_id: int

    @property
    def rpc_url(self) -> str:
        return f"http://{self.address}"


@dataclass(eq=False)
class Emulator(ServiceProcess):
    """A Google emulator; `ENV_VAR=env_value` is what the client libraries need to find it."""

    ENV_VAR: ClassVar[str] = ""

    @property
    def env_value(self) -> str:
        return self.address


@dataclass(eq=False)
class PubSubEmulator(Emulator):
    """The Pub/Sub emulator (gRPC and REST on one port)."""

    project: str
    ENV_VAR: ClassVar[str] = "PUBSUB_EMULATOR_HOST"


@dataclass(eq=False)
class FirestoreEmulator(Emulator):
    """The Firestore emulator in native mode."""

    project: str
    ENV_VAR: ClassVar[str] = "FIRESTORE_EMULATOR_HOST"


@dataclass(eq=False)
class StorageEmulator(Emulator):
    """gcp-storage-emulator, in memory."""

    ENV_VAR: ClassVar[str] = "STORAGE_EMULATOR_HOST"

    @property
    def env_value(self) -> str:
        return f"http://{self.address}"  # the storage client needs the scheme


# --- starting ----------------------------------------------------------------------------------


def start_anvil(
    *,
    chain_id: int = 31337,
    prune_history: int | None = 256,
    block_time: float | None = None,
    hardfork: str = "cancun",
    extra_args: Sequence[str] = (),
    timeout: float = 10.0,
) -> Anvil:
    """Start the native anvil. prune_history: N states in memory; 0 = bare flag; None = full
    history, whose states spill to scratch (not ~/.foundry) and are deleted on stop."""
    scratch = Path(tempfile.mkdtemp(prefix="devstack-anvil-"))
    argv = [
        str(ANVIL_BIN),
        "--silent",
        "--host",
        HOST,
        "--port",
        "0",
        "--hardfork",
        hardfork,
        "--chain-id",
        str(chain_id),
        "--cache-path",
        str(scratch / "states"),
    ]
    if prune_history is not None:
        argv += ["--prune-history"] + ([str(prune_history)] if prune_history else [])
    if block_time is not None:
        argv += ["--block-time", f"{block_time:g}"]
    argv += extra_args
    # HOME too: whatever else anvil keeps under ~/.foundry lands in scratch.
    proc = spawn(argv, scratch, env={**os.environ, "HOME": str(scratch)})
    ports: list[int] = []
    body = '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    with http_session() as session:

        def answers() -> bool:
            ports[:] = ports or listening_ports(proc.pid)
            try:
                reply = session.post(
                    f"http://{HOST}:{ports[0]}",
                    data=body,
                    timeout=1.0,
                    headers={"Content-Type": "application/json"},
                ).json()
            except (IndexError, requests.RequestException, ValueError):
                return False
            return isinstance(reply, dict) and reply.get("result") == hex(chain_id)

        try:
            await_ready(
                "anvil", proc, scratch, marker="", answers=answers, timeout=timeout, poll_s=0.01
            )
        except BaseException:
            release(proc)
            raise
    return Anvil(HOST, ports[0], proc, scratch, chain_id)


@dataclass(frozen=True)
class _ServerSpec:
    """How to start one emulator on a given port and recognise that it is up."""

    name: str
    argv: Callable[[int], list[str]]
    marker: Callable[[int], str]
    probe_path: str
    healthy: Callable[[requests.Response], bool]


def _start_server(
    spec: _ServerSpec, timeout: float, port: int | None = None
) -> tuple[int, subprocess.Popen[bytes], Path]:
    """Start on a free port (retry on another if it was taken meanwhile), or on `port`
    (a restart on the port clients know: retry there while the old socket lets go)."""
    for attempt in range(_START_ATTEMPTS):
        try:
            return _start_server_once(spec, port or free_port(), timeout)
        except PortTaken:
            if attempt == _START_ATTEMPTS - 1:
                raise
            if port:
                time.sleep(0.5)
    raise AssertionError("unreachable")


def _start_server_once(
    spec: _ServerSpec, port: int, timeout: float
) -> tuple[int, subprocess.Popen[bytes], Path]:
    scratch = Path(tempfile.mkdtemp(prefix="devstack-"))
    proc = spawn(spec.argv(port), scratch)
    with http_session() as session:

        def answers() -> bool:
            try:
                return spec.healthy(
                    session.get(f"http://{HOST}:{port}{spec.probe_path}", timeout=1.0)
                )
            except requests.RequestException:
                return False

        try:
            await_ready(
                spec.name,
                proc,
                scratch,
                marker=spec.marker(port),
                answers=answers,
                timeout=timeout,
                poll_s=0.02,
            )
        except BaseException:
            release(proc)
            raise
    return port, proc, scratch


def _sdk_script(relative: str) -> Path | None:
    """An emulator's own start script: launching it directly skips ~1 s of gcloud start-up."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise DevstackError("gcloud is not on PATH: install the Google Cloud CLI and emulators")
    script = Path(gcloud).resolve().parents[1] / "platform" / relative
    return script if script.is_file() else None


def start_pubsub_emulator(
    project: str, *, timeout: float = 60.0, port: int | None = None
) -> PubSubEmulator:
    """Start the Pub/Sub emulator; ready when its REST API lists topics. `port`: a given
    port instead of a free one (to restart an emulator where its clients look for it)."""
    script = _sdk_script("pubsub-emulator/bin/cloud-pubsub-emulator")

    def argv(port: int) -> list[str]:
        if script is not None:
            return [str(script), f"--host={HOST}", f"--port={port}"]
        return [
            "gcloud",
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={HOST}:{port}",
            f"--project={project}",
        ]

    port, proc, scratch = _start_server(
        _ServerSpec(
            "Pub/Sub emulator",
            argv,
            lambda p: f"listening on {p}",
            f"/v1/projects/{project}/topics",
            lambda r: r.status_code == 200,
        ),
        timeout,
        port,
    )
    return PubSubEmulator(HOST, port, proc, scratch, project)


def start_firestore_emulator(
    project: str,
    *,
    timeout: float = 60.0,
    port: int | None = None,
    import_data: Path | None = None,
) -> FirestoreEmulator:
    """Start the Firestore emulator (native mode); ready when `GET /` answers `Ok`. `port`:
    a given port instead of a free one; `import_data`: an export's `.overall_export_metadata`
    to start from (see `export_firestore`)."""
    script = _sdk_script("cloud-firestore-emulator/cloud_firestore_emulator")
    extra = [f"--import-data={import_data}"] if import_data else []

    def argv(port: int) -> list[str]:
        if script is not None:
            return [
                str(script),
                "start",
                f"--host={HOST}",
                f"--port={port}",
                "--database-mode=firestore-native",
                *extra,
            ]
        return ["gcloud", "emulators", "firestore", "start", f"--host-port={HOST}:{port}", *extra]

    port, proc, scratch = _start_server(
        _ServerSpec(
            "Firestore emulator",
            argv,
            lambda p: "Dev App Server is now running",
            "/",
            lambda r: r.status_code == 200 and r.text.strip() == "Ok",
        ),
        timeout,
        port,
    )
    return FirestoreEmulator(HOST, port, proc, scratch, project)


def start_storage_emulator(*, timeout: float = 30.0) -> StorageEmulator:
    """Start gcp-storage-emulator in memory under this interpreter; ready when `GET /` answers."""

    def argv(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            HOST,
            "--port",
            str(port),
            "--in-memory",
        ]

    port, proc, scratch = _start_server(
        _ServerSpec(
            "storage emulator",
            argv,
            lambda p: "All services started",
            "/",
            lambda r: r.status_code == 200,
        ),
        timeout,
    )
    return StorageEmulator(HOST, port, proc, scratch)


@dataclass(frozen=True, eq=False)
class Stack(StopsOnExit):
    """The three Google emulators, started in parallel so the two JVM start-ups overlap."""

    pubsub: PubSubEmulator
    firestore: FirestoreEmulator
    storage: StorageEmulator

    @classmethod
    def start(cls, project: str, *, timeout: float = 60.0) -> Self:
        """Start all three; if one fails, stop the others and raise its error."""
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="devstack") as pool:
            ps = pool.submit(start_pubsub_emulator, project, timeout=timeout)
            fs = pool.submit(start_firestore_emulator, project, timeout=timeout)
            gcs = pool.submit(start_storage_emulator, timeout=timeout)
        failures = [e for f in (ps, fs, gcs) if (e := f.exception()) is not None]
        if failures:
            for future in (ps, fs, gcs):
                if future.exception() is None:
                    future.result().stop()
            raise failures[0]
        return cls(ps.result(), fs.result(), gcs.result())

    @property
    def project(self) -> str:
        return self.pubsub.project

    @property
    def services(self) -> tuple[Emulator, ...]:
        return (self.pubsub, self.firestore, self.storage)

    def env(self) -> dict[str, str]:
        """The variables the Google client libraries read to find the emulators."""
        return {s.ENV_VAR: s.env_value for s in self.services}

    def stop(self, timeout: float = 10.0) -> None:
        """Stop all three in parallel (a JVM takes ~0.4 s to shut down)."""
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="devstack") as pool:
            list(pool.map(lambda s: s.stop(timeout), self.services))
