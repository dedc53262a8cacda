"""The delaying proxy, proven against a real anvil and the real Pub/Sub emulator: bytes go
through it intact in both directions (HTTP/1.1 and gRPC over HTTP/2), and a round trip
through it is never faster than the round trip it adds (a lower bound: no timing upper
bounds, the machine is noisy)."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
import requests
from google.pubsub_v1 import PublisherClient, PubsubMessage, SubscriberClient
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

from devstack.stack.clients import create_topic_and_subscription
from devstack.stack.delayproxy import DelayProxy
from devstack.stack.processes import http_session
from devstack.stack.services import Anvil, Stack

RTT_S = 0.03


@pytest.fixture
def anvil_proxy(anvil: Anvil) -> Iterator[DelayProxy]:
    with DelayProxy(anvil.address, RTT_S) as proxy:
        yield proxy


@pytest.fixture
def pubsub_proxy(stack: Stack) -> Iterator[DelayProxy]:
    with DelayProxy(stack.pubsub.address, RTT_S) as proxy:
        yield proxy


def _post(session: requests.Session, url: str, body: Any) -> bytes:
    reply = session.post(
        url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=30
    )
    reply.raise_for_status()
    return reply.content


def _batch(calls: int) -> list[dict[str, Any]]:
    """A long JSON-RPC batch (about 300 kB up), answered with full blocks (megabytes down)."""
    return [
        {"jsonrpc": "2.0", "id": f"{i}-{'x' * 64}", "method": "eth_getBlockByNumber",
         "params": [hex(i % 40), True]}
        for i in range(calls)
    ]  # fmt: skip


def test_anvil_answers_through_the_proxy_byte_for_byte_as_directly(
    anvil: Anvil, anvil_proxy: DelayProxy
) -> None:
    with http_session() as session:
        _post(session, anvil.rpc_url, {"jsonrpc": "2.0", "id": 1, "method": "anvil_mine",
                                       "params": ["0x28"]})  # fmt: skip
        body = _batch(3000)
        direct = _post(session, anvil.rpc_url, body)
    with http_session() as session:
        via = _post(session, f"http://{anvil_proxy.address}", body)
        again = _post(session, f"http://{anvil_proxy.address}", body)  # the same connection
    assert via == direct and again == direct
    assert len(json.loads(via)) == 3000
    sent = len(json.dumps(body))
    assert anvil_proxy.traffic.upstream_bytes > 2 * sent
    assert anvil_proxy.traffic.downstream_bytes > 2 * len(direct)
    assert anvil_proxy.traffic.connections == 1


def test_a_round_trip_to_anvil_through_the_proxy_takes_at_least_the_added_rtt(
    anvil_proxy: DelayProxy,
) -> None:
    url = f"http://{anvil_proxy.address}"
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    with http_session() as session:
        _post(session, url, call)  # the connection is open from here on
        for _ in range(5):
            started = time.perf_counter()
            answer = json.loads(_post(session, url, call))
            assert time.perf_counter() - started >= RTT_S
            assert answer["result"] == "0x7a69"


def test_a_new_connection_costs_its_set_up_round_trips_first(anvil: Anvil) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    with DelayProxy(anvil.address, RTT_S, setup_round_trips=2) as proxy:
        for _ in range(2):
            with http_session() as session:  # a new connection each time
                started = time.perf_counter()
                _post(session, f"http://{proxy.address}", call)
                assert time.perf_counter() - started >= 3 * RTT_S
        assert proxy.traffic.connections == 2


def test_pubsub_grpc_calls_through_the_proxy_carry_every_byte_both_ways(
    stack: Stack, pubsub_proxy: DelayProxy
) -> None:
    topic = f"delay-{uuid.uuid4().hex[:10]}"
    made = create_topic_and_subscription(
        stack.pubsub.address, stack.project, topic, f"{topic}-sub", ordering=True
    )
    channel = grpc.insecure_channel(pubsub_proxy.address)
    sub_channel = grpc.insecure_channel(
        pubsub_proxy.address, options=[("grpc.max_receive_message_length", -1)]
    )
    publisher = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
    subscriber = SubscriberClient(transport=SubscriberGrpcTransport(channel=sub_channel))
    try:
        # Beyond gRPC's first flow-control windows (64 kB): the stream has to wait for the
        # server's window updates, which come back through the proxy too.
        payloads = [os.urandom(1_500_000), os.urandom(700_000), b"", os.urandom(3)]
        messages = [
            PubsubMessage(data=p, attributes={"n": str(i), "pad": "y" * 500}, ordering_key="k")
            for i, p in enumerate(payloads)
        ]
        ids = publisher.publish(topic=made.topic_path, messages=messages, timeout=60).message_ids
        assert len(ids) == len(payloads)
        received: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while len(received) < len(payloads) and time.monotonic() < deadline:
            reply = subscriber.pull(
                request={"subscription": made.subscription_path, "max_messages": 10,
                         "return_immediately": True},
                timeout=30,
            )  # fmt: skip
            for r in reply.received_messages:
                received[r.message.message_id] = r.message
            if reply.received_messages:
                subscriber.acknowledge(
                    subscription=made.subscription_path,
                    ack_ids=[r.ack_id for r in reply.received_messages],
                    timeout=30,
                )
        assert sorted(received) == sorted(ids)
        for message_id, payload, i in zip(ids, payloads, range(len(payloads)), strict=True):
            got = received[message_id]
            assert got.data == payload
            assert dict(got.attributes) == {"n": str(i), "pad": "y" * 500}
            assert got.ordering_key == "k"
        assert pubsub_proxy.traffic.upstream_bytes > sum(map(len, payloads))
        assert pubsub_proxy.traffic.downstream_bytes > sum(map(len, payloads))
    finally:
        channel.close()
        sub_channel.close()


def test_a_pubsub_round_trip_through_the_proxy_takes_at_least_the_added_rtt(
    stack: Stack, pubsub_proxy: DelayProxy
) -> None:
    topic = f"delay-rt-{uuid.uuid4().hex[:10]}"
    create_topic_and_subscription(
        stack.pubsub.address, stack.project, topic, f"{topic}-sub", ordering=False
    )
    channel = grpc.insecure_channel(pubsub_proxy.address)
    publisher = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
    path = publisher.topic_path(stack.project, topic)
    try:
        publisher.get_topic(topic=path, timeout=30)  # connected from here on
        for _ in range(5):
            started = time.perf_counter()
            assert publisher.get_topic(topic=path, timeout=30).name == path
            assert time.perf_counter() - started >= RTT_S
    finally:
        channel.close()


def test_a_stopped_proxy_refuses_connections(anvil: Anvil) -> None:
    proxy = DelayProxy(anvil.address, RTT_S)
    host, port = proxy.address.split(":")
    with socket.create_connection((host, int(port)), timeout=5):
        pass
    proxy.stop()
    proxy.stop()  # twice is fine
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()
