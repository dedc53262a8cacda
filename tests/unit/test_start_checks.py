"""A run's start-up checks (`wiring.build_relay`): the topics (GetTopic) and the RPC
endpoints (their chain id) are asked at once, two connections and their round trips
overlapping, and the Firestore client (its library's import, a good part of a start) is made
while they wait; when both are wrong, the topic's error is the one raised, as when the topics
were asked first; when only the RPC is wrong, its error is; a check's error wins over the
client's. The ABI (a Cloud Storage read in a deployment) is read and compiled meanwhile too,
and its error wins over all of them, as when it was read before anything else."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import function.ops.wiring as wiring
from devstack.sim.events import settings
from function.adapters.jsonrpc.client import JsonRpc
from function.adapters.pubsub import Publisher
from function.errors import AbiError, ChainMismatchError, TopicNotFoundError
from function.stopping import StopSignal

ROOT = Path(__file__).resolve().parents[2]
ABI = str(ROOT / "contracts" / "build" / "Escrow.json")
WAIT_S = 5.0
EMULATOR = {"PUBSUB_EMULATOR_HOST": "127.0.0.1:1"}


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Both checks stubbed: each notes that it began and waits (up to WAIT_S) for the other
    to begin too, then fails as `seen["fail"]` says."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # never reached
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    began = {"topic": threading.Event(), "rpc": threading.Event()}
    seen: dict[str, Any] = {"fail": set(), "overlapped": set(), "began": began,
                            "waited_for_client": set()}  # fmt: skip

    def check(name: str, other: str, error: Exception) -> None:
        began[name].set()
        if began[other].wait(WAIT_S):
            seen["overlapped"].add(name)
        client = seen.get("client")  # with `client_made`: wait for its making to begin
        if client is not None and client.wait(WAIT_S):
            seen["waited_for_client"].add(name)
        if name in seen["fail"]:
            raise error

    def check_topic(self: Publisher, timeout_s: float = 10.0) -> None:
        check("topic", "rpc", TopicNotFoundError("PUBSUB_TOPIC: topic does not exist"))

    def check_endpoints(self: JsonRpc) -> None:
        check("rpc", "topic", ChainMismatchError("RPC_URL: chain 1, not 31337"))

    monkeypatch.setattr(Publisher, "check_topic", check_topic)
    monkeypatch.setattr(JsonRpc, "check_endpoints", check_endpoints)
    return seen


@pytest.fixture
def client_made(monkeypatch: pytest.MonkeyPatch, checks: dict[str, Any]) -> dict[str, Any]:
    """The Firestore client's making stubbed too: it notes that it began, waits (up to
    WAIT_S) for both checks to have begun, and fails when `seen["client"]` says so."""
    made = wiring.firestore_client
    seen: dict[str, Any] = {"while_checks": False, "fail": None, "began": threading.Event()}

    def firestore_client(settings: Any) -> Any:
        seen["began"].set()
        seen["while_checks"] = all(began.wait(WAIT_S) for began in checks["began"].values())
        if seen["fail"] is not None:
            raise seen["fail"]
        return made(settings)

    monkeypatch.setattr(wiring, "firestore_client", firestore_client)
    checks["client"] = seen["began"]
    return seen


def _build() -> Any:
    return wiring.build_relay(settings(abi_uri=ABI, contracts=("0x" + "ab" * 20,)), StopSignal())


def test_the_topics_and_the_rpc_endpoints_are_asked_at_once(checks: dict[str, Any]) -> None:
    relay = _build()
    assert relay is not None
    assert checks["overlapped"] == {"topic", "rpc"}  # each began while the other was under way


def test_both_wrong_raises_the_topics_error(checks: dict[str, Any]) -> None:
    checks["fail"] = {"topic", "rpc"}
    with pytest.raises(TopicNotFoundError, match="PUBSUB_TOPIC"):
        _build()


def test_only_the_rpc_wrong_raises_its_error(checks: dict[str, Any]) -> None:
    checks["fail"] = {"rpc"}
    with pytest.raises(ChainMismatchError, match="RPC_URL"):
        _build()


def test_the_firestore_client_is_made_while_the_checks_wait(
    checks: dict[str, Any], client_made: dict[str, Any]
) -> None:
    relay = _build()
    assert relay is not None
    assert client_made["while_checks"]
    assert checks["waited_for_client"] == {"topic", "rpc"}, "the client was made after them"
    assert checks["overlapped"] == {"topic", "rpc"}


@pytest.mark.parametrize(
    ("failing", "raised"),
    [({"topic"}, TopicNotFoundError), ({"rpc"}, ChainMismatchError), (set(), OSError)],
)
def test_a_checks_error_wins_over_the_clients(
    checks: dict[str, Any], client_made: dict[str, Any], failing: set[str], raised: type
) -> None:
    checks["fail"] = failing
    client_made["fail"] = OSError("no credentials")
    with pytest.raises(raised):
        _build()


@pytest.fixture
def abi_read(monkeypatch: pytest.MonkeyPatch, checks: dict[str, Any]) -> dict[str, Any]:
    """ABI_URI's read stubbed: it waits (up to WAIT_S) for both checks to begin, then
    answers the escrow's ABI, or fails when `seen["fail"]` says so."""
    read = wiring.read_abi
    seen: dict[str, Any] = {"while_checks": False, "fail": None}

    def read_abi(uri: str) -> bytes:
        seen["while_checks"] = all(began.wait(WAIT_S) for began in checks["began"].values())
        if seen["fail"] is not None:
            raise seen["fail"]
        return read(uri)

    monkeypatch.setattr(wiring, "read_abi", read_abi)
    return seen


def test_the_abi_is_read_while_the_checks_wait(
    checks: dict[str, Any], abi_read: dict[str, Any]
) -> None:
    relay = _build()
    assert relay is not None
    assert abi_read["while_checks"], "the ABI was read before the checks began"


@pytest.mark.parametrize("failing", [{"topic", "rpc"}, {"rpc"}, set()])
def test_the_abis_error_wins_over_every_other(
    checks: dict[str, Any], client_made: dict[str, Any], abi_read: dict[str, Any], failing: set[str]
) -> None:
    checks["fail"] = failing
    client_made["fail"] = OSError("no credentials")
    abi_read["fail"] = AbiError("ABI_URI gs://b/abi.json does not exist: upload it or fix ABI_URI")
    with pytest.raises(AbiError, match="ABI_URI"):
        _build()


def test_a_build_given_the_abi_read_does_not_read_it_again(
    checks: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`relayer backfill` checks the ABI before it reads Firestore and hands the build what
    it read: one read of ABI_URI per command, and the run uses the ABI that was checked."""
    given = settings(abi_uri=ABI, contracts=("0x" + "ab" * 20,))
    specs_read = wiring.specs_of(given)
    reads: list[str] = []
    monkeypatch.setattr(wiring, "read_abi", lambda uri: reads.append(uri) or b"")
    relay = wiring.build_relay(given, StopSignal(), specs_read=specs_read)
    assert reads == []
    assert relay.specs is specs_read[0]
    with pytest.raises(AbiError):  # without it, the ABI is read (here: an empty one)
        wiring.build_relay(given, StopSignal())
    assert reads == [ABI]


@pytest.mark.parametrize(
    ("env", "abi", "imported"),
    [
        (EMULATOR, ABI, set()),
        ({}, ABI, {"google.api_core.grpc_helpers", "google.auth.compute_engine"}),
        (EMULATOR, f"{ABI}, gs://b/abi.json", {"google.cloud.storage"}),
    ],
)  # fmt: skip
def test_what_the_threads_import_is_imported_before_they_start(
    env: dict[str, str], abi: str, imported: set[str]
) -> None:
    """In a fresh interpreter (this one has imported everything): the modules the start-up
    threads would import on first use are imported by `_thread_imports`, and no others."""
    watched = ["google.api_core.grpc_helpers", "google.auth.compute_engine", "google.cloud.storage"]
    code = (
        "import sys\n"
        "import function.ops.wiring as wiring\n"
        "from devstack.sim.events import settings\n"
        f"watched = {watched!r}\n"
        "before = {m for m in watched if m in sys.modules}\n"
        f"wiring._thread_imports(settings(abi_uri={abi!r}))\n"
        "print(sorted({m for m in watched if m in sys.modules} - before))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == repr(sorted(imported)), out.stderr


def test_builds_in_threads_do_not_import_while_another_imports_the_firestore_library(
    checks: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet in one process (RELAYERS_FILE) builds its relayers in threads at once. One
    build's threads must not start (nor `_thread_imports` run) while another build imports
    the Firestore library: modules that import each other, imported from two threads at
    once, can fail one import. A second build starts while the first makes its client,
    which waits (up to 1 s) for the second to reach `_thread_imports`: it must not."""
    in_client, reached = threading.Event(), threading.Event()
    seen: dict[str, bool] = {"overlap": False}
    imports, made = wiring._thread_imports, wiring.firestore_client

    def thread_imports(settings: Any) -> None:
        if in_client.is_set():
            reached.set()
        imports(settings)

    def firestore_client(settings: Any) -> Any:
        if not in_client.is_set():  # the first build's client: the library's import
            in_client.set()
            seen["overlap"] = reached.wait(1.0)
        return made(settings)

    monkeypatch.setattr(wiring, "_thread_imports", thread_imports)
    monkeypatch.setattr(wiring, "firestore_client", firestore_client)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            _build()
        except BaseException as e:  # reported below
            errors.append(e)

    first = threading.Thread(target=build)
    first.start()
    assert in_client.wait(WAIT_S)
    second = threading.Thread(target=build)
    second.start()
    for t in (first, second):
        t.join(30)
    assert errors == []
    assert not seen["overlap"], "a build's start-up imports ran while another's client was made"
