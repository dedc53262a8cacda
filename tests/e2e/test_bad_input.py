"""Wrong input ends with exit code 2 and one line naming the setting; no secret leaks.

The RPC URL goes through a proxy that answers on any path, like a hosted provider, so the
URL can carry an API key in its path and query as real ones do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import function.logs as logs
from devstack.rpcproxy import RpcProxy
from devstack.stack.clients import upload_blob
from devstack.stack.services import Stack
from harness import Deployment, relayer_doc, run_main

KEY_PATH = "/v2/SECRETPATHKEY"
KEY_QUERY = "apikey=SECRETQUERYKEY"


@pytest.fixture
def keyed(deployment: Deployment) -> Iterator[tuple[Deployment, str]]:
    proxy = RpcProxy(deployment.anvil.rpc_url)
    yield deployment, proxy.url(f"{KEY_PATH}?{KEY_QUERY}")
    proxy.stop()


def _assert_no_secret(text: str) -> None:
    assert "SECRETPATHKEY" not in text
    assert "SECRETQUERYKEY" not in text


def _bad_abi(tmp_path: Path) -> str:
    path = tmp_path / "broken.json"
    path.write_text('{"abi": [ {"type": "event", ')
    return str(path)


CASES = {
    "bad address": ({"CONTRACT_ADDRESS": "0x12345"}, "CONTRACT_ADDRESS"),
    "bad checksum": (
        {"CONTRACT_ADDRESS": "0x5fbDB2315678afecb367f032d93F642f64180aa3"},
        "CONTRACT_ADDRESS",
    ),
    "unknown event": ({"RELAYER_EVENTS": "EscrowCreated,EscrowClosed"}, "RELAYER_EVENTS"),
    "missing ABI file": ({"ABI_URI": "/nonexistent/escrow.json"}, "ABI_URI"),
    "missing ABI object": ({"ABI_URI": "gs://no-such-bucket/escrow.json"}, "ABI_URI"),
    "wrong chain": ({"CHAIN_ID": "11155111"}, "CHAIN_ID"),
    "missing topic": ({"PUBSUB_TOPIC": "no-such-topic"}, "PUBSUB_TOPIC"),
    "bad batch size": ({"RELAYER_BATCH_SIZE": "lots"}, "RELAYER_BATCH_SIZE"),
    "missing start block": ({"START_BLOCK": ""}, "START_BLOCK"),
    # Values that parse but would overflow later in the run (audit item 5).
    "TTL past year 9999": ({"RELAYER_EVENT_TTL_DAYS": "3000000"}, "RELAYER_EVENT_TTL_DAYS"),
    "lease past year 9999": ({"RELAYER_LEASE_SECONDS": "1e12"}, "RELAYER_LEASE_SECONDS"),
    "start block past int64": ({"START_BLOCK": str(2**63)}, "START_BLOCK"),
    "chain id past EIP-2294": ({"CHAIN_ID": str(2**63)}, "CHAIN_ID"),
    "non-ASCII digits": ({"RELAYER_BATCH_SIZE": "١٢"}, "RELAYER_BATCH_SIZE"),
    "infinite poll interval": ({"RELAYER_POLL_INTERVAL": "inf"}, "RELAYER_POLL_INTERVAL"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line(
    case: str, keyed: tuple[Deployment, str], stack: Stack
) -> None:
    deployment, url = keyed
    overrides, variable = CASES[case]
    run = run_main(deployment.env(RPC_URL=url, **overrides))
    assert run.code == 2, run.stdout + run.stderr
    assert len(run.lines) == 1, run.lines
    assert variable in run.lines[0]
    _assert_no_secret(run.stdout + run.stderr)


def test_malformed_abi_exits_2(keyed: tuple[Deployment, str], tmp_path: Path) -> None:
    deployment, url = keyed
    run = run_main(deployment.env(RPC_URL=url, ABI_URI=_bad_abi(tmp_path)))
    assert run.code == 2
    assert len(run.lines) == 1 and "ABI_URI" in run.lines[0] and "not valid JSON" in run.lines[0]


def test_abi_from_cloud_storage(keyed: tuple[Deployment, str], stack: Stack) -> None:
    deployment, url = keyed
    upload_blob(
        stack.storage.address,
        "abis",
        "escrow/Escrow.json",
        Path(deployment.abi_uri).read_bytes(),
        content_type="application/json",
    )
    deployment.expected = deployment.make_activity(10, blocks=3)
    run = run_main(deployment.env(RPC_URL=url, ABI_URI="gs://abis/escrow/Escrow.json"))
    assert run.code == 0, run.stdout
    assert run.summary["events_published"] == 10
    _assert_no_secret(run.stdout + run.stderr)


def test_wrong_chain_is_recorded_for_status(keyed: tuple[Deployment, str]) -> None:
    deployment, url = keyed
    run = run_main(deployment.env(RPC_URL=url, CHAIN_ID="11155111", RELAYER_ID="wrong-chain"))
    assert run.code == 2
    doc = relayer_doc("wrong-chain")
    assert doc["last_run"]["outcome"] == "failed"
    assert "CHAIN_ID=11155111" in doc["last_run"]["error"]
    assert doc["lease"]["owner"] is None  # released: the next run need not wait for it
    _assert_no_secret(str(doc))


def test_unreachable_rpc_fails_without_leaking_the_key(deployment: Deployment) -> None:
    dead = f"http://user:SECRETPATHKEY@127.0.0.1:9{KEY_PATH}?{KEY_QUERY}"
    run = run_main(deployment.env(RPC_URL=dead))
    assert run.code == 1
    assert run.summary["outcome"] == "failed"
    assert "127.0.0.1:9" in run.summary["message"]
    _assert_no_secret(run.stdout + run.stderr + str(relayer_doc(deployment.relayer_id)))


OVERFLOWS = {
    "RELAYER_EVENT_TTL_DAYS": (
        "3000000",
        "RELAYER_EVENT_TTL_DAYS='3000000' is invalid: expected a number of days above 0 and "
        "at most 36500 (about 100 years)",
    ),
    "RELAYER_LEASE_SECONDS": (
        "1e12",
        "RELAYER_LEASE_SECONDS='1e12' is invalid: expected a number of seconds above 0 and "
        "at most 604800 (7 days, Cloud Run's longest task)",
    ),
}


@pytest.mark.parametrize("variable", list(OVERFLOWS))
def test_overflowing_numbers_stop_the_start(
    variable: str, deployment: Deployment, tmp_path: Path
) -> None:
    """Audit item 5: these used to fail after publishing (TTL: every run, endless
    duplicates) or exit 1; now exit 2 before anything is touched, also from RELAYER_CONFIG."""
    value, line = OVERFLOWS[variable]
    deployment.make_activity(3, blocks=1)
    run = run_main(deployment.env(**{variable: value}))
    assert run.code == 2, run.stdout + run.stderr
    assert [r["message"] for r in run.records] == [line]
    assert deployment.topic.pull_all() == []

    config = tmp_path / "relayers.json"
    config.write_text(json.dumps({"relayers": [{"RELAYER_ID": "big", variable: value}]}))
    run = run_main(deployment.env(RELAYER_CONFIG=str(config)))
    assert run.code == 2, run.stdout + run.stderr
    assert [r["message"] for r in run.records] == [f"RELAYER_CONFIG {config} relayers[0]: {line}"]
    assert deployment.topic.pull_all() == []


def test_a_failed_start_leads_with_the_problem(deployment: Deployment) -> None:
    """Audit item 17: the line read `run failed: blocks None..None, 0 published, ...: ABI_URI
    heldout-abis does not exist` (the gs:// URI cut to its bucket, the problem last, 600+
    characters). Now the problem comes first, the URI whole, and the line stays short."""
    run = run_main(deployment.env(ABI_URI="gs://heldout-abis/escrow.json"))
    assert run.code == 2, run.stdout + run.stderr
    [line] = run.lines
    record = run.summary
    assert record["message"] == (
        "run failed: ABI_URI gs://heldout-abis/escrow.json does not exist: upload it or fix ABI_URI"
    )
    shown = json.dumps({k: v for k, v in record.items() if k not in logs.CLOUD_FIELDS})
    assert len(shown) < 400, (len(shown), line)  # without what Cloud Logging reads for itself
    assert record["severity"] == "ERROR"
    summary = {k: record[k] for k in ("outcome", "from_block", "to_block", "events_published")}
    assert summary == {
        "outcome": "failed",
        "from_block": None,
        "to_block": None,
        "events_published": 0,
    }
    assert record["duplicates_skipped"] == 0 and isinstance(record["duration_s"], float)
    assert record["relayer_id"] == deployment.relayer_id and record["run_summary"] is True
    # The error text is said once; status and last_run keep it as a field.
    assert line.count("does not exist") == 1
    last_run = relayer_doc(deployment.relayer_id)["last_run"]
    assert last_run["error"] == (
        "ABI_URI gs://heldout-abis/escrow.json does not exist: upload it or fix ABI_URI"
    )


def test_the_largest_accepted_values_run(deployment: Deployment) -> None:
    """The bounds are safe, not just accepted: a run at every upper bound relays normally
    (expire_at, the lease's expiry, stored spans and block numbers all representable)."""
    deployment.expected = deployment.make_activity(8, blocks=2)
    top = str(2**63 - 1)
    bounds = {
        "RELAYER_EVENT_TTL_DAYS": "36500",
        "RELAYER_LEASE_SECONDS": "604800",
        "RELAYER_BATCH_SIZE": top,
        "RELAYER_CHECKPOINT_INTERVAL": top,
        "RELAYER_MAX_LAG_BLOCKS": top,
        "RELAYER_POLL_INTERVAL": "2592000",
    }
    run = run_main(deployment.env(**bounds))
    assert run.code == 0, run.stdout + run.stderr
    assert run.summary["outcome"] == "ok" and run.summary["events_published"] == 8
    assert len(deployment.topic.pull_all()) == 8
    far = run_main(deployment.env(START_BLOCK=top, RELAYER_ID="far", **bounds))
    assert far.code == 0, far.stdout + far.stderr
    assert far.summary["outcome"] == "idle"
    assert relayer_doc("far")["last_run"]["outcome"] == "idle"
    deep = run_main(deployment.env(RELAYER_CONFIRMATIONS=top, RELAYER_ID="deep", **bounds))
    assert deep.code == 0 and deep.summary["outcome"] == "idle", deep.stdout + deep.stderr
