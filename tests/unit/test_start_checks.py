"""A run's start-up checks (`wiring.build_relay`): the topics (GetTopic) and the RPC
endpoints (their chain id) are asked at once, two connections and their round trips
overlapping; when both are wrong, the topic's error is the one raised, as when the topics
were asked first; when only the RPC is wrong, its error is."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import function.ops.wiring as wiring
from devstack.sim.events import settings
from function.adapters.jsonrpc.client import JsonRpc
from function.adapters.pubsub import Publisher
from function.errors import ChainMismatchError, TopicNotFoundError
from function.stopping import StopSignal

ROOT = Path(__file__).resolve().parents[2]
ABI = str(ROOT / "contracts" / "build" / "Escrow.json")
WAIT_S = 5.0


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Both checks stubbed: each notes that it began and waits (up to WAIT_S) for the other
    to begin too, then fails as `seen["fail"]` says."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")  # never reached
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    began = {"topic": threading.Event(), "rpc": threading.Event()}
    seen: dict[str, Any] = {"fail": set(), "overlapped": set()}

    def check(name: str, other: str, error: Exception) -> None:
        began[name].set()
        if began[other].wait(WAIT_S):
            seen["overlapped"].add(name)
        if name in seen["fail"]:
            raise error

    def check_topic(self: Publisher, timeout_s: float = 10.0) -> None:
        check("topic", "rpc", TopicNotFoundError("PUBSUB_TOPIC: topic does not exist"))

    def check_endpoints(self: JsonRpc) -> None:
        check("rpc", "topic", ChainMismatchError("RPC_URL: chain 1, not 31337"))

    monkeypatch.setattr(Publisher, "check_topic", check_topic)
    monkeypatch.setattr(JsonRpc, "check_endpoints", check_endpoints)
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
