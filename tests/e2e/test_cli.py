"""The operator CLI, `relayer`, against anvil and the emulators."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.cloud import firestore

from function.adapters.firestore.blockparts import assembled
from function.config import RELAYER_SETTINGS
from harness import (
    PROJECT,
    ROOT,
    Deployment,
    Run,
    assert_exactly_once,
    block_docs,
    payloads,
    relayer_doc,
    run_cli,
    run_main,
    run_until_idle,
)

RELAYER = Path(sys.executable).parent / "relayer"


def cli(env: dict[str, str], *args: str) -> Run:
    done = subprocess.run(
        [str(RELAYER), *args],
        cwd=ROOT,
        # This checkout's package first: the venv's editable install may point at another.
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def test_backfill_beside_the_scheduled_job(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(150, blocks=30)
    env = deployment.env(START_BLOCK="15", RELAYER_BATCH_SIZE="5", RELAYER_CHECKPOINT_INTERVAL="2")
    first = run_main(env)  # the scheduled job now owns blocks 15 and up
    assert first.code == 0

    too_far = cli(env, "backfill", "--from-block", "0", "--to-block", "25")
    assert too_far.code == 2 and "backfill only blocks below" in too_far.stderr

    # The job and the backfill at the same time: neither publishes what the other does.
    job = subprocess.Popen(
        [sys.executable, "main.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    back = cli(env, "backfill", "--from-block", "0", "--to-block", "14")
    assert job.wait(timeout=60) == 0
    assert back.code == 0, back.stdout + back.stderr
    assert "backfill backfill-0-14:" in back.stdout
    run_until_idle(env)

    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
    task = relayer_doc(deployment.relayer_id)  # the job's own checkpoint is untouched by it
    assert task["next_block"] == deployment.head() + 1


def test_backfill_resumes_after_a_crash(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(100, blocks=20)
    head = deployment.head()
    env = deployment.env(
        START_BLOCK=str(head + 1),
        RELAYER_BATCH_SIZE="4",
        RELAYER_CHECKPOINT_INTERVAL="2",
        RELAYER_LEASE_SECONDS="2",
    )
    crash = subprocess.run(
        [
            sys.executable,
            "devstack/faults/crashing_main.py",
            "backfill",
            "--from-block",
            "0",
            "--to-block",
            str(head),
        ],
        cwd=ROOT,
        env={**env, "CRASH_AT": "mid_publish", "CRASH_ON": "6"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crash.returncode == -9, crash.stdout + crash.stderr
    before = payloads(deployment.topic.pull_all())
    time.sleep(2.2)  # the killed backfill's lease expires

    again = cli(env, "backfill", "--from-block", "0", "--to-block", str(head))
    assert again.code == 0, again.stdout + again.stderr

    got = before + payloads(deployment.topic.pull_all())
    counts = Counter(p["event_id"] for p in got)
    assert set(counts) == {e["event_id"] for e in deployment.expected}
    assert max(counts.values()) <= 2  # only the crashed chunk's messages may come twice


def test_replay_verify_status_reset(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(60, blocks=12)
    env = deployment.env()
    run_until_idle(env)
    deployment.topic.pull_all()
    head = deployment.head()

    assert cli(env, "replay", "--from-block", "3", "--to-block", "6").code == 2  # no --yes
    replay = cli(env, "replay", "--from-block", "3", "--to-block", "6", "--yes")
    assert replay.code == 0, replay.stderr
    again = deployment.topic.pull_all()
    wanted = [e for e in deployment.expected if 3 <= e["block_number"] <= 6]
    assert_exactly_once(payloads(again), wanted)
    assert {m.attributes["replay"] for m in again} == {"true"}

    ok = cli(env, "verify", "--from-block", "0", "--to-block", str(head))
    assert ok.code == 0, ok.stdout + ok.stderr
    assert f"{len(deployment.expected)} events on chain" in ok.stdout and "0 missing" in ok.stdout

    # An operator (or a bug) loses one block's records: verify must say so.
    blocks = (
        firestore.Client(project=PROJECT)
        .collection("relayers")
        .document(deployment.relayer_id)
        .collection("blocks")
    )
    victim = next(b for b in blocks.stream() if (b.to_dict() or {})["block_number"] >= 5)
    lost = [e["event_id"] for e in assembled([victim.to_dict() or {}])["events"]]
    victim.reference.delete()
    bad = cli(env, "verify", "--from-block", "0", "--to-block", str(head))
    assert bad.code == 1
    assert f"{len(lost)} missing" in bad.stdout
    assert all(f"missing: {i}" in bad.stdout for i in lost[:20])

    status = cli(env, "status")
    assert status.code == 0, status.stdout + status.stderr
    assert deployment.relayer_id in status.stdout and "healthy" in status.stdout

    assert cli(env, "reset", "--to-block", "5").code == 2  # no --yes
    reset = cli(env, "reset", "--to-block", "5", "--yes")
    assert reset.code == 0, reset.stderr
    doc = relayer_doc(deployment.relayer_id)
    assert doc["next_block"] == 5 and doc["lease"]["owner"] is None
    # Blocks 5.. again: only the block whose records were lost is published anew.
    rerun = run_until_idle(env)
    assert sum(r.summary["events_published"] for r in rerun) == len(lost)
    assert sorted(p["event_id"] for p in payloads(deployment.topic.pull_all())) == sorted(lost)
    assert len(block_docs(deployment.relayer_id)) >= 1


def test_reset_waits_for_a_running_job(deployment: Deployment) -> None:
    env = deployment.env()
    assert run_main(env).code == 0
    firestore.Client(project=PROJECT).collection("relayers").document(deployment.relayer_id).update(
        {
            "lease": {
                "owner": "someone-else",
                "fence": 99,
                "expires_at": datetime.now(UTC) + timedelta(seconds=60),
            }
        }
    )
    held = cli(env, "reset", "--to-block", "0", "--yes")
    assert held.code == 1 and "holds the lease" in held.stderr


def test_run_and_unhealthy_status(deployment: Deployment) -> None:
    env = deployment.env()
    run = cli(env, "run")
    assert run.code == 0 and run.summary["outcome"] in ("ok", "idle")
    failed = cli({**env, "CHAIN_ID": "5", "RELAYER_ID": deployment.relayer_id}, "run")
    assert failed.code == 2
    status = cli(env, "status")
    assert status.code == 1
    assert "UNHEALTHY: last run failed" in status.stdout


def _backfill_held_at(
    env: dict[str, str], start: int, end: int, journal: Path, point: str, **crash: str
) -> subprocess.Popen[str]:
    """`relayer backfill` under the crash-point wrapper, returned once it reached `point`
    (where `crash` makes it stall or freeze)."""
    proc = subprocess.Popen(
        [sys.executable, "devstack/faults/crashing_main.py", "backfill", "--from-block",
         str(start), "--to-block", str(end)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "CRASH_AT": point, "FAULT_LOG": str(journal),
             **crash},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _journal_has(journal, point):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc


def _journal_has(journal: Path, point: str) -> bool:
    return journal.exists() and f'"point": "{point}"' in journal.read_text()


def test_overlapping_backfills_never_both_publish(deployment: Deployment, tmp_path: Path) -> None:
    deployment.expected = deployment.make_activity(120, blocks=24)
    head = deployment.head()
    env = deployment.env(
        START_BLOCK=str(head + 1), RELAYER_BATCH_SIZE="4", RELAYER_CHECKPOINT_INTERVAL="2"
    )
    journal = tmp_path / "first.jsonl"
    # The first backfill has decided what of its first chunk to publish (from the records
    # it read) and pauses (within its 30 s lease) just before publishing it, when the second
    # one starts over an overlapping range: the second must not publish those blocks too.
    # The pause outlasts the second's start on a loaded machine (it must find the first
    # one running).
    first = _backfill_held_at(
        env, 0, head - 4, journal, "before_publish", CRASH_ACTION="stall", CRASH_SLEEP="15"
    )
    second = cli(env, "backfill", "--from-block", "2", "--to-block", str(head))
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.code == 0, second.stdout + second.stderr
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
    assert "another backfill" in second.stderr  # it waited for the first one's lease


def test_a_backfill_stalled_past_the_shared_lease_writes_nothing_more(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.expected = deployment.make_activity(80, blocks=16)
    head = deployment.head()
    env = deployment.env(
        START_BLOCK=str(head + 1),
        RELAYER_BATCH_SIZE="4",
        RELAYER_CHECKPOINT_INTERVAL="2",
        RELAYER_LEASE_SECONDS="2",
    )
    journal = tmp_path / "first.jsonl"
    # The first backfill's first chunk is accepted by Pub/Sub, then it freezes before
    # recording it, past the lease; the second takes the shared lease over and relays, and
    # only then does the first wake (so however slow this machine, the lease has moved).
    first = _backfill_held_at(env, 0, head, journal, "before_record", CRASH_ACTION="freeze")
    second = cli(env, "backfill", "--from-block", "0", "--to-block", str(head - 2))
    first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.code == 0, second.stdout + second.stderr

    got = payloads(deployment.topic.pull_all())
    counts = Counter(p["event_id"] for p in got)
    assert set(counts) == {e["event_id"] for e in deployment.expected}
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    stalled = next(i for i, x in enumerate(lines) if x["what"] == "resumed")
    handed = {i for x in lines[:stalled] if x["what"] == "handed" for i in x["event_ids"]}
    # Only what the stalled run had handed over before its lease ran out comes twice (§7.4);
    # when it woke, it recorded, committed and published nothing under the lost lease.
    assert {i for i, n in counts.items() if n > 1} <= handed
    assert max(counts.values()) <= 2
    after = [x["what"] for x in lines[stalled + 1 :]]
    # Its fenced record write was refused (journaled as lease_lost); the next thing it did
    # was wait for a new lease: nothing recorded, committed or published in between.
    waited = after.index("acquired")
    assert waited >= 1 and set(after[:waited]) == {"lease_lost"}, after
    recorded = {e["event_id"] for d in block_docs(deployment.relayer_id) for e in d["events"]}
    assert recorded == set(counts)


@pytest.mark.parametrize("command", [["verify"], ["replay", "--yes"]])
def test_verify_and_replay_end_an_rpc_failure_with_one_error_line(
    deployment: Deployment, command: list[str]
) -> None:
    env = deployment.env(RPC_URL="http://127.0.0.1:9/v2/secret-key")
    run = run_cli(env, command[0], "--from-block", "0", "--to-block", "1", *command[1:])
    assert run.code == 1
    assert "Traceback" not in run.stderr, run.stderr[-600:]
    assert run.stderr.startswith("error: ") and "kept failing" in run.stderr
    assert "secret-key" not in run.stdout + run.stderr


def test_an_env_file_and_json_drive_the_commands_from_a_bare_shell(
    deployment: Deployment, tmp_path: Path
) -> None:
    # What an operator does with `relayer job-env > job.env`: the settings in a file, the
    # secret in the shell, options after the subcommand, answers a script can read.
    deployment.expected = deployment.make_activity(12, blocks=3, seed=21)
    env = deployment.env()
    settings = {k: v for k, v in env.items() if k in RELAYER_SETTINGS and k != "RPC_URL"}
    file = tmp_path / "job.env"
    file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    shell = {k: v for k, v in env.items() if k not in settings}
    assert "CHAIN_ID" not in shell and "RPC_URL" in shell

    first = cli(shell, "run", "--env-file", str(file))
    assert first.code == 0, first.stdout + first.stderr
    status = cli(shell, "status", "--env-file", str(file), "--json")
    assert status.code == 0, status.stderr
    body = json.loads(status.stdout)
    (relayer,) = body["relayers"]
    assert relayer["relayer_id"] == deployment.relayer_id and relayer["healthy"] is True
    head = deployment.head()
    verify = cli(shell, "verify", "--from-block", "0", "--to-block", str(head), "--json",
                 "--env-file", str(file))  # fmt: skip
    report = json.loads(verify.stdout)
    assert verify.code == 0 and report["missing"] == [] and report["stray"] == []
    assert report["on_chain"] == report["recorded"] == len(deployment.expected)


def test_a_backfill_names_a_bad_abi_before_it_reads_firestore(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A broken ABI is the operator's to fix, whatever else is wrong: the backfill says so
    first, before it reads the scheduled job's checkpoint (here Firestore is unreachable, and
    the read would have failed with Firestore's error after its retries)."""
    broken = tmp_path / "broken.json"
    broken.write_text('{"abi": [ {"type": "event", ')
    env = deployment.env(ABI_URI=str(broken), FIRESTORE_EMULATOR_HOST="127.0.0.1:9")
    run = cli(env, "backfill", "--from-block", "0", "--to-block", "5")
    assert run.code == 2, run.stdout + run.stderr
    assert "ABI_URI" in run.stderr and "not valid JSON" in run.stderr, run.stderr
    assert "Firestore" not in run.stderr, run.stderr
