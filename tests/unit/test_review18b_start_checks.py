"""Review 18b of 76a569c + 94833de: the start's checks in threads (`wiring.build_relay`).

Tests named FAILS show a finding; the others pin what held.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import function.ops.wiring as wiring
from devstack.sim.events import settings
from function.adapters.jsonrpc.client import JsonRpc
from function.adapters.pubsub import Publisher
from function.errors import AbiError, TopicNotFoundError
from function.stopping import StopSignal

ROOT = Path(__file__).resolve().parents[2]
ABI = str(ROOT / "contracts" / "build" / "Escrow.json")
# How long the test lets a build with a bad ABI take: the old code raised before any
# network; a check that waits (here until the test lets it go) should not hold it up.
BOUND_S = 8.0


@pytest.fixture
def silent_rpc() -> Iterator[str]:
    """An RPC endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/key-abc123"
    done.set()
    thread.join()
    for s in held:
        s.close()
    server.close()


@pytest.fixture
def topics_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # never reached
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")

    def check_topic(self: Publisher, timeout_s: float = 10.0) -> None:
        return None

    monkeypatch.setattr(Publisher, "check_topic", check_topic)


def _build_in_thread(
    abi_uri: str, rpc: str, stop: StopSignal
) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def build() -> None:
        try:
            out["relay"] = wiring.build_relay(
                settings(abi_uri=abi_uri, rpc_urls=(rpc,), contracts=("0x" + "ab" * 20,)), stop
            )
        except BaseException as e:
            out["error"] = e

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    return thread, out


def test_a_silent_rpc_endpoint_holds_a_bad_abi_only_for_the_checks_bound(
    silent_rpc: str, topics_ok: None, tmp_path: Path
) -> None:
    """Holds (pin): ABI_URI names a missing file and the RPC endpoint never answers: the
    endpoint check gives up after its own bound (`check_endpoints`, 3 s), so the ABI's error
    comes within seconds, not after the client's timeouts and retries."""
    stop = StopSignal()
    thread, out = _build_in_thread(str(tmp_path / "missing.json"), silent_rpc, stop)
    try:
        thread.join(BOUND_S)
        ended = not thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
    assert isinstance(out.get("error"), AbiError), out
    assert ended


def test_FAILS_a_bad_abi_does_not_wait_for_the_topic_check(
    monkeypatch: pytest.MonkeyPatch, topics_ok: None, tmp_path: Path
) -> None:
    """FAILS. ABI_URI names a missing file: a configuration error found without any network.
    Before 94833de the ABI was read first and the job exited 2 before it asked anything;
    now its error is raised only once the topic check (GetTopic, up to its 10 s deadline, a
    stuck Pub/Sub connection or a slow token fetch) and the RPC check have ended: the
    precedence is kept by waiting for every check, not by raising the ABI's error as soon
    as it is known. The check here waits until the test lets it go (as a GetTopic waiting
    for its deadline); the ABI's error should not wait for it."""
    release = threading.Event()
    asked = threading.Event()

    def check_topic(self: Publisher, timeout_s: float = 10.0) -> None:
        asked.set()
        release.wait(60)

    monkeypatch.setattr(Publisher, "check_topic", check_topic)
    stop = StopSignal()
    thread, out = _build_in_thread(str(tmp_path / "missing.json"), "http://127.0.0.1:1", stop)
    try:
        thread.join(BOUND_S)
        ended = not thread.is_alive()
    finally:
        release.set()
        stop.set()
        thread.join(30)
    assert isinstance(out.get("error"), AbiError), out
    assert ended, (
        f"the ABI's error was still not raised {BOUND_S:g} s into a build whose topic check "
        f"was under way (asked: {asked.is_set()})"
    )


def test_a_stop_during_the_start_ends_the_wait_and_the_abis_error_still_wins(
    silent_rpc: str, topics_ok: None, tmp_path: Path
) -> None:
    """Holds (pin): SIGTERM during the start (the stop set while the RPC check waits) ends
    that wait; the ABI's error is still the one raised, and no RPC URL (with its key) is in
    it."""
    stop = StopSignal()
    thread, out = _build_in_thread(str(tmp_path / "missing.json"), silent_rpc, stop)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    error = out.get("error")
    assert isinstance(error, AbiError), out
    assert "key-abc123" not in str(error)


def test_a_topics_error_wins_over_a_keyboard_interrupt_of_the_rpc_thread(
    monkeypatch: pytest.MonkeyPatch, topics_ok: None
) -> None:
    """Holds (pin): an error that is not a RelayerError in a thread (a KeyboardInterrupt
    here) keeps the order: the topic's error is raised, the other in its context."""

    def check_topic(self: Publisher, timeout_s: float = 10.0) -> None:
        raise TopicNotFoundError("PUBSUB_TOPIC: topic does not exist")

    def check_endpoints(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Publisher, "check_topic", check_topic)
    monkeypatch.setattr(JsonRpc, "check_endpoints", check_endpoints)
    with pytest.raises(TopicNotFoundError) as raised:
        wiring.build_relay(settings(abi_uri=ABI, contracts=("0x" + "ab" * 20,)), StopSignal())
    assert isinstance(raised.value.__context__, KeyboardInterrupt)
