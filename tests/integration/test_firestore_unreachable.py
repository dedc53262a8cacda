"""With Firestore unreachable a run fails within its call timeout, naming Firestore.

The real client library against a port nothing listens on (connection refused, gRPC's
UNAVAILABLE, which the library retries): before each call bounded its retries
(`conditional.READS`, `WRITES`) the lease's first read kept retrying for the library's 300 s.
The bound checked is a liveness bound (twice the call timeout, plus slack for a loaded
machine), not a speed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.cloud import firestore

from devstack.stack.processes import free_port
from function.adapters.firestore import conditional
from function.adapters.firestore.state import FirestoreState
from function.errors import StateError
from harness import outcome_within

BOUND_S = 2 * conditional.TIMEOUT_S + 20


def test_taking_the_lease_fails_with_a_state_error_when_firestore_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    client = firestore.Client(project="unreachable-test")
    state = FirestoreState(client, "unreachable", {"chain_id": 1})
    outcome = outcome_within(lambda: state.acquire("run-1", datetime.now(UTC), 60.0), BOUND_S)
    assert isinstance(outcome, StateError), outcome
    assert "Firestore" in str(outcome)
