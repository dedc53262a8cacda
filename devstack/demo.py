"""`make demo`: the relayer end to end on the local stack, the way production runs it.

Starts anvil and the Pub/Sub, Firestore and Cloud Storage emulators, deploys the escrow,
uploads its ABI, makes a few hundred escrow events, then runs the job the way Cloud
Scheduler would: `python main.py` runs and one run through the `relay` HTTP function under
functions-framework, until the relayer has caught up. It prints what a subscriber received
and the `/status` answer, and stops everything it started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from web3 import Web3

from devstack.chain.escrow import ARTIFACT_PATH, deploy_escrow, make_activity
from devstack.stack.clients import create_topic_and_subscription, upload_blob
from devstack.stack.services import Stack, start_anvil

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "relayer-demo"
TOPIC = "settlement.events.v1"
SUBSCRIPTION = "settlement-service"
EVENTS, BLOCKS, CONFIRMATIONS = 300, 40, 2


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Function:
    """A functions-framework server for one target of main.py, as Cloud Functions runs it."""

    def __init__(self, target: str, env: dict[str, str]) -> None:
        self.port = free_port()
        binary = Path(sys.executable).parent / "functions-framework"
        self.proc = subprocess.Popen(
            [str(binary), "--target", target, "--source", "main.py", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Ready when the port accepts connections: any HTTP request to `relay` would be a run.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"functions-framework --target {target} did not start")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_job(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "main.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary: dict[str, Any] = next(
        json.loads(line) for line in done.stdout.splitlines() if "run_summary" in line
    )
    if done.returncode != 0:
        raise RuntimeError(f"python main.py exited {done.returncode}: {summary.get('message')}")
    return summary


def show_run(how: str, s: dict[str, Any]) -> None:
    blocks = (
        f"blocks {s['from_block']}..{s['to_block']}"
        if s.get("to_block") is not None
        else "nothing new"
    )
    print(
        f"    {how:<22} {s['outcome']:<5} {blocks:<20} published {s['events_published']:>3}"
        f"  duplicates skipped {s['duplicates_skipped']}  {s['duration_s']:.2f} s"
    )


def main() -> int:
    started = time.monotonic()
    say("Starting anvil and the Pub/Sub, Firestore and Cloud Storage emulators")
    with Stack.start(PROJECT) as stack, start_anvil(prune_history=0) as anvil:
        os.environ.update(stack.env())
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
        contract = deploy_escrow(w3)
        print(f"    escrow deployed at {contract} on chain 31337 ({anvil.rpc_url})")
        upload_blob(
            stack.storage.address,
            "relayer-demo-abis",
            "escrow/Escrow.json",
            ARTIFACT_PATH.read_bytes(),
            content_type="application/json",
        )
        topic = create_topic_and_subscription(
            stack.pubsub.address, PROJECT, TOPIC, SUBSCRIPTION, ordering=True
        )
        print(f"    ABI at gs://relayer-demo-abis/escrow/Escrow.json; topic {topic.topic_path}")

        say(f"Making {EVENTS} escrow events over {BLOCKS} blocks")
        expected = make_activity(w3, contract, EVENTS, blocks=BLOCKS, seed=7)
        kinds = Counter(e["event"] for e in expected)
        print("    " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))

        env = {
            **os.environ,
            "CHAIN_ID": "31337",
            # A provider-style key in the URL: the relayer only ever shows the host.
            "RPC_URL": f"{anvil.rpc_url}/?apikey=demo-secret-key",
            "CONTRACT_ADDRESS": contract,
            "ABI_URI": "gs://relayer-demo-abis/escrow/Escrow.json",
            "PUBSUB_PROJECT_ID": PROJECT,
            "PUBSUB_TOPIC": TOPIC,
            "START_BLOCK": "0",
            "RELAYER_BATCH_SIZE": "15",
            "RELAYER_CHECKPOINT_INTERVAL": "5",
            "RELAYER_CONFIRMATIONS": str(CONFIRMATIONS),
            "RELAYER_POLL_INTERVAL": "60",
            "LOG_FORMAT": "json",
        }
        say("Running the job as Cloud Scheduler would (RELAYER_BATCH_SIZE=15)")
        show_run("python main.py", run_job(env))
        show_run("python main.py", run_job(env))
        relay = Function("relay", env)
        try:
            answer = requests.post(relay.url("/"), timeout=120)
            show_run(f"POST relay -> {answer.status_code}", answer.json())
        finally:
            relay.stop()
        w3.provider.make_request("anvil_mine", [hex(CONFIRMATIONS)])  # type: ignore[arg-type]
        while True:
            summary = run_job(env)
            show_run("python main.py", summary)
            if summary["outcome"] == "idle":
                break

        say(f"What the subscriber '{SUBSCRIPTION}' received")
        messages = topic.pull_all(idle_s=1.0)
        payloads = [json.loads(m.data) for m in messages]
        ids = Counter(p["event_id"] for p in payloads)
        truth = {e["event_id"]: e for e in expected}
        exact = sum(1 for p in payloads if truth.get(p["event_id"]) == p)
        order = [(p["block_number"], p["log_index"]) for p in payloads]
        print(
            f"    {len(messages)} messages, {len(ids)} distinct events of {len(expected)} "
            f"emitted, {sum(n - 1 for n in ids.values())} duplicates, {exact} exactly as "
            f"emitted, in chain order: {order == sorted(order)}"
        )
        for m in messages[:2]:
            print("    attributes:", json.dumps(dict(sorted(m.attributes.items()))))
            print("    data:      ", m.data.decode())

        say("GET /status from the status function")
        status = Function("status", env)
        try:
            answer = requests.get(status.url("/status"), timeout=30)
            print(f"    HTTP {answer.status_code}")
            body = answer.json()
            for relayer in body["relayers"]:  # the run history is for the page's charts
                relayer["recent_runs"] = f"({len(relayer['recent_runs'])} runs, see GET /)"
            print("    " + json.dumps(body, indent=2).replace("\n", "\n    "))
        finally:
            status.stop()
        ok = len(ids) == len(expected) == exact and max(ids.values()) == 1
    say(
        f"Stopped everything. {'All events arrived exactly once.' if ok else 'MISMATCH!'} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
