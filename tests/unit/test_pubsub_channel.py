"""The channel a run publishes on (`adapters.pubsub.make_channel`): to the emulator in the
clear when PUBSUB_EMULATOR_HOST is set; otherwise to Pub/Sub as the generated client opens
it (Application Default Credentials with its scopes, TLS, its options), through the same
`google.api_core.grpc_helpers.create_channel`. Production's channel cannot be opened here
(no credentials, no network): what it is asked for is checked instead."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import grpc_helpers
from google.pubsub_v1.services.publisher.transports.base import PublisherTransport

from function.adapters import pubsub


def test_without_an_emulator_the_channel_is_the_generated_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    asked: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    sentinel = object()

    def create_channel(*args: Any, **kwargs: Any) -> object:
        asked.append((args, kwargs))
        return sentinel

    monkeypatch.setattr(grpc_helpers, "create_channel", create_channel)
    assert pubsub.make_channel() is sentinel
    [(args, kwargs)] = asked
    assert args == (f"{PublisherTransport.DEFAULT_HOST}:443",)
    assert kwargs["default_scopes"] == PublisherTransport.AUTH_SCOPES
    assert kwargs["default_host"] == PublisherTransport.DEFAULT_HOST
    assert "credentials" not in kwargs and "scopes" not in kwargs  # ADC, default scopes
    options = dict(kwargs["options"])
    assert options["grpc.max_send_message_length"] == -1  # a 10 MB request goes out
    assert options["grpc.max_receive_message_length"] == -1


def test_with_an_emulator_the_channel_goes_there_in_the_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.setattr(grpc_helpers, "create_channel", pytest.fail)  # never for the emulator
    channel = pubsub.make_channel()
    try:
        assert channel is not None
    finally:
        channel.close()


def test_the_generated_clients_channel_options_are_ours() -> None:
    # The generated transport's own options (read from its source): ours are the same.
    import inspect

    from google.pubsub_v1.services.publisher.transports import grpc as transport

    source = inspect.getsource(transport)
    for name, _ in pubsub.CHANNEL_OPTIONS:
        assert f'("{name}", ' in source, name
    assert pubsub.SCOPES == PublisherTransport.AUTH_SCOPES
    assert pubsub.PUBSUB_HOST == PublisherTransport.DEFAULT_HOST
