"""Scenarios of providers and networks that repeat, refuse or hold (on the escrow world),
through the RPC proxy's modes (devstack/rpcproxy/proxy.py).

- `rpc_repeats`: eth_getLogs answers repeat a log, as an exact copy (on for the whole trial:
  the relayer must drop it) or as a different log at the same index (on for the first runs:
  the relayer must refuse it, not publish either); runs killed at random instants. Never
  two messages for one event_id from one run (strict duplicates), never other data.
- `rpc_batch_caps`: the provider refuses batches over 1 to 5 calls as geth does (HTTP 200,
  one item with the first id and -32600 "batch too large"; or as another node does) and its
  logs carry no `blockTimestamp`, so the headers come in capped batches; runs with kills.
- `sigterm@slow_rpc`: SIGTERM while the provider holds an eth_getLogs or eth_blockNumber
  answer for 30 s: out within 10 s, `ok` and interrupted, lease released.
- `sigterm@slow_pubsub`: SIGTERM while a TCP proxy (devstack/stack/tcphold.py, split at the HTTP/2
  frame: devstack/faults/h2hold.py) holds a publish request's messages on the wire, its
  headers (and deadline) gone ahead: out within 10 s, `ok` and interrupted; the lease
  released, or held until the held request can no longer be accepted; no double publish.
"""

from __future__ import annotations

import random
import signal
import time

from devstack.faults.h2hold import FrameHoldProxy
from devstack.faults.proc import Proc
from devstack.faults.trial import Trial
from devstack.faults.world import World
from devstack.rpcproxy import RpcProxy
from devstack.rpcproxy.bodies import BATCH_BODIES
from devstack.rpcproxy.calls import REPEATS

RUN_S = 0.8  # a run's life through the proxy, about: random kills fall in it


def _proxied(
    world: World, rng: random.Random, scenario: str, *, lease_s: float, batch: int = 1000
) -> tuple[Trial, RpcProxy]:
    proxy = RpcProxy(world.rpc_url)
    proxy._server.handle_error = lambda *_: None  # type: ignore[method-assign]  # killed clients
    trial = Trial(world, scenario, rpc_url=proxy.url("/v2/secret-key"), lease_s=lease_s,
                  batch=batch, interval=rng.choice((2, 3, 4)))  # fmt: skip
    trial.cleanups.append(proxy.stop)
    return trial, proxy


def _runs_with_kills(trial: Trial, rng: random.Random, runs: int) -> None:
    for _ in range(runs):
        proc = trial.launch()
        if rng.random() < 0.5:
            trial.kill_after(proc, rng.uniform(0.0, RUN_S))
        proc.wait()
        trial.wait_lease()


def rpc_repeats(world: World, rng: random.Random) -> Trial:
    """Repeated logs in eth_getLogs answers."""
    trial, proxy = _proxied(world, rng, "rpc-repeats", batch=rng.choice((6, 10, 1000)),
                            lease_s=1.5)  # fmt: skip
    trial.strict_duplicates = True
    kind = rng.choice(REPEATS)
    trial.notes.append(f"repeat: {kind}")
    proxy.repeat_logs(kind)
    _runs_with_kills(trial, rng, 2)
    if kind == "shared_index":  # a log no node would confirm: a relayer stops on it
        proxy.repeat_logs(None)
    trial.recover()
    if not any(c.answer == "repeat" for c in proxy.calls):
        trial.notes.append("no answer repeated a log")
    return trial


def rpc_batch_caps(world: World, rng: random.Random) -> Trial:
    """Batches capped at 1-5 calls (geth's answer, or another node's), logs without
    blockTimestamp."""
    trial, proxy = _proxied(world, rng, "rpc-batch-caps", batch=rng.choice((6, 10, 1000)),
                            lease_s=1.5)  # fmt: skip
    cap, provider = rng.randint(1, 5), rng.choice(("geth", "geth", *BATCH_BODIES))
    proxy.cap_batches(cap, provider)
    proxy.strip_timestamps()
    trial.notes.append(f"batch cap {cap} ({provider})")
    _runs_with_kills(trial, rng, 2)
    trial.recover()
    if not any(c.answer == "batch" for c in proxy.calls):
        trial.notes.append("no batch was refused: the cap was never tried")
    return trial


def _term(trial: Trial, proc: Proc) -> None:
    """SIGTERM now (the run is mid-work); wait; keep the document as it left it."""
    if proc.done.is_set():
        trial.notes.append(f"{proc.tag} ended before the SIGTERM")
    else:
        proc.expect_interrupted = True
        proc.term_sent = time.time()
        proc.signal(signal.SIGTERM)
    proc.wait()
    proc.doc_after = trial.doc()


def sigterm_slow_rpc(world: World, rng: random.Random) -> Trial:
    """SIGTERM while the provider holds an answer for 30 s."""
    trial, proxy = _proxied(world, rng, "sigterm-slow-rpc", lease_s=6.0)
    method = rng.choice(("eth_getLogs", "eth_getLogs", "eth_blockNumber"))
    if rng.random() < 0.5:  # a first run relays part of the chain: the second stalls later
        trial.run(RELAYER_BATCH_SIZE="8")
    proxy.reset_counts()
    proxy.stall(30.0, method=method)
    proc = trial.launch()
    deadline = time.monotonic() + 20
    while proxy.count(method) == 0 and time.monotonic() < deadline and not proc.done.is_set():
        time.sleep(0.01)
    time.sleep(rng.uniform(0.05, 0.5))
    _term(trial, proc)
    proxy.clear()
    trial.wait_lease()
    trial.recover()
    return trial


def sigterm_slow_pubsub(world: World, rng: random.Random) -> Trial:
    """SIGTERM while a publish request is held on the wire for 3 to 12 s."""
    hold = FrameHoldProxy(world.pubsub_host)  # the messages held, not the headers
    trial = Trial(world, "sigterm-slow-pubsub", lease_s=rng.choice((8.0, 15.0)),
                  pubsub_host=hold.address, interval=rng.choice((2, 3, 4)))  # fmt: skip
    trial.cleanups.append(hold.stop)
    held = hold.arm(b'"event_id"', rng.uniform(3.0, 12.0))
    proc = trial.launch()
    deadline = time.monotonic() + 20
    while held.seen_at is None and time.monotonic() < deadline and not proc.done.is_set():
        time.sleep(0.01)
    time.sleep(rng.uniform(0.1, 1.0))
    _term(trial, proc)
    trial.notes.append(f"held {held.hold_s:.1f} s, released at {held.released_wall}")
    held.done.wait(20)
    trial.wait_lease()
    trial.recover()
    return trial
