"""Start and stop the real local stack (anvil and the Google emulators) for tests and the demo.

Each service runs in its own process group, so the Java grandchildren of the emulator scripts end
with it, and writes its output to a scratch directory that `stop()` deletes. Every started
process is also recorded for an atexit backstop, so a crashed test run leaves nothing running.

Ports: anvil binds port 0 and we read the kernel's choice from /proc (no race). The emulators get
a free port picked here; as the Pub/Sub and storage emulators keep running after failing to bind,
one counts as ready only when its own output says it listens *and* the port answers; a bind
failure is retried on another port.

The client helpers take the emulator host explicitly and build their client against it: they
neither read nor change os.environ, so they behave the same inside and outside pytest.

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
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import ClassVar, NamedTuple, Self

import google.cloud.storage as storage
import grpc  # type: ignore[import-untyped]
import requests
from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

HOST = "127.0.0.1"
ANVIL_BIN = (
    Path(__file__).resolve().parents[1] / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
)
_LOG = "output.log"
_BIND_FAILURE = "Address already in use"
_START_ATTEMPTS = 3
_STORAGE_PROJECT = "devstack"  # the storage emulator ignores projects; the client wants one


class DevstackError(RuntimeError):
    """A local service could not be started, stopped or used."""


class ServiceStartError(DevstackError):
    """A service did not come up; the message carries the tail of its output."""


class _PortTaken(ServiceStartError):
    """Someone else bound the port between our pick and the service's bind: try another."""


# --- processes ---------------------------------------------------------------------------------

_LIVE: dict[int, tuple[subprocess.Popen[bytes], Path]] = {}
_LIVE_LOCK = threading.RLock()  # reentrant: the SIGTERM backstop may run inside a holder


def _spawn(
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
        _LIVE[proc.pid] = (proc, scratch)
    return proc


def _release(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the group, SIGKILL what is left after timeout, reap, delete scratch; idempotent."""
    with _LIVE_LOCK:
        entry = _LIVE.pop(proc.pid, None)
    if entry is None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait_s
        while _group_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _group_alive(proc):
            break
    proc.wait(timeout=5.0)
    shutil.rmtree(entry[1], ignore_errors=True)


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    """Whether a non-zombie is left in the group (orphaned zombies may never be reaped here)."""
    proc.poll()  # reap our own child so it stops counting
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
            _release(proc, timeout=5.0)


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _listening_ports(pid: int) -> list[int]:
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


def _http() -> requests.Session:
    """A session that ignores *_PROXY variables: a CI proxy must never see 127.0.0.1 calls."""
    session = requests.Session()
    session.trust_env = False
    return session


def _await_ready(
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
            raise _PortTaken(f"{name} could not bind its port:\n{_tail(scratch)}")
        if (code := proc.poll()) is not None:
            raise ServiceStartError(f"{name} exited with code {code}:\n{_tail(scratch)}")
        if marker in output and answers():
            return
        if time.monotonic() > deadline:
            raise ServiceStartError(f"{name} not ready after {timeout:g} s:\n{_tail(scratch)}")
        time.sleep(poll_s)


# --- handles -----------------------------------------------------------------------------------


@dataclass(eq=False)
class ServiceProcess:
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
        _release(self.process, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


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
    proc = _spawn(argv, scratch, env={**os.environ, "HOME": str(scratch)})
    ports: list[int] = []
    body = '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    with _http() as session:

        def answers() -> bool:
            ports[:] = ports or _listening_ports(proc.pid)
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
            _await_ready(
                "anvil", proc, scratch, marker="", answers=answers, timeout=timeout, poll_s=0.01
            )
        except BaseException:
            _release(proc)
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
            return _start_server_once(spec, port or _free_port(), timeout)
        except _PortTaken:
            if attempt == _START_ATTEMPTS - 1:
                raise
            if port:
                time.sleep(0.5)
    raise AssertionError("unreachable")


def _start_server_once(
    spec: _ServerSpec, port: int, timeout: float
) -> tuple[int, subprocess.Popen[bytes], Path]:
    scratch = Path(tempfile.mkdtemp(prefix="devstack-"))
    proc = _spawn(spec.argv(port), scratch)
    with _http() as session:

        def answers() -> bool:
            try:
                return spec.healthy(
                    session.get(f"http://{HOST}:{port}{spec.probe_path}", timeout=1.0)
                )
            except requests.RequestException:
                return False

        try:
            _await_ready(
                spec.name,
                proc,
                scratch,
                marker=spec.marker(port),
                answers=answers,
                timeout=timeout,
                poll_s=0.02,
            )
        except BaseException:
            _release(proc)
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
class Stack:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- client helpers ----------------------------------------------------------------------------


class PulledMessage(NamedTuple):
    """One message as a subscriber saw it."""

    data: bytes
    attributes: dict[str, str]
    ordering_key: str
    message_id: str


@dataclass(frozen=True)
class PubSubTopic:
    """A topic with one subscription on an emulator, as the tests use them."""

    host: str
    project: str
    topic_id: str
    subscription_id: str

    @property
    def topic_path(self) -> str:
        return PublisherClient.topic_path(self.project, self.topic_id)

    @property
    def subscription_path(self) -> str:
        return SubscriberClient.subscription_path(self.project, self.subscription_id)

    def pull_all(self, *, idle_s: float = 0.5) -> list[PulledMessage]:
        """Everything published so far (and until idle_s of quiet), acked."""
        return pull_all(self.host, self.project, self.subscription_id, idle_s=idle_s)


def reset_firestore(host: str, project: str) -> None:
    """Delete every document: a clean database in milliseconds instead of a JVM restart."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    with _http() as session:
        reply = session.delete(url, timeout=30.0)
    if reply.status_code != 200:
        raise DevstackError(f"Firestore reset answered {reply.status_code}: {reply.text[:200]}")


def export_firestore(host: str, project: str, directory: Path) -> Path:
    """Export every document (the emulator's own export); the path to start one from."""
    url = f"http://{host}/emulator/v1/projects/{project}:export"
    database = f"projects/{project}/databases/(default)"
    body = {"database": database, "export_directory": str(directory)}
    with _http() as session:
        reply = session.post(url, json=body, timeout=60.0)
    if reply.status_code != 200:
        raise DevstackError(f"Firestore export answered {reply.status_code}: {reply.text[:200]}")
    found = sorted(directory.glob("*/*.overall_export_metadata"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise DevstackError(f"Firestore export wrote no metadata under {directory}")
    return found[-1]


def _publisher(host: str) -> PublisherClient:
    return PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))


def _subscriber(host: str) -> SubscriberClient:
    return SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))


def create_topic_and_subscription(
    host: str, project: str, topic: str, subscription: str, *, ordering: bool = True
) -> PubSubTopic:
    """Create both (the emulator starts empty). Ids: a letter, then 2-254 of [A-Za-z0-9-_.~+%]."""
    made = PubSubTopic(host, project, topic, subscription)
    with _publisher(host) as publisher:
        publisher.create_topic(name=made.topic_path, timeout=30.0)
    with _subscriber(host) as subscriber:
        subscriber.create_subscription(
            request={
                "name": made.subscription_path,
                "topic": made.topic_path,
                "enable_message_ordering": ordering,
                "ack_deadline_seconds": 60,
            },
            timeout=30.0,
        )
    return made


def pull_all(
    host: str, project: str, subscription: str, *, idle_s: float = 0.5, max_messages: int = 1000
) -> list[PulledMessage]:
    """Pull and ack until nothing new arrives for idle_s seconds; messages in pull order."""
    sub_path = SubscriberClient.subscription_path(project, subscription)
    pulled: list[PulledMessage] = []
    with _subscriber(host) as subscriber:
        idle_until = time.monotonic() + idle_s
        while (remaining := idle_until - time.monotonic()) > 0:
            try:
                reply = subscriber.pull(
                    request={"subscription": sub_path, "max_messages": max_messages},
                    timeout=max(remaining, 0.05),
                    retry=None,
                )
            except gexc.DeadlineExceeded:
                continue
            if not reply.received_messages:
                time.sleep(0.01)  # the emulator mostly answers an empty pull at once: don't spin
                continue
            for received in reply.received_messages:
                m = received.message
                pulled.append(
                    PulledMessage(m.data, dict(m.attributes), m.ordering_key, m.message_id)
                )
            subscriber.acknowledge(
                subscription=sub_path,
                timeout=30.0,
                ack_ids=[r.ack_id for r in reply.received_messages],
            )
            idle_until = time.monotonic() + idle_s
    return pulled


def upload_blob(
    host: str,
    bucket: str,
    name: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
) -> None:
    """Upload one object, creating the bucket if missing; host with or without `http://`."""
    endpoint = host if "://" in host else f"http://{host}"
    # use_auth_w_custom_endpoint=False gives anonymous credentials, as STORAGE_EMULATOR_HOST does.
    client = storage.Client(
        project=_STORAGE_PROJECT,
        client_options={"api_endpoint": endpoint},
        use_auth_w_custom_endpoint=False,
    )
    try:
        target = client.lookup_bucket(bucket) or client.create_bucket(bucket)
        target.blob(name).upload_from_string(data, content_type=content_type)
    finally:
        client.close()
