"""The one place that builds real clients: JSON-RPC, Firestore, Pub/Sub, Storage."""

from __future__ import annotations

import importlib
import logging
import os
import threading
import uuid
from typing import TYPE_CHECKING

from function.adapters.chain import ChainReader
from function.adapters.firestore.connect import connect_early
from function.adapters.jsonrpc.client import JsonRpc
from function.adapters.pubsub import Publisher, make_channel
from function.adapters.storage import read_abi
from function.adapters.transactions import TransactionReader
from function.config import Settings
from function.core.abi import load_specs
from function.core.catalogue import EventCatalogue
from function.core.checkpoint import Commit
from function.core.creations import Factory, factory_of
from function.core.identity import Identity
from function.core.summary import RunSummary
from function.redact import scrub
from function.run.ahead import read_ahead
from function.run.relay import Relay
from function.stopping import StopSignal

if TYPE_CHECKING:  # imported where used: building a run imports them while it waits
    from google.cloud import firestore

    from function.adapters.firestore.state import FirestoreState

log = logging.getLogger(__name__)

# Held from a build's `_thread_imports` until its Firestore client is made: a fleet in one
# process (RELAYERS_FILE) builds its relayers in threads at once, and another build's
# threads would otherwise import beside this one's Firestore import (`_thread_imports`).
_STARTING = threading.Lock()


def firestore_client(settings: Settings) -> firestore.Client:
    from google.cloud import firestore  # here, not above: see build_relay

    return firestore.Client(
        project=settings.firestore_project, database=settings.firestore_database
    )


def chain_reader(
    settings: Settings,
    timeout_s: float = 15.0,
    attempts: int = 4,
    stop: StopSignal | None = None,
    check_endpoints: bool = False,
    deadline_s: float | None = None,
) -> ChainReader:
    """With `stop`, every RPC wait ends at SIGTERM; `check_endpoints` asks every URL of
    RPC_URL for its chain id now (a mismatch raises `ChainMismatchError`, exit 2);
    `deadline_s` bounds each read in all, Retry-After included (status: the job waits)."""
    rpc = JsonRpc(
        settings.rpc_urls,
        settings.chain_id,
        timeout_s=timeout_s,
        attempts=attempts,
        stop=stop,
        deadline_s=deadline_s,
    )
    if check_endpoints:
        rpc.check_endpoints()
    return ChainReader(rpc)


def identity_of(settings: Settings) -> Identity:
    topic = f"projects/{settings.pubsub_project}/topics/{settings.topic}"
    factory = settings.factory.text if settings.factory else None
    return Identity(
        settings.relayer_id,
        settings.chain_id,
        settings.contracts,
        settings.default_id,
        topic,
        factory,
    )


def factory_from(settings: Settings, specs: EventCatalogue) -> Factory | None:
    """RELAYER_FACTORY checked against the ABI (a `ConfigError`, exit 2, when it does not fit)."""
    if settings.factory is None:
        return None
    return factory_of(settings.factory, specs, settings.abi_uri)


def specs_of(settings: Settings) -> tuple[EventCatalogue, Factory | None]:
    """The ABI's events as selected, and RELAYER_FACTORY checked against them (an
    `AbiError` or a `ConfigError`, exit 2)."""
    specs = load_specs(read_abi, settings.abi_uri, settings.events, settings.arg_filters)
    return specs, factory_from(settings, specs)


def transaction_reader(settings: Settings, chain: ChainReader) -> TransactionReader | None:
    """RELAYER_INCLUDE=transaction: the transactions, read through the chain's own client."""
    return TransactionReader(chain.rpc) if settings.include_transaction else None


def state_store(
    settings: Settings, client: firestore.Client, task: str | None = None, guard: bool = True
) -> FirestoreState:
    """`guard`: refuse a contract set that does not fit the stored state (`core.identity`);
    off only for the command that accepts a new set on purpose."""
    from function.adapters.firestore.state import FirestoreState

    me = identity_of(settings)
    return FirestoreState(client, settings.relayer_id, me.fields(), task, me if guard else None)


def publishers(settings: Settings) -> tuple[Publisher, Publisher | None]:
    """The topic's publisher and the dead-letter topic's, each topic checked (a missing one
    raises `TopicNotFoundError`, exit 2)."""
    channel = make_channel()
    publisher = Publisher(channel, settings.pubsub_project, settings.topic)
    publisher.check_topic()
    dead_letters = None
    if settings.deadletter_topic:
        dead_letters = Publisher(
            channel, settings.pubsub_project, settings.deadletter_topic, "RELAYER_DEADLETTER_TOPIC"
        )
        dead_letters.check_topic()
    return publisher, dead_letters


def build_relay(
    settings: Settings,
    stop: StopSignal,
    task: str | None = None,
    specs_read: tuple[EventCatalogue, Factory | None] | None = None,
) -> Relay:
    """Everything a run needs; raises the deployment errors (ABI, topic) before any state
    is touched, so a misconfigured job exits 2 without writing. `specs_read`: what
    `specs_of(settings)` returned to a caller that checked the ABI first (not read again)."""
    # DEBUG: an idle run logs its summary alone; /status shows the same at any time.
    log.debug(
        "chain %d%s: RELAYER_CONFIRMATIONS=%d (%s), RELAYER_HEAD=%s",
        settings.chain_id,
        f" ({settings.chain_name})" if settings.chain_name else "",
        settings.confirmations,
        {
            "RELAYER_CONFIRMATIONS": "set",
            "chain preset": "the chain's preset, README: Known chains",
            "default": "the default for a chain not in the README's table",
        }[settings.confirmations_from],
        settings.head,
    )
    # The ABI (a Cloud Storage read when deployed), the topics and the RPC endpoints are
    # asked at once: new connections and their round trips, not one after the other. The
    # errors are raised as when they were asked in that order: the ABI's first, then a
    # topic's, then the RPC's.
    made: firestore.Client | Exception
    with _STARTING:  # a fleet builds in threads: one start's imports at a time
        _thread_imports(settings)
        abi = read_ahead(lambda: specs_read if specs_read is not None else specs_of(settings))
        topics = read_ahead(lambda: publishers(settings))
        endpoints = read_ahead(lambda: chain_reader(settings, stop=stop, check_endpoints=True))
        try:
            # While they wait on the network: importing the Firestore library is a fifth of
            # an idle run's start. Their errors win over the client's.
            made = firestore_client(settings)
            connect_early(made)  # its handshakes beside the checks', not before the lease
        except Exception as e:
            made = e
    # The ABI's error is a configuration error found without the network: raised as soon as
    # it is known, not after the checks (their threads end on their own timeouts).
    specs, factory = abi.result()
    try:
        chain = endpoints.result()
    finally:
        publisher, dead_letters = topics.result()
    if isinstance(made, Exception):
        raise made
    client = made
    state = state_store(settings, client, task)
    transactions = transaction_reader(settings, chain)
    heads = None
    if settings.ws_url is not None and settings.run_s > 0:  # only a follower waits for heads
        from function.adapters.heads import HeadWaker

        heads = HeadWaker(settings.ws_url, stop)
    return Relay(
        settings=settings,
        specs=specs,
        chain=chain,
        state=state,
        records=state.records,
        sink=publisher,
        stop=stop,
        dead_letters=dead_letters,
        heads=heads,
        transactions=transactions,
        factory=factory,
    )


def _thread_imports(settings: Settings) -> None:
    """Import here what `build_relay`'s threads import on first use, before they start:
    the main thread imports the Firestore library meanwhile, and two threads importing
    modules that import each other can deadlock (Python then fails one import). With the
    emulators and a local ABI they need nothing more."""
    needed = []
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):  # make_channel: TLS with credentials
        needed += ["google.api_core.grpc_helpers", "google.auth.compute_engine"]
    if any(u.strip().startswith("gs://") for u in settings.abi_uri.split(",")):
        needed += ["google.cloud.storage", "google.cloud.storage.retry"]
    for name in needed:
        importlib.import_module(name)


def record_failure(settings: Settings, summary: RunSummary) -> None:
    """Put a run that failed before it started (a missing topic, a bad ABI) in `last_run`,
    so status shows it; under the lease, and never at the cost of a running run."""
    try:
        # Without the chain and contracts: a run that failed before it started (a node of
        # another chain, say) must not write its settings over the state's, only its summary.
        from function.adapters.firestore.state import FirestoreState

        store = FirestoreState(firestore_client(settings), settings.relayer_id, {})
        summary.run_id = uuid.uuid4().hex[:16]
        grant = store.acquire(summary.run_id, summary.started_at, settings.lease_s)
        if grant is not None:
            store.commit(grant, summary.started_at, Commit(summary=summary))
    except Exception as e:
        log.warning("could not record the failure in Firestore: %s", scrub(str(e)))
