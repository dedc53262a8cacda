"""The `relayer` command's shared options (--env-file, --json, --relayer before or after the
subcommand, --version) and `relayer job-env`, which reads a deployed job's settings through
gcloud; without services: each run stops at the configuration it was given."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from function.ops.cli_env import job_env, load_under, read_env_file
from minimal_env import MINIMAL

ROOT = Path(__file__).resolve().parents[2]  # each test runs the command as a process
SETTINGS = {**MINIMAL, "RPC_URL": "http://127.0.0.1:1"}  # nothing listens there


def relayer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return subprocess.run(
        [sys.executable, "-c", "from function.ops.cli import main; main()", *args],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_file(tmp_path: Path, **values: str) -> Path:
    file = tmp_path / "job.env"
    lines = ["# the job's settings", *(f"{k}={v}" for k, v in {**SETTINGS, **values}.items())]
    file.write_text("\n".join(lines) + "\n")
    return file


def test_version() -> None:
    done = relayer("--version")
    assert done.returncode == 0 and done.stdout.startswith("relayer, version ")


@pytest.mark.parametrize("where", ["before", "after"])
def test_shared_options_work_before_and_after_the_subcommand(tmp_path: Path, where: str) -> None:
    file = env_file(tmp_path, CHAIN_ID="not-a-number")
    options = ["--env-file", str(file), "--json", "--relayer", "r1"]
    args = [*options, "status"] if where == "before" else ["status", *options]
    done = relayer(*args)
    assert done.returncode == 2, done.stderr
    assert "CHAIN_ID" in done.stderr  # the file was read: its bad CHAIN_ID is what failed
    answer = json.loads(done.stdout)
    assert answer["exit_code"] == 2 and "CHAIN_ID" in answer["error"]


def test_the_shell_wins_over_the_env_file(tmp_path: Path) -> None:
    file = env_file(tmp_path, CHAIN_ID="not-a-number", START_BLOCK="-5")
    done = relayer("status", "--env-file", str(file), env={"CHAIN_ID": "31337"})
    assert done.returncode == 2
    assert "the shell's CHAIN_ID kept" in done.stderr
    assert "START_BLOCK" in done.stderr  # the next bad value, from the file


def test_a_missing_or_malformed_env_file_names_the_option(tmp_path: Path) -> None:
    done = relayer("--env-file", str(tmp_path / "nope.env"), "status")
    assert done.returncode == 2 and "--env-file" in done.stderr and "no such file" in done.stderr
    bad = tmp_path / "bad.env"
    bad.write_text("CHAIN_ID=1\nJUSTAWORD\n")
    with pytest.raises(Exception, match="JUSTAWORD has no '='"):
        read_env_file(str(bad))


def test_env_file_values_go_under_the_environment() -> None:
    environ = {"A": "shell"}
    assert load_under(environ, {"A": "file", "B": "file"}) == ["A"]
    assert environ == {"A": "shell", "B": "file"}


V1_JOB = {
    "apiVersion": "run.googleapis.com/v1",
    "kind": "Job",
    "spec": {"template": {"spec": {"template": {"spec": {"containers": [{
        "image": "europe-west1-docker.pkg.dev/p/relayer/relayer@sha256:abc",
        "env": [
            {"name": "CHAIN_ID", "value": "11155111"},
            {"name": "PUBSUB_TOPIC", "value": "settlement.events.v1"},
            {"name": "RELAYER_EVENTS", "value": "EscrowCreated, EscrowReleased"},
            {"name": "RPC_URL", "valueFrom": {
                "secretKeyRef": {"name": "relayer-rpc-url", "key": "latest"}}},
        ],
    }]}}}}},
}  # fmt: skip


def test_job_env_reads_plain_variables_and_names_the_secrets() -> None:
    found = job_env(V1_JOB, "relayer")
    assert found.values == {
        "CHAIN_ID": "11155111",
        "PUBSUB_TOPIC": "settlement.events.v1",
        "RELAYER_EVENTS": "EscrowCreated, EscrowReleased",
    }
    assert found.secrets == {"RPC_URL": "relayer-rpc-url:latest"}
    v2 = {"template": {"template": {"containers": [{"env": [
        {"name": "CHAIN_ID", "value": "1"},
        {"name": "RPC_URL", "valueSource": {"secretKeyRef": {
            "secret": "projects/p/secrets/rpc", "version": "3"}}},
    ]}]}}}  # fmt: skip
    assert job_env(v2, "relayer").secrets == {"RPC_URL": "rpc:3"}


def fake_gcloud(tmp_path: Path, described: object, code: int = 0) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "gcloud"
    (tmp_path / "described.json").write_text(json.dumps(described))
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/args\n'
        f"[ {code} -eq 0 ] || "
        f"{{ echo 'ERROR: (gcloud.run.jobs.describe) NOT_FOUND' >&2; exit {code}; }}\n"
        f"cat {tmp_path}/described.json\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_job_env_writes_a_file_that_env_file_reads_back(tmp_path: Path) -> None:
    path = fake_gcloud(tmp_path, V1_JOB)
    done = relayer("job-env", "--job", "relayer", "--region", "europe-west1", env=path)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "args").read_text().split()
    assert args == ["run", "jobs", "describe", "relayer", "--region=europe-west1", "--format=json"]
    assert "# RPC_URL comes from Secret Manager (relayer-rpc-url:latest)" in done.stdout
    assert not [line for line in done.stdout.splitlines() if line.startswith("RPC_URL")]
    written = tmp_path / "job.env"
    written.write_text(done.stdout)
    assert read_env_file(str(written)) == job_env(V1_JOB, "relayer").values
    as_json = relayer("job-env", "--job", "relayer", "--region", "r", "--json", env=path)
    assert json.loads(as_json.stdout)["secrets"] == {"RPC_URL": "relayer-rpc-url:latest"}


def test_job_env_says_what_gcloud_said(tmp_path: Path) -> None:
    path = fake_gcloud(tmp_path, {}, code=1)
    done = relayer("job-env", "--job", "nope", "--region", "r", env=path)
    assert done.returncode == 2 and "NOT_FOUND" in done.stderr
