"""The two networks the end-to-end comparison runs on: loopback, and Google Cloud's round trips.

`local` is what the children get from the stack: the emulators' and anvil's own ports.
`delayed` puts a `DelayProxy` (devstack/stack/delayproxy.py) in front of each of them, so
that the relayer and the floor reach the chain, Pub/Sub and Firestore across `rtt_s` of
round trip, and pay `setup_round_trips` round trips per new connection (TCP and TLS 1.3: in
Google Cloud every endpoint is HTTPS). The bench's own set-up calls (topics, Firestore
resets, pulls) keep going to the services directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from devstack.stack.delayproxy import DelayProxy

PUBSUB, FIRESTORE = "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"


@dataclass(frozen=True)
class Network:
    """How a child process reaches the services: emulator hosts and RPC URLs."""

    label: str  # "local" or "delayed"
    rtt_s: float
    setup_round_trips: int = 0
    hosts: dict[str, str] = field(default_factory=dict)  # emulator variable: host:port
    rpc: dict[str, str] = field(default_factory=dict)  # the chain's URL: the URL to use

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` (the stack's environment) with the emulator hosts of this network."""
        return {**base, **self.hosts}

    def rpc_url(self, url: str) -> str:
        return self.rpc.get(url, url)

    def describe(self) -> str:
        if not self.rtt_s:
            return "loopback"
        return (
            f"{self.rtt_s * 1000:g} ms round trips, {self.setup_round_trips} more per new "
            "connection"
        )


LOCAL = Network("local", 0.0)


@contextmanager
def delayed(
    env: Mapping[str, str], rpc_urls: Sequence[str], rtt_s: float, setup_round_trips: int
) -> Iterator[Network]:
    """Proxies in front of both emulators (as `env` names them) and each RPC URL."""
    with ExitStack() as stack:

        def proxy(upstream: str) -> str:
            started = DelayProxy(upstream, rtt_s, setup_round_trips=setup_round_trips)
            stack.callback(started.stop)
            return started.address

        hosts = {name: proxy(env[name]) for name in (PUBSUB, FIRESTORE)}
        rpc = {url: f"http://{proxy(url.split('://', 1)[1])}" for url in rpc_urls}
        yield Network("delayed", rtt_s, setup_round_trips, hosts, rpc)
