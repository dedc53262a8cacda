"""Fixtures that run the real local stack: the suite starts it itself, so it runs in CI too.

The emulators start once per session (their JVMs take a second or two); anvil starts per test
(~0.05 s), so no test sees another's chain. Pub/Sub isolation comes from fresh topic ids,
Firestore isolation from the opt-in `firestore_reset`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.stack.clients import PubSubTopic, create_topic_and_subscription, reset_firestore
from devstack.stack.services import Anvil, FirestoreEmulator, Stack, start_anvil
from function.config import Runtime, Settings
from function.stopping import StopSignal
from harness import Deployment, deploy

PROJECT = "relayer-test"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The three emulators, with their env vars set for this session's clients and children."""
    with Stack.start(PROJECT) as started, pytest.MonkeyPatch.context() as env:
        for name, value in started.env().items():
            env.setenv(name, value)
        yield started


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """A fresh chain (id 31337, cancun, 256 states kept) for one test."""
    with start_anvil() as chain:
        yield chain


@pytest.fixture
def firestore_reset(stack: Stack) -> FirestoreEmulator:
    """An empty Firestore database at the start of the test."""
    reset_firestore(stack.firestore.address, stack.project)
    return stack.firestore


@pytest.fixture
def pubsub_topic(stack: Stack, request: pytest.FixtureRequest) -> PubSubTopic:
    """A topic and ordered subscription only this test uses, so it sees only its own messages."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:80]
    unique = f"t-{name}-{uuid.uuid4().hex[:10]}"
    return create_topic_and_subscription(
        stack.pubsub.address, stack.project, unique, f"{unique}-sub", ordering=True
    )


@pytest.fixture
def deployment(
    stack: Stack, anvil: Anvil, firestore_reset: FirestoreEmulator, pubsub_topic: PubSubTopic
) -> Deployment:
    """A freshly deployed escrow, an empty Firestore and a topic: one relayer's world."""
    return deploy(anvil, pubsub_topic)


@pytest.fixture
def relay_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[StopSignal]]:
    """`relay_http` with its relayers stubbed (each ends ok, none runs for real): the stop
    of every request that got to run them, in order."""
    from function.core.summary import OK, RunSummary
    from function.ops import app
    from function.run.relay import Outcome, utcnow

    root = logging.getLogger()
    kept = (root.handlers[:], root.level)
    seen: list[StopSignal] = []

    def run(runtime: Runtime, fleet: list[Settings], stop: StopSignal) -> list[Outcome]:
        seen.append(stop)
        return [Outcome(RunSummary("r", s.relayer_id, utcnow(), outcome=OK)) for s in fleet]

    monkeypatch.setattr(app, "run_relayers", run)
    app.clear_cache()
    yield seen
    app.clear_cache()
    root.handlers[:] = kept[0]
    root.setLevel(kept[1])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What the deterministic simulation covered (tests/unit/test_simulation.py)."""
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
        "failed", []
    ):
        for name, value in getattr(report, "user_properties", []):
            if name == "simulation":
                terminalreporter.write_line(f"simulation: {value}")
