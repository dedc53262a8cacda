"""deploy.sh turns on point-in-time recovery and the daily backups on the relayer's own Firestore
database only, as Terraform does (there only on the database it creates, create_firestore_database):
`<name>-state`, the one deploy.sh makes by default, or a database this run creates. A database
that already exists under another name (`(default)`, usually shared with other applications) is
not changed: deploy.sh prints the commands its owner can run instead."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from test_deploy_script import (
    PROJECT,
    SECRET,
    FakeCloud,
    Run,
    deploy,
    flags,
    real_run,
    unknown_gcloud_flags,
    write_settings,
)
from test_trigger_and_bigquery import fake


@pytest.fixture
def fake_cloud(tmp_path: Path) -> FakeCloud:
    return fake(tmp_path)


def recovery_calls(argvs: list[list[str]]) -> list[list[str]]:
    """What changes a database's recovery: its update (PITR) and its backup schedules."""
    return [
        a
        for a in argvs
        if a[:3] == ["firestore", "databases", "update"] or a[:2] == ["firestore", "backups"]
    ]


def advised(run: Run) -> list[list[str]]:
    """The commands printed for the operator to run (comments, not run)."""
    return [shlex.split(s[4:]) for s in run.stdout.splitlines() if s.startswith("#   gcloud ")]


@pytest.mark.parametrize("database", ["(default)", "orders"])
def test_an_existing_database_of_another_name_is_left_as_it_is(
    tmp_path: Path, fake_cloud: FakeCloud, database: str
) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path, FIRESTORE_DATABASE=database), True)
    assert run.returncode == 0, run.stderr
    argvs = fake_cloud.argvs()
    assert ["firestore", "databases", "describe", f"--database={database}",
            f"--project={PROJECT}"] in argvs  # fmt: skip
    assert recovery_calls(argvs) == []
    # What the relayer needs of it is still set: the TTL and the index exemptions.
    ttl = next(a for a in argvs if a[:3] == ["firestore", "fields", "ttls"])
    assert flags(ttl)["--database"] == database
    # What its owner can run instead, exactly.
    assert advised(run) == [
        ["gcloud", "firestore", "databases", "update", f"--database={database}",
         f"--project={PROJECT}", "--enable-pitr"],
        ["gcloud", "firestore", "backups", "schedules", "create", f"--database={database}",
         f"--project={PROJECT}", "--recurrence=daily", "--retention=7d"],
    ]  # fmt: skip
    assert f"FIRESTORE_DATABASE={database} is not the relayer's own" in run.stdout


def test_a_database_this_run_creates_is_the_relayers_own(
    tmp_path: Path, fake_cloud: FakeCloud
) -> None:
    settings = write_settings(tmp_path, FIRESTORE_DATABASE="orders")
    run = real_run(fake_cloud, settings, False, "--rpc-url-file", "-", stdin=SECRET)
    assert run.returncode == 0, run.stderr
    argvs = fake_cloud.argvs()
    (create,) = [a for a in argvs if a[:3] == ["firestore", "databases", "create"]]
    assert flags(create)["--database"] == "orders" and "--enable-pitr" in create
    (schedule,) = [a for a in argvs if a[:4] == ["firestore", "backups", "schedules", "create"]]
    assert flags(schedule)["--database"] == "orders"
    assert advised(run) == []


def test_the_relayers_own_database_keeps_its_recovery_on(
    tmp_path: Path, fake_cloud: FakeCloud
) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path), True)
    assert run.returncode == 0, run.stderr
    calls = recovery_calls(fake_cloud.argvs())
    assert [c[:4] for c in calls] == [
        ["firestore", "databases", "update", "--database=relayer-state"],
        ["firestore", "backups", "schedules", "list"],
        ["firestore", "backups", "schedules", "update"],
    ]
    assert advised(run) == []


def test_only_what_is_asked_for_is_advised(tmp_path: Path, fake_cloud: FakeCloud) -> None:
    settings = write_settings(tmp_path, FIRESTORE_DATABASE="(default)", FIRESTORE_PITR="false")
    run = real_run(fake_cloud, settings, True)
    assert run.returncode == 0, run.stderr
    assert [c[:5] for c in advised(run)] == [
        ["gcloud", "firestore", "backups", "schedules", "create"]
    ]
    fake_cloud.log.unlink()
    settings = write_settings(
        tmp_path,
        FIRESTORE_DATABASE="(default)",
        FIRESTORE_PITR="false",
        FIRESTORE_BACKUP_RETENTION_DAYS="0",
    )
    run = real_run(fake_cloud, settings, True)
    assert run.returncode == 0, run.stderr
    assert advised(run) == [] and recovery_calls(fake_cloud.argvs()) == []


def test_the_dry_run_shows_both_cases_for_a_database_of_another_name(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, FIRESTORE_DATABASE="(default)")
    run = deploy("--dry-run", "--env-file", str(settings))
    assert run.returncode == 0, run.stderr
    # Absent, it is created here, with recovery on; present, nothing of it changes.
    assert "--enable-pitr" in run.only("firestore", "databases", "create")
    assert run.find("firestore", "databases", "update") == []
    assert len(run.find("firestore", "backups", "schedules", "create")) == 1
    assert [c[3] for c in advised(run)] == ["update", "schedules"]


@pytest.mark.slow
def test_the_advised_commands_exist_in_the_installed_gcloud(
    tmp_path: Path, fake_cloud: FakeCloud
) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path, FIRESTORE_DATABASE="(default)"), True)
    assert run.returncode == 0, run.stderr
    assert len(advised(run)) == 2
    assert unknown_gcloud_flags(advised(run), tmp_path) == []
