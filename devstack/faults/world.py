"""The fault campaign's fixed world: one chain with the escrow's history, and its ground truth.

Every trial relays the same blocks under a relayer id of its own, so the truth is computed
once: the escrow driver's record of what it sent (the §3 payloads) checked against the
chain's own `eth_getLogs`. Also here, the observers: what a subscriber received (every copy,
with the run that published it and when Pub/Sub accepted it), the `/status` answer for a
relayer, and a poller of its checkpoint.

Errors: ScenarioError (from the driver) when the chain and the driver disagree.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.pubsub_v1 import SubscriberClient
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport
from web3 import Web3

from devstack.chain.escrow import ARTIFACT_PATH, ScenarioError, deploy_escrow, make_activity
from devstack.faults.launch import Launcher, Spawner
from devstack.stack.clients import PULL_TIMEOUT_S, QuietWindow

CHAIN_ID = 31337
POLL_S = 0.05
_ENV_LOCK = threading.RLock()  # the Google clients read their emulator host from os.environ


@dataclass(frozen=True)
class World:
    """The chain every trial relays, and what a relayer must publish from it."""

    project: str
    pubsub_host: str
    firestore_host: str
    rpc_url: str
    contract: str
    start_block: int
    head: int
    truth: dict[str, dict[str, Any]]  # event_id -> the §3 payload, of the canonical chain
    launcher: Launcher = field(default_factory=Spawner)  # how runs are started
    abi_uri: str = str(ARTIFACT_PATH)
    # A chain that reorganised: the logs it held once and no longer does (event_id -> the
    # payload they had), the first block of each replaced stretch, and when the last
    # reorganisation happened (epoch seconds).
    orphans: dict[str, dict[str, Any]] = field(default_factory=dict)
    forks: tuple[int, ...] = ()
    reorged_at: float | None = None

    @property
    def known(self) -> dict[str, dict[str, Any]]:
        """Every log the chain held at some point: the canonical ones and the orphans."""
        return {**self.orphans, **self.truth}

    def block_of(self, event_id: str) -> int:
        payload = self.truth.get(event_id) or self.orphans[event_id]
        return int(payload["block_number"])


def build_world(
    project: str,
    pubsub_host: str,
    firestore_host: str,
    rpc_url: str,
    *,
    events: int = 60,
    blocks: int = 20,
    seed: int = 7,
    launcher: Launcher | None = None,
) -> World:
    """Deploy the escrow, make its history, and check the driver's truth against the chain."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    contract = deploy_escrow(w3)
    start = int(w3.eth.block_number) + 1
    expected = make_activity(w3, contract, events, blocks=blocks, seed=seed)
    head = int(w3.eth.block_number)
    logs = w3.provider.make_request(
        "eth_getLogs",  # type: ignore[arg-type]
        [{"fromBlock": hex(start), "toBlock": hex(head), "address": contract}],
    )["result"]
    on_chain = {f"{CHAIN_ID}:{e['blockHash'].lower()}:{int(e['logIndex'], 16)}" for e in logs}
    truth = {e["event_id"]: dict(e) for e in expected}
    if on_chain != set(truth):
        raise ScenarioError(
            f"the chain holds {len(on_chain)} logs, the driver expects {len(truth)}: "
            f"{len(on_chain ^ set(truth))} differ"
        )
    return World(
        project,
        pubsub_host,
        firestore_host,
        rpc_url,
        contract,
        start,
        head,
        truth,
        launcher or Spawner(),
    )


def relayer_env(world: World, relayer_id: str, topic: str, **settings: str) -> dict[str, str]:
    """`python main.py`'s environment for one relayer of the world (emulators included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYER_", "LOG_"))}
    env.update(
        CHAIN_ID=str(CHAIN_ID),
        RPC_URL=world.rpc_url,
        CONTRACT_ADDRESS=world.contract,
        ABI_URI=world.abi_uri,
        PUBSUB_PROJECT_ID=world.project,
        PUBSUB_TOPIC=topic,
        START_BLOCK=str(world.start_block),
        RELAYER_ID=relayer_id,
        RELAYER_CONFIRMATIONS="0",
        PUBSUB_EMULATOR_HOST=world.pubsub_host,
        FIRESTORE_EMULATOR_HOST=world.firestore_host,
        LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


@contextlib.contextmanager
def emulator_env(**hosts: str) -> Iterator[None]:
    """os.environ pointing the Google clients at these emulators while a client is built."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in hosts}
        os.environ.update(hosts)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def firestore_client(project: str, host: str) -> firestore.Client:
    with emulator_env(FIRESTORE_EMULATOR_HOST=host):
        return firestore.Client(project=project)


@dataclass(frozen=True)
class Copy:
    """One message a subscriber received."""

    event_id: str
    message_id: str
    data: bytes
    run: str  # the `fault_run` tag of the process that published it ("" if untagged)
    accepted_at: float  # Pub/Sub's publish time (epoch seconds)
    removed: bool = False  # the `removed` attribute: a retraction (§3)


def drain(
    host: str, subscription_path: str, *, idle_s: float = 0.5, at_least: int = 0
) -> list[Copy]:
    """Pull and ack until the emulator has answered "nothing" for idle_s (and at least
    `at_least` distinct messages arrived, or PULL_PATIENCE_S passed); each message id once.
    Quiet is judged by answers, not by the clock alone: on a starved machine a pull can take
    longer than idle_s, and a drain that timed out its own pulls would report nothing."""
    # big events: one pull answer may hold tens of megabytes (gRPC's default cap is 4 MB)
    channel = grpc.insecure_channel(host, options=[("grpc.max_receive_message_length", 1 << 30)])
    subscriber = SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
    seen: dict[str, Copy] = {}
    quiet = QuietWindow(idle_s)
    try:
        while not quiet.over(len(seen) >= at_least):
            try:
                reply = subscriber.pull(
                    # return_immediately: the emulator otherwise holds an empty pull ~4 s
                    request={
                        "subscription": subscription_path,
                        "max_messages": 100,
                        "return_immediately": True,
                    },
                    timeout=PULL_TIMEOUT_S,
                    retry=None,
                )
            except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
                time.sleep(0.05)
                continue
            if not reply.received_messages:
                quiet.empty()
                time.sleep(0.02)
                continue
            for received in reply.received_messages:
                m = received.message
                seen.setdefault(
                    m.message_id,
                    Copy(
                        m.attributes.get("event_id", ""),
                        m.message_id,
                        bytes(m.data),
                        m.attributes.get("fault_run", ""),
                        m.publish_time.timestamp(),
                        m.attributes.get("removed") == "true",
                    ),
                )
            subscriber.acknowledge(
                subscription=subscription_path,
                ack_ids=[r.ack_id for r in reply.received_messages],
                timeout=30.0,
            )
            quiet.arrived()
    finally:
        channel.close()
    return list(seen.values())


_STATUS = """
import os
from function.ops import app
body, code, _ = app.status_http(os.environ, "/status")
print("STATUS", code, body if isinstance(body, str) else body.decode(), flush=True)
"""


def relayer_status(
    launcher: Launcher, env: dict[str, str], timeout: float = 20.0
) -> dict[str, Any]:
    """The `/status` answer for the relayer `env` configures, from a fresh process as the
    status function would give it: its HTTP code and the relayer's entry."""
    done = threading.Event()
    codes: list[int] = []

    def ended(code: int) -> None:
        codes.append(code)
        done.set()

    with tempfile.NamedTemporaryFile(prefix="faults-status-", suffix=".out") as out:
        pid = launcher.start(env, Path(out.name), ended, _STATUS)
        if not done.wait(timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            done.wait(10)
            return {"healthy": None, "reasons": [f"status did not answer within {timeout:g} s"]}
        text = Path(out.name).read_text(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("STATUS ")), None)
    if line is None:
        tail = text.strip().splitlines()[-1:] or ["no output"]
        return {"healthy": None, "reasons": [f"status failed (exit {codes}): {tail[0]}"]}
    _, code, body = line.split(" ", 2)
    answer = json.loads(body)
    entry: dict[str, Any] = (answer.get("relayers") or [answer])[0]
    entry["http"] = int(code)
    return entry


class Poller:
    """Reads the relayer's checkpoint every POLL_S seconds: (time, next_block) changes."""

    def __init__(self, client: firestore.Client, relayer_id: str) -> None:
        self._ref = client.collection("relayers").document(relayer_id)
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="fault-poller")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                doc = self._ref.get(timeout=2.0, retry=None).to_dict() or {}
            except Exception:  # an emulator stopped on purpose: read again later
                continue
            value = doc.get("next_block")
            if value is not None and (not self.seen or self.seen[-1][1] != value):
                self.seen.append((time.time(), int(value)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
