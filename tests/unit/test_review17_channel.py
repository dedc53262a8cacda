"""Review 17, hostile: `adapters.pubsub.make_channel` against what the generated client it
replaces (`google.pubsub_v1.PublisherClient`) opens in production. No network: both are
asked for their channel through a stub of `grpc_helpers.create_channel`, and what they ask
for is compared.

The first test fails on the change (44b3294): the generated client targets
`pubsub.{GOOGLE_CLOUD_UNIVERSE_DOMAIN}`, the channel of our own always
`pubsub.googleapis.com`. The second passes and pins what the change kept for the default
universe."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import grpc_helpers
from google.auth.credentials import AnonymousCredentials

from function.adapters import pubsub


def _asked(monkeypatch: pytest.MonkeyPatch, build: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    asked: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def create_channel(*args: Any, **kwargs: Any) -> Any:
        asked.append((args, kwargs))
        import grpc  # type: ignore[import-untyped]

        return grpc.insecure_channel("127.0.0.1:1")  # never used

    monkeypatch.setattr(grpc_helpers, "create_channel", create_channel)
    build()
    [call] = asked
    return call


def _library_target(monkeypatch: pytest.MonkeyPatch) -> str:
    from google.pubsub_v1 import PublisherClient

    args, _ = _asked(
        monkeypatch,
        lambda: PublisherClient(credentials=AnonymousCredentials()),  # type: ignore[no-untyped-call]
    )
    return str(args[0])


def test_the_channel_goes_to_the_universe_domain_the_generated_client_goes_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FAILS on 44b3294 (low: only a deployment outside the googleapis.com universe, a
    Trusted Partner Cloud or sovereign cloud, is hit). With GOOGLE_CLOUD_UNIVERSE_DOMAIN
    set, the generated client the change replaced targets `pubsub.<that domain>`;
    `make_channel` hard-codes `pubsub.googleapis.com:443`, where credentials of the other
    universe are refused: every run fails at its start-up topic check.
    Fix: take the endpoint as the generated client does (`google.api_core.universe`
    `determine_domain` and the `pubsub.{UNIVERSE_DOMAIN}` template; GOOGLE_API_USE_MTLS_
    ENDPOINT likewise, or document that neither is honoured)."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_UNIVERSE_DOMAIN", "example-universe.test")
    library = _library_target(monkeypatch)
    assert library.startswith("pubsub.example-universe.test")  # what the library does
    args, _ = _asked(monkeypatch, pubsub.make_channel)
    assert args[0] == library


def test_in_the_default_universe_the_target_is_the_generated_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PASSES (pins the change): without a universe set, both target
    `pubsub.googleapis.com:443` with the same scopes and default host (the generated client
    passes its credentials, ours lets create_channel find Application Default Credentials
    with those scopes)."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_UNIVERSE_DOMAIN", raising=False)
    monkeypatch.delenv("GOOGLE_API_USE_MTLS_ENDPOINT", raising=False)
    monkeypatch.delenv("GOOGLE_API_USE_CLIENT_CERTIFICATE", raising=False)
    library = _library_target(monkeypatch)
    args, kwargs = _asked(monkeypatch, pubsub.make_channel)
    assert args[0] == library == "pubsub.googleapis.com:443"
    assert tuple(kwargs["default_scopes"]) == pubsub.SCOPES
    assert kwargs["default_host"] == pubsub.PUBSUB_HOST
