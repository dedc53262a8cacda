"""A backfill split over the tasks of a Cloud Run Job execution (`relayer backfill --parallel`,
or `python main.py` with RELAYER_BACKFILL_FROM/TO), on anvil and the emulators: each task
relays its own slice under its own lease and checkpoint, beside the live job."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from google.cloud import firestore

from harness import (
    PROJECT,
    ROOT,
    Deployment,
    assert_exactly_once,
    payloads,
    run_cli,
    run_until_idle,
)

TASKS = 4


def _task(env: dict[str, str], index: int, *args: str, **extra: str) -> subprocess.Popen[str]:
    """Task `index` of an execution of TASKS tasks, as Cloud Run starts it."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "CLOUD_RUN_TASK_INDEX": str(index),
             "CLOUD_RUN_TASK_COUNT": str(TASKS), **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _backfill(env: dict[str, str], index: int, end: int, **extra: str) -> subprocess.Popen[str]:
    cli = ("-c", "from function.ops.cli import main; main()")
    args = ("backfill", "--from-block", "0", "--to-block", str(end), "--parallel", "--json")
    return _task(env, index, *cli, *args, **extra)


def _tasks(relayer_id: str) -> dict[str, dict[str, object]]:
    db = firestore.Client(project=PROJECT)
    docs = db.collection("relayers").document(relayer_id).collection("tasks").stream()
    return {d.id: d.to_dict() or {} for d in docs}


def test_four_tasks_beside_the_job_deliver_every_event_once(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(160, blocks=40)
    head = deployment.head()
    live = head // 2  # the live job relays from here on; the backfill the blocks below
    env = deployment.env(
        START_BLOCK=str(live), RELAYER_BATCH_SIZE="3", RELAYER_CHECKPOINT_INTERVAL="1"
    )
    job = _task(env, 0, "main.py", CLOUD_RUN_TASK_COUNT="1")
    tasks = [_backfill(env, i, live - 1) for i in range(TASKS)]
    ends = [p.communicate(timeout=120) for p in tasks]
    job.communicate(timeout=120)
    for p, (out, err) in zip(tasks, ends, strict=True):
        assert p.returncode == 0, out + err
        assert "another backfill" not in err  # disjoint slices never wait for each other
    run_until_idle(env)

    pulled = deployment.topic.pull_all()
    assert_exactly_once(payloads(pulled), deployment.expected)
    for m in pulled:
        block = int(m.attributes["block_number"])
        if block < live:  # a backfill's (docs/CONTRACT.md §3)
            assert m.attributes.get("backfill") == "true" and m.ordering_key == "", m
        else:  # the job's, as ever
            assert "backfill" not in m.attributes and m.ordering_key, m
    results = [json.loads(out) for out, _ in ends]
    slices = sorted((r["from_block"], r["to_block"]) for r in results)
    assert slices[0][0] == 0 and slices[-1][1] == live - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(slices))
    stored = _tasks(deployment.relayer_id)
    for start, end in slices:  # a checkpoint of its own each, at its end
        assert stored[f"backfill-{start}-{end}"]["next_block"] == end + 1

    status = run_cli(env, "status", "--json")
    (relayer,) = json.loads(status.stdout)["relayers"]
    shown = [(b["from_block"], b["to_block"], b["next_block"], b["done"])
             for b in relayer["backfills"]]  # fmt: skip
    assert shown == [(s, e, e + 1, True) for s, e in slices]
    table = run_cli(env, "status")
    assert all(f"backfill-{s}-{e}" in table.stdout for s, e in slices)


def test_a_killed_task_resumes_from_its_own_checkpoint(deployment: Deployment) -> None:
    deployment.expected = deployment.make_activity(160, blocks=40)
    head = deployment.head()
    env = deployment.env(
        START_BLOCK=str(head + 1),
        RELAYER_BATCH_SIZE="2",
        RELAYER_CHECKPOINT_INTERVAL="1",
        RELAYER_LEASE_SECONDS="2",
    )
    crashed = 2
    tasks = [
        _backfill(env, i, head)
        if i != crashed
        else _task(env, i, "devstack/faults/crashing_main.py", "backfill", "--from-block", "0",
                   "--to-block", str(head), "--parallel", CRASH_AT="mid_publish", CRASH_ON="9")
        for i in range(TASKS)
    ]  # fmt: skip
    ends = [p.communicate(timeout=120) for p in tasks]
    for i, (p, (out, err)) in enumerate(zip(tasks, ends, strict=True)):
        assert p.returncode == (-signal.SIGKILL if i == crashed else 0), out + err
    before = payloads(deployment.topic.pull_all())
    stored = _tasks(deployment.relayer_id)
    (mid,) = [v for k, v in stored.items() if k != "backfill-lease" and
              int(str(v["next_block"])) <= int(k.split("-")[2])]  # fmt: skip
    assert int(str(mid["next_block"])) > int(head // TASKS * crashed)  # killed mid-way

    time.sleep(2.2)  # the killed task's lease expires
    again = _backfill(env, crashed, head)  # the execution's retry of that task
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, out + err
    assert json.loads(out)["events_published"] > 0

    got = before + payloads(deployment.topic.pull_all())
    counts = Counter(p["event_id"] for p in got)
    assert set(counts) == {e["event_id"] for e in deployment.expected}
    assert max(counts.values()) <= 2  # only the killed chunk's messages may come twice
    final = {k: v for k, v in _tasks(deployment.relayer_id).items() if k != "backfill-lease"}
    assert all(v["next_block"] == int(k.split("-")[2]) + 1 for k, v in final.items())


def test_main_py_runs_its_slice_when_the_execution_names_a_range(
    deployment: Deployment,
) -> None:
    # `gcloud run jobs execute NAME --tasks 4 --update-env-vars RELAYER_BACKFILL_FROM=..`
    deployment.expected = deployment.make_activity(40, blocks=12)
    head = deployment.head()
    env = deployment.env(START_BLOCK=str(head + 1), RELAYER_BATCH_SIZE="2")
    extra = {"RELAYER_BACKFILL_FROM": "0", "RELAYER_BACKFILL_TO": str(head)}
    tasks = [_task(env, i, "main.py", **extra) for i in range(TASKS)]
    for p in tasks:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, out + err
    pulled = deployment.topic.pull_all()
    assert_exactly_once(payloads(pulled), deployment.expected)
    assert all(m.attributes.get("backfill") == "true" for m in pulled)
    assert len([k for k in _tasks(deployment.relayer_id) if k != "backfill-lease"]) == TASKS


def test_disjoint_backfills_run_at_once_overlapping_ones_wait(
    deployment: Deployment, tmp_path: Path
) -> None:
    deployment.expected = deployment.make_activity(60, blocks=20)
    head = deployment.head()
    env = deployment.env(START_BLOCK=str(head + 1), RELAYER_BATCH_SIZE="4")
    journal = tmp_path / "first.jsonl"
    # The first backfill holds its lease, frozen, over blocks 0..9.
    first = subprocess.Popen(
        [sys.executable, "devstack/faults/crashing_main.py", "backfill", "--from-block", "0",
         "--to-block", "9"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "CRASH_AT": "after_lease", "CRASH_ACTION": "freeze",
             "FAULT_LOG": str(journal)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (journal.exists() and '"point": "after_lease"' in journal.read_text()):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    disjoint = run_cli(env, "backfill", "--from-block", "10", "--to-block", str(head))
    assert disjoint.code == 0 and "another backfill" not in disjoint.stderr, disjoint.stderr
    first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert_exactly_once(payloads(deployment.topic.pull_all()), deployment.expected)
