"""Two options, both ways to deploy, off unless asked for:

- a Cloud Build trigger (build_trigger_repository / BUILD_TRIGGER_REPOSITORY): pushes to one
  branch of a GitHub repository run cloudbuild.yaml as the deployer account;
- events in BigQuery with no code (bigquery_subscription / BIGQUERY_SUBSCRIPTION): a dataset,
  a table with the columns a Pub/Sub BigQuery subscription writes with write_metadata, the
  Pub/Sub service agent allowed to write that dataset only, and the subscription.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from deploy.apischema import needs_sdk, unrecognized
from deploy.tfeval import Refused, evaluate, needs_terraform
from test_deploy_script import (
    FAKE_GCLOUD,
    PROJECT,
    REGION,
    FakeCloud,
    Run,
    deploy,
    flags,
    real_run,
    unknown_gcloud_flags,
    write_settings,
)
from test_infra import Config, _load, one

ROOT = Path(__file__).resolve().parents[2]
DEPLOYER = f"relayer-deployer@{PROJECT}.iam.gserviceaccount.com"
# What a BigQuery subscription with write_metadata writes (Pub/Sub's "BigQuery subscriptions"
# page, "Write metadata"): column => the types it accepts.
METADATA_COLUMNS = {
    "subscription_name": {"STRING"},
    "message_id": {"STRING"},
    "publish_time": {"TIMESTAMP"},
    "data": {"BYTES", "STRING", "JSON"},
    "attributes": {"STRING", "JSON"},
}
TABLE = f"{PROJECT}:relayer_events.events"

# bq, faked like gcloud: records its calls; `show` finds nothing unless FAKE_EXISTING=all.
FAKE_BQ = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps({{"argv": args, "prog": "bq"}}) + "\\n")
    if "show" in args and os.environ.get("FAKE_EXISTING") != "all":
        sys.exit(1)
    """
)


def fake(folder: Path) -> FakeCloud:
    """A fake gcloud and a fake bq on one PATH folder, logging to one file."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("gcloud", FAKE_GCLOUD.format(python=sys.executable, project=PROJECT)),
                       ("bq", FAKE_BQ.format(python=sys.executable))):  # fmt: skip
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return FakeCloud(bin_dir, folder / "gcloud-calls.jsonl")


@pytest.fixture(scope="module")
def tf() -> Config:
    return _load()


def dry_run(folder: Path, **settings: str) -> Run:
    run = deploy("--dry-run", "--env-file", str(write_settings(folder, **settings)))
    assert run.returncode == 0, run.stderr
    return run


# --- The Cloud Build trigger ---------------------------------------------------------------------


def test_terraform_trigger_runs_cloudbuild_yaml_as_the_deployer_on_pushes(tf: Config) -> None:
    trigger = tf.resource("google_cloudbuild_trigger", "deploy")
    assert trigger["count"] == "${var.build_trigger_repository == null ? 0 : 1}"
    assert tf.variables["build_trigger_repository"]["default"] is None
    assert trigger["filename"] == "cloudbuild.yaml"
    # projects/<p>/serviceAccounts/<email>: google_service_account's id.
    assert trigger["service_account"] == "${google_service_account.deployer.id}"
    assert trigger["location"] == "${var.region}"
    github = one(trigger["github"])
    assert (github["owner"], github["name"]) == (
        "${local.build_trigger.owner}",
        "${local.build_trigger.repository}",
    )
    assert one(github["push"])["branch"] == "${local.build_trigger.branch_pattern}"
    assert trigger["substitutions"] == "${local.build_trigger.substitutions}"


@needs_terraform
def test_terraform_trigger_matches_the_branch_exactly(tmp_path: Path) -> None:
    got = evaluate(
        tmp_path,
        {"t": "local.build_trigger"},
        build_trigger_repository="acme/relayer",
        build_trigger_branch="release/1.0",
    )["t"]
    assert got == {
        "name": "relayer-deploy",
        "owner": "acme",
        "repository": "relayer",
        "branch_pattern": r"^release/1\.0$",
        "substitutions": {"_REGION": REGION, "_REPO": "relayer"},
    }
    with pytest.raises(Refused) as refused:
        evaluate(tmp_path, {"t": "local.build_trigger"}, build_trigger_repository="relayer")
    assert "owner/name" in str(refused.value)


def test_the_trigger_substitutions_are_cloudbuild_yamls() -> None:
    cloudbuild = (ROOT / "cloudbuild.yaml").read_text()
    for name in ("_REGION", "_REPO"):
        assert re.search(rf"^  {name}: ", cloudbuild, re.MULTILINE), name


def test_deploy_sh_makes_no_trigger_unless_asked(tmp_path: Path) -> None:
    run = dry_run(tmp_path)
    assert not run.find("builds", "triggers")
    assert "BUILD_TRIGGER_REPOSITORY=owner/name makes a trigger" in run.stdout


def test_deploy_sh_trigger_runs_cloudbuild_yaml_as_the_deployer(tmp_path: Path) -> None:
    run = dry_run(
        tmp_path, BUILD_TRIGGER_REPOSITORY="acme/relayer", BUILD_TRIGGER_BRANCH="release/1.0"
    )
    described = run.only("builds", "triggers", "describe")
    assert described[4] == "relayer-deploy" and flags(described)["--region"] == REGION
    create = flags(run.only("builds", "triggers", "create", "github"))
    update = flags(run.only("builds", "triggers", "update", "github", "relayer-deploy"))
    for f in (create, update):
        assert (f["--repo-owner"], f["--repo-name"]) == ("acme", "relayer")
        assert f["--branch-pattern"] == r"^release/1\.0$"
        assert f["--build-config"] == "cloudbuild.yaml"
        assert f["--service-account"] == f"projects/{PROJECT}/serviceAccounts/{DEPLOYER}"
        assert (f["--project"], f["--region"]) == (PROJECT, REGION)
    assert create["--name"] == "relayer-deploy"
    assert create["--substitutions"] == f"_REGION={REGION},_REPO=relayer"
    assert update["--update-substitutions"] == create["--substitutions"]
    # After the deployer's grants: its builds can run as soon as the trigger exists.
    commands = [" ".join(c) for c in run.commands]
    last_grant = max(i for i, c in enumerate(commands) if DEPLOYER in c and "iam-policy" in c)
    assert last_grant < commands.index(next(c for c in commands if "triggers describe" in c))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"BUILD_TRIGGER_REPOSITORY": "relayer"}, "expected owner/name of a GitHub repository"),
        (
            {"BUILD_TRIGGER_REPOSITORY": "a/b", "BUILD_TRIGGER_BRANCH": "main;rm"},
            "BUILD_TRIGGER_BRANCH=main;rm is invalid",
        ),
        ({"BIGQUERY_SUBSCRIPTION": "yes"}, "BIGQUERY_SUBSCRIPTION=yes is invalid"),
        ({"BIGQUERY_DATASET": "relayer-events"}, "BIGQUERY_DATASET=relayer-events is invalid"),
    ],
)
def test_deploy_sh_refuses_bad_trigger_and_bigquery_settings(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    cloud = fake(tmp_path)
    run = real_run(cloud, write_settings(tmp_path, **settings), existing=False)
    assert run.returncode == 2 and message in run.stderr
    assert cloud.calls() == []


# --- BigQuery ------------------------------------------------------------------------------------


def schema() -> list[dict[str, Any]]:
    columns = json.loads((ROOT / "infra" / "bigquery_schema.json").read_text())
    assert isinstance(columns, list)
    return columns


def test_the_table_has_the_columns_pubsub_writes_with_metadata() -> None:
    columns = {c["name"]: c["type"] for c in schema()}
    assert set(columns) == set(METADATA_COLUMNS)
    for name, accepted in METADATA_COLUMNS.items():
        assert columns[name] in accepted, name
    assert all(c.get("mode", "NULLABLE") == "NULLABLE" for c in schema())


def test_the_readme_shows_the_tables_schema() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n### Events in BigQuery\n") :]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([A-Z]+) \|", section, re.MULTILINE)
    assert dict(rows) == {c["name"]: c["type"] for c in schema()}
    assert "relayer schema" in section and "JSON_VALUE(data" in section
    assert "JSON_VALUE(attributes" in section and '"$.event_id") = ' in section


@needs_sdk
def test_the_table_schema_is_one_bigquery_knows() -> None:
    assert unrecognized("table schema", {"fields": schema()}) == []


def test_terraform_bigquery_subscription_is_off_by_default_and_complete(tf: Config) -> None:
    assert tf.variables["bigquery_subscription"]["default"] is False
    for kind, name in [
        ("google_bigquery_dataset", "events"),
        ("google_bigquery_table", "events"),
        ("google_bigquery_dataset_iam_member", "pubsub_agent_writes_events"),
        ("google_pubsub_subscription", "bigquery"),
    ]:
        assert tf.resource(kind, name)["count"] == "${var.bigquery_subscription ? 1 : 0}", name
    table = tf.resource("google_bigquery_table", "events")
    assert table["schema"] == '${file("${path.module}/bigquery_schema.json")}'
    assert one(table["time_partitioning"]) == {"type": "DAY", "field": "publish_time"}
    subscription = tf.resource("google_pubsub_subscription", "bigquery")
    assert subscription["topic"] == "${google_pubsub_topic.events.id}"
    config = one(subscription["bigquery_config"])
    assert config["use_table_schema"] is False and config["write_metadata"] is True
    assert config["table"] == (
        "${google_bigquery_table.events[0].project}.${google_bigquery_table.events[0].dataset_id}"
        ".${google_bigquery_table.events[0].table_id}"
    )
    assert "use_topic_schema" not in config
    assert "google_bigquery_dataset_iam_member.pubsub_agent_writes_events" in str(
        subscription["depends_on"]
    )


def test_terraform_lets_the_pubsub_agent_edit_that_dataset_only(tf: Config) -> None:
    grants = [
        (kind, body)
        for kind in ("google_bigquery_dataset_iam_member", "google_project_iam_member")
        for body in tf.of_kind(kind).values()
        if body["member"] == "${local.pubsub_agent}"
    ]
    assert [(k, b["role"], b["dataset_id"]) for k, b in grants] == [
        (
            "google_bigquery_dataset_iam_member",
            "roles/bigquery.dataEditor",
            "${google_bigquery_dataset.events[0].dataset_id}",
        )
    ]


@needs_terraform
def test_terraform_bigquery_names(tmp_path: Path) -> None:
    names = {
        "dataset": "local.bigquery_dataset",
        "table": "local.bigquery_table",
        "location": "local.bigquery_location",
        "subscription": "local.bigquery_subscription",
    }
    assert evaluate(tmp_path, names, topic="escrow-events") == {
        "dataset": "relayer_events",
        "table": "events",
        "location": REGION,
        "subscription": "escrow-events-bigquery",
    }
    assert evaluate(tmp_path, names, name="my-relay", bigquery_location="EU")["dataset"] == (
        "my_relay_events"
    )


def test_deploy_sh_makes_nothing_of_bigquery_unless_asked(tmp_path: Path) -> None:
    run = dry_run(tmp_path)
    assert not [c for c in run.commands if c[0] == "bq"]
    assert not [c for c in run.commands if "--bigquery-table" in " ".join(c)]


def test_deploy_sh_bigquery_subscription(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BIGQUERY_SUBSCRIPTION="true")
    bq = [c for c in run.commands if c[0] == "bq"]
    assert [next(w for w in c[1:] if not w.startswith("--")) for c in bq] == [
        "show", "mk", "show", "mk", "add-iam-policy-binding",
    ]  # fmt: skip
    dataset, table, grant = bq[1], bq[3], bq[4]
    assert "--dataset" in dataset and dataset[-1] == f"{PROJECT}:relayer_events"
    assert flags(dataset)["--location"] == REGION
    assert "--table" in table and table[-1] == TABLE
    assert flags(table)["--schema"] == "infra/bigquery_schema.json"
    assert (
        flags(table)["--time_partitioning_field"],
        flags(table)["--time_partitioning_type"],
    ) == (
        "publish_time",
        "DAY",
    )
    assert "--dataset" in grant and grant[-1] == f"{PROJECT}:relayer_events"
    assert flags(grant)["--role"] == "roles/bigquery.dataEditor"
    assert re.fullmatch(
        r"serviceAccount:service-.+@gcp-sa-pubsub\.iam\.gserviceaccount\.com",
        flags(grant)["--member"],
    )
    sub = run.only("pubsub", "subscriptions", "create", "escrow-events-bigquery")
    f = flags(sub)
    assert (f["--topic"], f["--bigquery-table"]) == ("escrow-events", TABLE)
    assert "--write-metadata" in f and "--use-table-schema" not in f
    # The table and the grant exist before the subscription that checks them.
    assert run.commands.index(grant) < run.commands.index(sub)
    assert "bigquery.googleapis.com" in run.only("services", "enable")


@cache
def bq_help(command: str) -> str:
    bq = shutil.which("bq")
    assert bq
    env = {**os.environ, "CLOUDSDK_CONFIG": "/nonexistent-bq-config", "TERM": "dumb"}
    args = [bq, "--helpfull"] if command == "" else [bq, "help", command]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    return result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("bq") is None, reason="bq is not installed")
def test_every_bq_flag_exists_in_the_installed_bq(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BIGQUERY_SUBSCRIPTION="true")
    unknown = []
    for c in (c for c in run.commands if c[0] == "bq"):
        command = next(w for w in c[1:] if not w.startswith("--"))
        split = c.index(command)
        # Global flags go before the command, or after it (`bq show --format=...`).
        for scope, words in (("", c[1:split]), (command, c[split + 1 :])):
            known = bq_help(scope) + bq_help("")
            for name in (w.split("=")[0] for w in words if w.startswith("--")):
                if not re.search(rf"--(\[no\])?{re.escape(name[2:])}\b", known):
                    unknown.append(f"bq {scope or '(global)'} {name}")
    assert not unknown, unknown


def calls(cloud: FakeCloud) -> list[list[str]]:
    return [[str(c.get("prog", "gcloud")), *c["argv"]] for c in cloud.calls()]  # type: ignore[misc]


def test_deploy_sh_makes_the_bigquery_subscription_once(tmp_path: Path) -> None:
    cloud = fake(tmp_path)
    settings = write_settings(tmp_path, BIGQUERY_SUBSCRIPTION="true")
    first = real_run(cloud, settings, False, "--rpc-url-file", "-", stdin="https://x.example\n")
    assert first.returncode == 0, first.stderr
    made = calls(cloud)
    assert first.commands == made  # what was printed is what ran
    assert ["bq", f"--project_id={PROJECT}", "--location=europe-west1", "mk", "--dataset"] == (
        next(c for c in made if c[0] == "bq" and "--dataset" in c and "mk" in c)[:5]
    )
    assert any(
        c[1:4] == ["pubsub", "subscriptions", "create"] and TABLE in " ".join(c) for c in made
    )
    cloud.log.unlink()
    second = real_run(cloud, settings, True)
    assert second.returncode == 0, second.stderr
    again = calls(cloud)
    assert not [c for c in again if "mk" in c or "create" in c[:6]], "a second run created"
    assert [c for c in again if c[0] == "bq" and "add-iam-policy-binding" in c]  # re-granted


@pytest.mark.slow
def test_every_gcloud_flag_of_the_options_exists_in_the_installed_gcloud(tmp_path: Path) -> None:
    run = dry_run(tmp_path, BIGQUERY_SUBSCRIPTION="true", BUILD_TRIGGER_REPOSITORY="acme/relayer")
    wanted = ("builds triggers", "pubsub subscriptions create escrow-events-bigquery")
    commands = [c for c in run.commands if any(w in " ".join(c) for w in wanted)]
    assert len(commands) == 4  # trigger describe, create, update; the BigQuery subscription
    assert unknown_gcloud_flags(commands, tmp_path) == []
