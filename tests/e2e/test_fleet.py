"""Several relayers in one deployment (RELAYER_CONFIG) shared among Cloud Run tasks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devstack.chain.escrow import deploy_escrow
from devstack.rpcproxy import RpcProxy
from devstack.stack.clients import PubSubTopic, create_topic_and_subscription, upload_blob
from devstack.stack.processes import free_port
from devstack.stack.services import Stack
from function.config import Runtime, load_runtime
from function.errors import ConfigError
from function.ops.app import run_relayers
from function.ops.fleet import load_fleet, shard, task_of
from function.stopping import StopSignal
from harness import (
    ARTIFACT,
    ROOT,
    Deployment,
    assert_exactly_once,
    payloads,
    relayer_doc,
    relayer_doc_or_none,
    run_main,
)

ENV = {
    "CHAIN_ID": "1",
    "RPC_URL": "https://eth.example/v2/KEY",
    "ABI_URI": "/abi.json",
    "PUBSUB_PROJECT_ID": "proj",
    "PUBSUB_TOPIC": "default-topic",
    "START_BLOCK": "0",
}
A = "0x" + "a" * 40
B = "0x" + "b" * 40


def fleet_of(text: str, env: dict[str, str] | None = None, uri: str = "relayers.yaml"):  # type: ignore[no-untyped-def]
    return load_fleet(env or ENV, uri, lambda _: text.encode())


def test_entries_override_the_environment() -> None:
    fleet = fleet_of(
        f"""
relayers:
  - contract_address: {A}
    relayer_id: escrow-a
  - CONTRACT_ADDRESS: [{B}, {A}]
    PUBSUB_TOPIC: risk.events.v1
    RELAYER_CONFIRMATIONS: 3
    RPC_URL_ENV: RISK_RPC_URL
""",
        {**ENV, "RISK_RPC_URL": "https://other.example/KEY2"},
    )
    assert [s.relayer_id for s in fleet] == ["escrow-a", f"1-{B}"]
    assert fleet[0].topic == "default-topic" and fleet[0].confirmations == 12
    assert fleet[1].topic == "risk.events.v1" and fleet[1].confirmations == 3
    assert len(fleet[1].contracts) == 2
    assert fleet[1].rpc_urls == ("https://other.example/KEY2",)
    as_json = json.dumps({"relayers": [{"CONTRACT_ADDRESS": A}]})
    assert fleet_of(as_json, uri="gs://b/relayers.json")[0].contracts[0].lower() == A


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("relayers: []", "lists no relayers"),
        ("relayers: [1]", "relayers[0] is not a mapping"),
        (f"relayers: [{{CONTRACT_ADRESS: '{A}'}}]", "unknown settings CONTRACT_ADRESS"),
        ("relayers: [{CONTRACT_ADDRESS: '0x12'}]", "relayers[0]: CONTRACT_ADDRESS='0x12'"),
        (f"relayers: [{{CONTRACT_ADDRESS: '{A}'}}, {{CONTRACT_ADDRESS: '{A}'}}]", "more than once"),
        (f"relayers: [{{CONTRACT_ADDRESS: '{A}', RPC_URL_ENV: NOPE}}]", "NOPE, which is not set"),
        ("relayers: [{a: [}", "not valid JSON or YAML"),
    ],
)
def test_bad_files_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fleet_of(text)


def test_each_relayer_runs_on_exactly_one_task() -> None:
    fleet = fleet_of(
        "relayers:\n" + "".join(f"  - {{CONTRACT_ADDRESS: '0x{n:040x}'}}\n" for n in range(1, 30))
    )
    for count in range(1, 6):
        tasks = [shard(fleet, i, count) for i in range(count)]
        ids = [s.relayer_id for t in tasks for s in t]
        assert sorted(ids) == sorted(s.relayer_id for s in fleet)
    # Adding a relayer moves no other one.
    before = {s.relayer_id: i for i in range(4) for s in shard(fleet, i, 4)}
    grown = fleet + fleet_of(f"relayers: [{{CONTRACT_ADDRESS: '0x{99:040x}'}}]")
    after = {s.relayer_id: i for i in range(4) for s in shard(grown, i, 4)}
    assert all(after[rid] == task for rid, task in before.items())
    assert after[grown[-1].relayer_id] == task_of(grown[-1].relayer_id, 4)
    with pytest.raises(ConfigError, match="CLOUD_RUN_TASK_INDEX=2"):
        load_runtime({"CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "2"})


@pytest.fixture
def second_topic(stack: Stack, pubsub_topic: PubSubTopic) -> PubSubTopic:
    name = pubsub_topic.topic_id + "-b"
    return create_topic_and_subscription(stack.pubsub.address, stack.project, name, name + "-s")


def test_three_relayers_over_two_tasks(
    deployment: Deployment, second_topic: PubSubTopic, stack: Stack, tmp_path: Path
) -> None:
    contracts = [deployment.contract, deploy_escrow(deployment.w3), deploy_escrow(deployment.w3)]
    truth = {
        c: deployment.make_activity_on(c, 25, blocks=4, seed=i) for i, c in enumerate(contracts)
    }
    config = {
        "relayers": [
            {"RELAYER_ID": "escrow-1", "CONTRACT_ADDRESS": contracts[0]},
            {"RELAYER_ID": "escrow-2", "CONTRACT_ADDRESS": contracts[1]},
            {
                "RELAYER_ID": "escrow-3",
                "CONTRACT_ADDRESS": contracts[2],
                "PUBSUB_TOPIC": second_topic.topic_id,
            },
        ]
    }
    upload_blob(stack.storage.address, "configs", "relayers.json", json.dumps(config).encode())
    env = deployment.env(RELAYER_CONFIG="gs://configs/relayers.json", CLOUD_RUN_TASK_COUNT="2")

    for _ in range(2):  # two scheduled executions, each with two tasks side by side
        tasks = [
            subprocess.Popen(
                [sys.executable, "main.py"],
                cwd=ROOT,
                text=True,
                env={**env, "CLOUD_RUN_TASK_INDEX": str(i)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(2)
        ]
        for task in tasks:
            out, err = task.communicate(timeout=120)
            assert task.returncode == 0, out + err

    assert_exactly_once(
        payloads(deployment.topic.pull_all()), truth[contracts[0]] + truth[contracts[1]]
    )
    assert_exactly_once(payloads(second_topic.pull_all()), truth[contracts[2]])

    # One relayer failing does not stop the others; the exit code says one failed.
    config["relayers"][1]["PUBSUB_TOPIC"] = "no-such-topic"
    path = tmp_path / "relayers.yaml"
    path.write_text(json.dumps(config))
    run = run_main({**env, "RELAYER_CONFIG": str(path), "CLOUD_RUN_TASK_COUNT": "1"})
    assert run.code == 2
    outcomes = {r["relayer_id"]: r["outcome"] for r in run.records if r.get("run_summary")}
    assert outcomes == {"escrow-1": "idle", "escrow-2": "failed", "escrow-3": "idle"}

    # Status shows every relayer of the deployment, whichever task runs it.
    status = subprocess.run(
        [str(Path(sys.executable).parent / "relayer"), "status"],
        cwd=ROOT,
        text=True,
        env={**env, "RELAYER_CONFIG": str(path), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
    )
    assert status.returncode == 1  # escrow-2's last run failed
    rows = [line for line in status.stdout.splitlines() if line.startswith("escrow-")]
    assert [r.split()[0] for r in rows] == ["escrow-1", "escrow-2", "escrow-3"]
    assert "UNHEALTHY: last run failed" in rows[1] and "healthy" in rows[0]


def test_a_storage_outage_on_one_abi_fails_only_that_relayer(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Audit item 16: google-cloud-storage gives up with RetryError (a GoogleAPIError, not a
    GoogleAPICallError) after its default 120 s; it escaped, no summary, and the relayers
    after it never ran. Now the read gives up soon, and only its relayer fails."""
    contracts = [deployment.contract, deploy_escrow(deployment.w3), deploy_escrow(deployment.w3)]
    truth = [deployment.make_activity_on(c, 6, blocks=2, seed=i) for i, c in enumerate(contracts)]
    config = {
        "relayers": [
            {"RELAYER_ID": "first", "CONTRACT_ADDRESS": contracts[0]},
            {
                "RELAYER_ID": "middle",
                "CONTRACT_ADDRESS": contracts[1],
                "ABI_URI": "gs://abis/escrow.json",
            },
            {"RELAYER_ID": "last", "CONTRACT_ADDRESS": contracts[2]},
        ]
    }
    path = tmp_path / "relayers.json"
    path.write_text(json.dumps(config))
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: every attempt is refused
    started = time.monotonic()
    run = run_main(
        deployment.env(RELAYER_CONFIG=str(path), STORAGE_EMULATOR_HOST=closed), timeout=90
    )
    took = time.monotonic() - started

    assert run.code == 1, run.stdout + run.stderr  # an outage is transient: retry the task
    assert "Traceback" not in run.stdout + run.stderr
    summaries = {r["relayer_id"]: r for r in run.records if r.get("run_summary")}
    assert {k: r["outcome"] for k, r in summaries.items()} == {
        "first": "ok",
        "middle": "failed",
        "last": "ok",
    }
    message = summaries["middle"]["message"]
    assert message.startswith("run failed: ABI_URI gs://abis/escrow.json could not be read"), (
        message
    )
    assert "Cloud Storage" in message and "retry" in message
    assert took < 60, f"the failed ABI read took {took:.0f} s of the task's time"
    assert_exactly_once(payloads(deployment.topic.pull_all()), truth[0] + truth[2])


def test_unexpected_errors_still_end_in_a_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a relayer raises (here google-auth's DefaultCredentialsError, which is no
    GoogleAPIError: no emulator, no credentials), it ends in its failed summary and the
    next relayer still runs."""
    for name in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    env = {**ENV, "ABI_URI": str(ARTIFACT)}
    fleet = fleet_of(
        f"relayers: [{{RELAYER_ID: one, CONTRACT_ADDRESS: '{A}'}}, "
        f"{{RELAYER_ID: two, CONTRACT_ADDRESS: '{B}'}}]",
        env,
    )
    outcomes = run_relayers(Runtime(None, 0, 1), fleet, StopSignal())
    assert [o.summary.relayer_id for o in outcomes] == ["one", "two"]
    for o in outcomes:
        assert o.summary.outcome == "failed" and o.exit_code == 1
        assert "DefaultCredentialsError" in (o.summary.error or ""), o.summary.error
        assert "/nonexistent/key.json" in (o.summary.error or "")


def test_status_without_credentials_reports_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Google client that cannot even be built makes its relayer unhealthy in /status,
    with the library's reason; the other relayers are still reported."""
    from function.ops.app import clear_cache, status_body

    for name in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    fleet = fleet_of(
        f"relayers: [{{RELAYER_ID: one, CONTRACT_ADDRESS: '{A}'}}, "
        f"{{RELAYER_ID: two, CONTRACT_ADDRESS: '{B}'}}]"
    )
    clear_cache()
    try:
        body = status_body(fleet)
    finally:
        clear_cache()
    assert body["healthy"] is False
    assert [e["relayer_id"] for e in body["relayers"]] == ["one", "two"]
    for entry in body["relayers"]:
        assert entry["healthy"] is False
        [reason] = entry["reasons"]
        assert reason.startswith("state unreadable: DefaultCredentialsError: "), reason
        assert "KEY" not in reason  # the RPC URL's key never shows


def _until(what: str, done: Any, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, f"the task ended before {what}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.2)


def test_followers_side_by_side_keep_looking_while_one_endpoint_hangs(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Three followers in one task; the first one's RPC endpoint holds every head request.
    The other two look every poll interval all along and relay what is mined meanwhile;
    SIGTERM mid-window ends all three cleanly; each relayer's events arrive exactly once."""
    w3 = deployment.w3
    contracts = [deployment.contract, deploy_escrow(w3), deploy_escrow(w3)]
    names = ["hung", "healthy-1", "healthy-2"]
    truth = {
        c: deployment.make_activity_on(c, 8, blocks=2, seed=i) for i, c in enumerate(contracts)
    }
    proxy = RpcProxy(deployment.anvil.rpc_url)
    proc: subprocess.Popen[str] | None = None
    try:
        proxy.stall(600, method="eth_blockNumber", count=1000)
        config = {
            "relayers": [
                {
                    "RELAYER_ID": "hung",
                    "CONTRACT_ADDRESS": contracts[0],
                    "RPC_URL": proxy.url("/v2/SECRETKEY"),
                },
                {"RELAYER_ID": "healthy-1", "CONTRACT_ADDRESS": contracts[1]},
                {"RELAYER_ID": "healthy-2", "CONTRACT_ADDRESS": contracts[2]},
            ]
        }
        path = tmp_path / "relayers.json"
        path.write_text(json.dumps(config))
        env = deployment.env(
            RELAYER_CONFIG=str(path),
            RELAYER_RUN_SECONDS="300",
            RELAYER_POLL_INTERVAL="1",
            LOG_LEVEL="DEBUG",
        )
        out_path = tmp_path / "task.log"
        with out_path.open("w") as out:  # a file: a full pipe would hold up the task
            proc = subprocess.Popen(
                [sys.executable, "main.py"], cwd=ROOT, text=True, env=env, stdout=out, stderr=out
            )
            seen: dict[str, set[Any]] = {n: set() for n in names[1:]}

            def looked_four_times() -> bool:
                for name, looks in seen.items():
                    doc = relayer_doc_or_none(name)
                    if doc and doc.get("last_look_at"):
                        looks.add(doc["last_look_at"])
                return all(len(looks) >= 4 for looks in seen.values())

            _until("the healthy followers looked four times", looked_four_times, proc)
            assert proxy.count("eth_blockNumber") >= 1  # the hung one is in its first look
            during = {
                c: deployment.make_activity_on(c, 6, blocks=2, seed=10 + i)
                for i, c in enumerate(contracts[1:])
            }
            head = deployment.head()
            _until(
                "the healthy followers relayed the blocks mined while they followed",
                lambda: all(
                    (relayer_doc_or_none(n) or {}).get("next_block", 0) > head for n in seen
                ),
                proc,
            )
            assert (relayer_doc_or_none("hung") or {}).get("last_look_at") is None

            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            proc.wait(timeout=30)
            took = time.monotonic() - sent
        output = out_path.read_text()
        assert took < 10, f"exited {took:.1f} s after SIGTERM"
        assert "SECRETKEY" not in output and "Traceback" not in output

        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        summaries = {r["relayer_id"]: r for r in records if r.get("run_summary")}
        assert sorted(summaries) == sorted(names), output
        assert all(s["interrupted"] is True for s in summaries.values())
        for name in names[1:]:
            assert summaries[name]["outcome"] == "ok", summaries[name]
        # The hung relayer gave up its call at the stop (or, on a machine slow enough for
        # the client's retries to run out first, failed with the RPC error): never a
        # neighbour's summary, and the exit code is the worst of the three.
        hung = summaries["hung"]
        assert hung["outcome"] in ("idle", "failed"), hung
        assert proc.returncode == (1 if hung["outcome"] == "failed" else 0), output

        # Every record of a run carries that run's relayer as its label, none another's.
        relayer_of = {s["run_id"]: rid for rid, s in summaries.items()}
        looks = [r for r in records if "look" in r and "looked_at" in r]
        for record in records:
            if "run_id" in record and not record.get("run_summary"):
                labels = record.get("logging.googleapis.com/labels") or {}
                assert labels.get("relayer_id") == relayer_of[record["run_id"]], record
        counts = Counter(relayer_of[r["run_id"]] for r in looks)
        assert counts["hung"] == 0 and counts["healthy-1"] >= 5 and counts["healthy-2"] >= 5
        for name in names[1:]:
            assert summaries[name]["looks"] == counts[name]
        for name in names:
            assert relayer_doc(name)["lease"]["owner"] is None  # every lease released

        # The endpoint answers again: the next run relays the hung relayer's events too.
        proxy.clear()
        again = run_main({**env, "RELAYER_RUN_SECONDS": "0", "LOG_LEVEL": "INFO"})
        assert again.code == 0, again.stdout + again.stderr
        expected = [e for c in contracts for e in truth[c]] + [
            e for events in during.values() for e in events
        ]
        assert_exactly_once(payloads(deployment.topic.pull_all()), expected)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        proxy.stop()
