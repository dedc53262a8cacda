"""Requests applied whose answers were lost (a connection cut after the server acted): the
relayer must tell "done" from "failed" by looking, not by the error it got.

A TCP proxy in front of the emulator (devstack/stack/tcphold.py `lose_answer`) forwards the
request, drops the answer and cuts the connection; the client library's retry then fails
(Firestore: the transaction is closed) or sends the same request again (Pub/Sub).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from devstack.stack.services import Stack
from devstack.stack.tcphold import TcpHoldProxy
from harness import Deployment, assert_exactly_once, payloads, relayer_doc, run_main


@pytest.fixture
def firestore_proxy(stack: Stack) -> Iterator[TcpHoldProxy]:
    proxy = TcpHoldProxy(stack.firestore.address)
    yield proxy
    proxy.stop()


@pytest.fixture
def pubsub_proxy(stack: Stack) -> Iterator[TcpHoldProxy]:
    proxy = TcpHoldProxy(stack.pubsub.address)
    yield proxy
    proxy.stop()


def test_a_lost_answer_to_the_last_commit_is_still_a_successful_run(
    deployment: Deployment, firestore_proxy: TcpHoldProxy
) -> None:
    deployment.expected = deployment.make_activity(5, blocks=2)
    cut = firestore_proxy.lose_answer(b"last_run")  # the last commit carries the summary

    run = run_main(deployment.env(FIRESTORE_EMULATOR_HOST=firestore_proxy.address))

    assert cut.is_set()
    assert (run.code, run.summary["outcome"]) == (0, "ok"), run.stdout[-800:]
    doc = relayer_doc(deployment.relayer_id)
    assert doc["last_run"]["outcome"] == "ok" and doc["lease"]["owner"] is None
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


def test_a_lost_answer_to_the_lease_acquisition_leaves_no_stuck_lease(
    deployment: Deployment, firestore_proxy: TcpHoldProxy
) -> None:
    deployment.expected = deployment.make_activity(5, blocks=2)
    cut = firestore_proxy.lose_answer(b"expires_at")  # the lease-taking transaction
    env = deployment.env()

    first = run_main({**env, "FIRESTORE_EMULATOR_HOST": firestore_proxy.address})

    assert cut.is_set()
    assert (first.code, first.summary["outcome"]) == (0, "ok"), first.stdout[-800:]
    assert relayer_doc(deployment.relayer_id)["lease"]["owner"] is None
    second = run_main(env)
    assert second.summary["outcome"] == "idle"
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)


def test_a_lost_publish_answer_sends_the_request_again_with_the_same_event_ids(
    deployment: Deployment, pubsub_proxy: TcpHoldProxy
) -> None:
    # Pub/Sub has no idempotent publish: a request whose answer is lost is sent again, so
    # its messages may arrive twice (README, Guarantees). They are the same messages.
    deployment.expected = deployment.make_activity(5, blocks=2)
    cut = pubsub_proxy.lose_answer(b'"event_id"')

    run = run_main(deployment.env(PUBSUB_EMULATOR_HOST=pubsub_proxy.address))

    assert cut.is_set()
    assert (run.code, run.summary["outcome"]) == (0, "ok"), run.stdout[-800:]
    got = payloads(deployment.topic.pull_all())
    counts = Counter(p["event_id"] for p in got)
    assert set(counts) == {e["event_id"] for e in deployment.expected}
    assert max(counts.values()) <= 2
    by_id = {e["event_id"]: e for e in deployment.expected}
    assert all(p == by_id[p["event_id"]] for p in got)
    records = relayer_doc(deployment.relayer_id)
    assert records["totals"]["events_published"] == len(deployment.expected)
