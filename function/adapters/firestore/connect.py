"""Open a Firestore client's connection before its first call.

The client connects on its first call, and a run's first call is the lease: the TCP
handshake (and, deployed, TLS's) then comes before the lease's own round trips, while the
run's other start-up checks (the RPC endpoints, the topics) have already ended. Asked for
as soon as the client is made, the connection is opened by gRPC in the background, beside
those checks. It costs no Firestore operation.
"""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]

_SETTLED = (
    grpc.ChannelConnectivity.READY,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
    grpc.ChannelConnectivity.SHUTDOWN,
)


def connect_early(client: Any) -> None:
    """Start connecting `client`'s channel now; best effort: a library version that keeps
    its channel elsewhere connects on first use, as it always did."""
    try:
        channel = client._firestore_api._transport.grpc_channel
        subscribe, unsubscribe = channel.subscribe, channel.unsubscribe
    except AttributeError:
        return

    def watch(state: grpc.ChannelConnectivity) -> None:
        # Once connected (or failed: the first call then reports it) nothing more to watch:
        # a watcher left subscribed keeps a gRPC thread polling the channel.
        if state in _SETTLED:
            unsubscribe(watch)

    subscribe(watch, try_to_connect=True)
