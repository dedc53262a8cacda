"""The relayer's Firestore database can be recovered, both ways to deploy: point-in-time
recovery on it (7 days of versions at any minute) and a daily backup schedule with a retention
of FIRESTORE_BACKUP_RETENTION_DAYS / firestore_backup_retention_days (at most 7: Firestore's
limit for a daily schedule)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from deploy.tfeval import Refused, evaluate, needs_terraform
from test_deploy_script import (
    PROJECT,
    FakeCloud,
    deploy,
    flags,
    real_run,
    unknown_gcloud_flags,
    write_settings,
)
from test_infra import Config, _load
from test_trigger_and_bigquery import fake

ROOT = Path(__file__).resolve().parents[2]
FIRESTORE = ("firestore", "databases")


@pytest.fixture(scope="module")
def tf() -> Config:
    return _load()


@pytest.fixture
def fake_cloud(tmp_path: Path) -> FakeCloud:
    return fake(tmp_path)


def test_terraform_turns_on_point_in_time_recovery_by_default(tf: Config) -> None:
    database = tf.resource("google_firestore_database", "this")
    on, off = "POINT_IN_TIME_RECOVERY_ENABLED", "POINT_IN_TIME_RECOVERY_DISABLED"
    assert database["point_in_time_recovery_enablement"] == (
        f'${{var.firestore_pitr ? "{on}" : "{off}"}}'
    )
    assert tf.variables["firestore_pitr"]["default"] is True


def test_terraform_backs_the_relayer_database_up_daily(tf: Config) -> None:
    schedule = tf.resource("google_firestore_backup_schedule", "daily")
    assert schedule["database"] == "${local.firestore_database}"
    assert schedule["daily_recurrence"] == [{}]
    assert schedule["retention"] == "${local.backup_retention}"
    assert schedule["count"] == (
        "${var.create_firestore_database && var.firestore_backup_retention_days > 0 ? 1 : 0}"
    )
    assert tf.variables["firestore_backup_retention_days"]["default"] == 7


@needs_terraform
@pytest.mark.parametrize(("days", "retention"), [(7, "604800s"), (1, "86400s")])
def test_the_retention_is_whole_days_in_seconds(tmp_path: Path, days: int, retention: str) -> None:
    got = evaluate(tmp_path, {"r": "local.backup_retention"}, firestore_backup_retention_days=days)
    assert got["r"] == retention


@needs_terraform
@pytest.mark.parametrize("days", [8, 1.5, -1])
def test_a_retention_firestore_cannot_keep_is_refused(tmp_path: Path, days: Any) -> None:
    with pytest.raises(Refused) as refused:
        evaluate(tmp_path, {"r": "local.backup_retention"}, firestore_backup_retention_days=days)
    assert "firestore_backup_retention_days" in str(refused.value)


def test_deploy_sh_creates_the_database_with_pitr_and_keeps_it_on(tmp_path: Path) -> None:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path)))
    assert run.returncode == 0, run.stderr
    assert "--enable-pitr" in run.only(*FIRESTORE, "create")
    update = run.only(*FIRESTORE, "update")
    assert flags(update)["--database"] == "relayer-state" and "--enable-pitr" in update
    listed = flags(run.only("firestore", "backups", "schedules", "list"))
    assert listed["--database"] == "relayer-state"
    create = flags(run.only("firestore", "backups", "schedules", "create"))
    assert (create["--database"], create["--recurrence"], create["--retention"]) == (
        "relayer-state",
        "daily",
        "7d",
    )
    assert flags(run.only("firestore", "backups", "schedules", "update"))["--retention"] == "7d"


def test_deploy_sh_without_pitr_or_backups(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, FIRESTORE_PITR="false", FIRESTORE_BACKUP_RETENTION_DAYS="0")
    run = deploy("--dry-run", "--env-file", str(settings))
    assert run.returncode == 0, run.stderr
    assert "--enable-pitr" not in run.only(*FIRESTORE, "create")
    assert "--no-enable-pitr" in run.only(*FIRESTORE, "update")
    assert not run.find("firestore", "backups")
    assert "# FIRESTORE_BACKUP_RETENTION_DAYS=0: no daily backup" in run.stdout


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"FIRESTORE_BACKUP_RETENTION_DAYS": "8"}, "FIRESTORE_BACKUP_RETENTION_DAYS=8 is invalid"),
        ({"FIRESTORE_PITR": "yes"}, "FIRESTORE_PITR=yes is invalid: expected true or false"),
    ],
)
def test_deploy_sh_refuses_bad_recovery_settings(
    tmp_path: Path, fake_cloud: FakeCloud, settings: dict[str, str], message: str
) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path, **settings), existing=False)
    assert run.returncode == 2 and message in run.stderr
    assert fake_cloud.calls() == []


def test_a_second_run_updates_the_listed_schedule(tmp_path: Path, fake_cloud: FakeCloud) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path, FIRESTORE_BACKUP_RETENTION_DAYS="3"), True)
    assert run.returncode == 0, run.stderr
    argvs = fake_cloud.argvs()
    assert not [a for a in argvs if a[:4] == ["firestore", "backups", "schedules", "create"]]
    (update,) = [a for a in argvs if a[:4] == ["firestore", "backups", "schedules", "update"]]
    # The fake lists projects/.../777: the schedule is named by its id.
    assert (flags(update)["--backup-schedule"], flags(update)["--retention"]) == ("777", "3d")
    assert ["firestore", "databases", "update", "--database=relayer-state",
            f"--project={PROJECT}", "--enable-pitr"] in argvs  # fmt: skip


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n### {title}\n")
    end = re.search(r"\n##+ ", text[start + 5 :])  # the next heading (code may hold "# ")
    assert end
    return text[start : start + 5 + end.start()]


@pytest.mark.slow
def test_the_readmes_restore_commands_exist_in_the_installed_gcloud(tmp_path: Path) -> None:
    block = readme_section("Restoring the state").split("```")[1]
    lines = block.replace("\\\n", " ").splitlines()
    commands = [shlex.split(line) for line in lines if line.startswith("gcloud ")]
    assert [c[1:4] for c in commands] == [
        ["firestore", "backups", "list"],
        ["firestore", "databases", "restore"],
        ["firestore", "export", "gs://BUCKET/relayer-state-0815"],
        ["firestore", "databases", "create"],
        ["firestore", "import", "gs://BUCKET/relayer-state-0815"],
    ]
    assert unknown_gcloud_flags(commands, tmp_path) == []
