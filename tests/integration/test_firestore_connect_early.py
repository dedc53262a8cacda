"""A run's Firestore connection is opened while its start waits on the network
(`function.adapters.firestore.connect.connect_early`), not by its first call (the lease).

Observed through a delaying proxy in front of the emulator: its traffic says when the
connection was made and whether the first call reused it. No time is measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from google.cloud import firestore

from devstack.stack.delayproxy import DelayProxy
from devstack.stack.services import Stack
from function.adapters.firestore.connect import connect_early

WAIT_S = 20.0  # how long the test waits for what a working version does within a second


@pytest.fixture
def proxied(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[DelayProxy]:
    with DelayProxy(stack.firestore.address, rtt_s=0.05, setup_round_trips=2) as proxy:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", proxy.address)
        yield proxy


def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"after {WAIT_S:g} s: {what}")
        time.sleep(0.02)


def test_the_connection_is_made_before_any_call_and_the_first_call_reuses_it(
    proxied: DelayProxy, stack: Stack
) -> None:
    client = firestore.Client(project=stack.project)
    connect_early(client)
    # The server's side of the HTTP/2 handshake came back: connected, with no call made.
    _until(lambda: proxied.traffic.downstream_bytes > 0, "no bytes came back")
    assert proxied.traffic.connections == 1
    client.collection("relayers").document("early").get(timeout=30)
    assert proxied.traffic.connections == 1  # the call went on that connection


def test_without_it_nothing_connects_until_the_first_call(
    proxied: DelayProxy, stack: Stack
) -> None:
    """The control: what `connect_early` changes."""
    client = firestore.Client(project=stack.project)
    client._firestore_api  # noqa: B018 - the channel made, as connect_early makes it
    time.sleep(0.5)
    assert proxied.traffic.connections == 0
    client.collection("relayers").document("early").get(timeout=30)
    assert proxied.traffic.connections == 1


def test_a_client_without_the_expected_channel_is_left_to_connect_on_first_use() -> None:
    class Other:
        pass

    connect_early(Other())  # type: ignore[arg-type]  # nothing raised, nothing done
