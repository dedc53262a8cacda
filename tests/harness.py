"""Driving the relayer as an operator would: `python main.py` with an environment, then
reading what a subscriber received and what Firestore holds."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import firestore
from web3 import Web3

from devstack.chain.escrow import ExpectedEvent, deploy_escrow, make_activity
from devstack.stack.clients import PubSubTopic, PulledMessage
from devstack.stack.services import Anvil

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "contracts" / "build" / "Escrow.json"
PROJECT = "relayer-test"


@dataclass
class Run:
    """One finished `python main.py`."""

    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in (self.stdout + self.stderr).splitlines() if line.strip()]

    @property
    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    @property
    def summary(self) -> dict[str, Any]:
        found = [r for r in self.records if r.get("run_summary")]
        assert len(found) == 1, f"expected one summary line, got:\n{self.stdout}\n{self.stderr}"
        return found[0]


@dataclass
class Deployment:
    """An escrow on a fresh anvil, a fresh topic, an empty Firestore: one relayer's world."""

    anvil: Anvil
    w3: Web3
    contract: str
    topic: PubSubTopic
    abi_uri: str
    expected: list[ExpectedEvent] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        return relayer_env(self.anvil.rpc_url, self.contract, self.abi_uri, self.topic, **overrides)

    @property
    def relayer_id(self) -> str:
        return f"31337-{self.contract.lower()}"

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def make_activity(self, n_events: int, *, blocks: int, seed: int = 1) -> list[ExpectedEvent]:
        """Drive the escrow; the ground truth of what the relayer must publish."""
        return make_activity(self.w3, self.contract, n_events, blocks=blocks, seed=seed)

    def make_activity_on(
        self, contract: str, n_events: int, *, blocks: int, seed: int = 1
    ) -> list[ExpectedEvent]:
        """The same on another escrow deployed on this chain."""
        return make_activity(self.w3, contract, n_events, blocks=blocks, seed=seed)

    def mine(self, blocks: int) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


def relayer_env(
    rpc_url: str, contract: str, abi_uri: str, topic: PubSubTopic, **overrides: str
) -> dict[str, str]:
    """The environment of a relayer on the test anvil: this process's (the emulators' hosts),
    without any RELAYER_/LOG_ setting of the caller's shell, plus the test defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYER_", "LOG_"))}
    env.update(
        CHAIN_ID="31337",
        RPC_URL=rpc_url,
        CONTRACT_ADDRESS=contract,
        ABI_URI=abi_uri,
        PUBSUB_PROJECT_ID=topic.project,
        PUBSUB_TOPIC=topic.topic_id,
        START_BLOCK="0",
        RELAYER_CONFIRMATIONS="0",
        RELAYER_LEASE_SECONDS="30",
        LOG_FORMAT="json",
    )
    env.update(overrides)
    return env


def deploy(anvil: Anvil, topic: PubSubTopic) -> Deployment:
    """A fresh escrow on `anvil`, relayed to `topic`, with the ABI read from the artifact."""
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 60}))
    return Deployment(anvil, w3, deploy_escrow(w3), topic, str(ARTIFACT))


def run_main(env: dict[str, str], timeout: float = 120.0) -> Run:
    return run_script("main.py", env, timeout)


def run_script(script: str, env: dict[str, str], timeout: float = 120.0) -> Run:
    """`python <script>` from the checkout (main.py, or devstack/faults/crashing_main.py)."""
    done = subprocess.run(
        [sys.executable, script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def run_until_idle(env: dict[str, str], max_runs: int = 50) -> list[Run]:
    runs = []
    for _ in range(max_runs):
        run = run_main(env)
        runs.append(run)
        assert run.code == 0, run.stdout + run.stderr
        if run.summary["outcome"] == "idle":
            return runs
    raise AssertionError(f"not caught up after {max_runs} runs")


def relayer_doc(relayer_id: str) -> dict[str, Any]:
    snapshot = firestore.Client(project=PROJECT).collection("relayers").document(relayer_id).get()
    assert snapshot.exists, f"no state for {relayer_id}"
    return snapshot.to_dict() or {}


def relayer_doc_or_none(relayer_id: str) -> dict[str, Any] | None:
    """The relayer document, or None before its first commit."""
    snapshot = firestore.Client(project=PROJECT).collection("relayers").document(relayer_id).get()
    return (snapshot.to_dict() or {}) if snapshot.exists else None


def block_docs(relayer_id: str) -> list[dict[str, Any]]:
    """Each block record as one document, its `events` as entries (maps with `data`), as
    the relayer's own reader reassembles them from the documents that store it."""
    from function.adapters.firestore.blockparts import assembled
    from function.adapters.firestore.recordlayout import base_id

    blocks = firestore.Client(project=PROJECT).collection("relayers").document(relayer_id)
    by_block: dict[str, list[dict[str, Any]]] = {}
    for s in blocks.collection("blocks").stream():
        by_block.setdefault(base_id(s.id), []).append(s.to_dict() or {})
    return [assembled(docs) for docs in by_block.values()]


def payloads(messages: list[PulledMessage]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]


TEST_ABIS = ("Escrow.json", "LogEmitter.json")


@functools.cache
def _message_validator(artifacts: tuple[str, ...] = TEST_ABIS) -> Any:
    """`relayer schema` of the test contracts' ABIs (by default escrow and log emitter, merged):
    every message a delivery test receives must validate against what consumers are given."""
    import jsonschema

    from function.core.abi import event_catalogue, load_abi
    from function.core.schema import message_schema

    uri = ",".join(str(ROOT / "contracts" / "build" / f) for f in artifacts)
    entries = load_abi(lambda path: Path(path).read_bytes(), uri)
    schema = message_schema(event_catalogue(entries, (), uri), entries, 31337)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid_messages(
    got: list[dict[str, Any]], artifacts: tuple[str, ...] = TEST_ABIS
) -> None:
    validator = _message_validator(artifacts)
    for payload in got:
        errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.path))
        assert not errors, f"{payload['event_id']} does not fit `relayer schema`: {errors[0]}"


def assert_exactly_once(
    got: list[dict[str, Any]],
    expected: list[ExpectedEvent],
    artifacts: tuple[str, ...] = TEST_ABIS,
) -> None:
    """Every expected event arrived once (`got`: message payloads), with exactly the §3
    payload the chain implies, valid against the JSON Schema of the messages of the ABIs in
    `artifacts` (contracts/build)."""
    assert_valid_messages(got, artifacts)
    counts = Counter(p["event_id"] for p in got)
    duplicated = {k: n for k, n in counts.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} events arrived more than once"
    by_id = {p["event_id"]: p for p in got}
    missing = [e["event_id"] for e in expected if e["event_id"] not in by_id]
    assert not missing, f"{len(missing)} events never arrived, first {missing[:3]}"
    stray = set(by_id) - {e["event_id"] for e in expected}
    assert not stray, f"{len(stray)} messages for events that did not happen"
    for e in expected:
        assert by_id[e["event_id"]] == dict(e)


def run_cli(env: dict[str, str], *args: str, timeout: float = 120.0) -> Run:
    """The `relayer` command of this checkout (PYTHONPATH: not whatever the venv points at)."""
    done = subprocess.run(
        [sys.executable, "-c", "from function.ops.cli import main; main()", *args],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def outcome_within(call: Callable[[], object], bound_s: float) -> object:
    """What `call` returned or raised, asserting that it did within `bound_s` (a liveness
    bound: a call that hangs is left running in a daemon thread)."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as e:  # the outcome is what is checked
            result.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(bound_s)
    assert result, f"still waiting after {bound_s:g} s"
    return result[0]
