"""Terraform (infra/) and deploy.sh make the same deployment.

For the same settings, with every option on: the same resources (kind and name), the same IAM
bindings per principal (resource, role and condition), the same runtime environment, secret
mounts, schedule, task timeout and alert windows. Terraform's names and derived values are
evaluated offline by `terraform console` (deploy/tfeval.py); deploy.sh's come from its dry run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from deploy.tfeval import REQUIRED, evaluate, needs_terraform
from test_deploy_script import PROJECT, deploy, env_vars, flags, printed_file, write_settings
from test_infra import _IAM_KINDS, Config, _load, dynamic
from test_relay_function_monitoring import rendered

pytestmark = needs_terraform

# Terraform type => (kind, the attribute holding its name).
KINDS = {
    "google_service_account": ("service account", "account_id"),
    "google_pubsub_topic": ("topic", "name"),
    "google_pubsub_subscription": ("subscription", "name"),
    "google_secret_manager_secret": ("secret", "secret_id"),
    "google_storage_bucket": ("bucket", "name"),
    "google_artifact_registry_repository": ("repository", "repository_id"),
    "google_cloud_run_v2_job": ("job", "name"),
    "google_cloud_scheduler_job": ("schedule", "name"),
    "google_cloudfunctions2_function": ("function", "name"),
    "google_logging_metric": ("metric", "name"),
    "google_monitoring_alert_policy": ("alert", "display_name"),
    "google_firestore_database": ("database", "name"),
    "google_firestore_backup_schedule": ("backup schedule", "database"),
    "google_monitoring_dashboard": ("dashboard", "dashboard_json"),
    "google_bigquery_dataset": ("dataset", "dataset_id"),
    "google_bigquery_table": ("table", "table_id"),
    "google_cloudbuild_trigger": ("trigger", "name"),
}
# for_each maps whose instances are named by their values: the map => (its value's key below,
# the key of an instance's name in its value; None: the value is the name).
EACH = {"${var.rpc_url_secrets}": ("secrets", None), "${local.value_metrics}": ("metrics", "name")}
# Terraform uploads the functions' source itself; gcloud stages it in Google's own bucket.
TERRAFORM_ONLY = {("bucket", f"{PROJECT}-relayer-source")}

# The same deployment in both languages, every option on.
OPTIONS: dict[str, Any] = {
    "topic": "escrow-events",
    "abi_file": "abi.json",
    "relayer_config": f"gs://{PROJECT}-relayer-abi/relayers.yaml",
    "rpc_url_secrets": {"VAULT_RPC_URL": "relayer-vault-rpc-url"},
    "relay_function": True,
    "status_invokers": ["group:oncall@example.com"],
    "notification_channels": [f"projects/{PROJECT}/notificationChannels/42"],
    "extra_env": {"RELAYER_EVENTS": "EscrowCreated,EscrowReleased"},
    "bigquery_subscription": True,
    "build_trigger_repository": "acme/relayer",
}
SETTINGS = {
    "RELAYER_CONFIG": OPTIONS["relayer_config"],
    "RPC_URL_SECRETS": "VAULT_RPC_URL=relayer-vault-rpc-url",
    "RELAY_FUNCTION": "true",
    "BIGQUERY_SUBSCRIPTION": "true",
    "BUILD_TRIGGER_REPOSITORY": "acme/relayer",
}
MODES = {
    "one batch a run": ({"poll_interval_seconds": 120}, {"RELAYER_POLL_INTERVAL": "120"}),
    "follow": (
        {"poll_interval_seconds": 5, "run_seconds": 60},
        {"RELAYER_POLL_INTERVAL": "5", "RELAYER_RUN_SECONDS": "60"},
    ),
    # A window 10 s longer than the minute: the next run waits for the hand-over.
    "follow, windows overlapping": (
        {"poll_interval_seconds": 5, "run_seconds": 70},
        {"RELAYER_POLL_INTERVAL": "5", "RELAYER_RUN_SECONDS": "70"},
    ),
}


def reference(text: str) -> tuple[str, str] | None:
    """(type, name) of `${google_x.name.attr}`, `${google_x.name[0].attr}`, `[each.key]`."""
    found = re.fullmatch(r"\$\{(google_[a-z0-9_]+)\.([a-z0-9_]+)(\[[^]]+\])?\.[a-z_]+\}", text)
    return (found.group(1), found.group(2)) if found else None


class Terraform:
    """infra/ with these variables: its resources and grants, names evaluated."""

    def __init__(self, folder: Path, variables: dict[str, Any]) -> None:
        self.tf: Config = _load()
        self.variables = {**REQUIRED, **variables}
        wanted: dict[str, str] = {
            "secrets": "var.rpc_url_secrets",
            "project": "var.project_id",
            "firestore_name": "local.firestore_name",
            "metrics": "local.value_metrics",
        }
        for (kind, name), body in self.tf.resources.items():
            if "count" in body:
                wanted[f"count {kind}.{name}"] = json.dumps(body["count"])
            if kind in KINDS and body.get("for_each") not in EACH:
                wanted[f"name {kind}.{name}"] = json.dumps(body[KINDS[kind][1]])
        self.values = evaluate(folder, wanted, **variables)

    def present(self, kind: str, name: str) -> bool:
        # A template of one interpolation is its value: 1, or "1" after a join.
        return str(self.values.get(f"count {kind}.{name}", 1)) == "1"

    def names(self, kind: str, name: str) -> list[str]:
        """The names of a resource's instances (for_each over rpc_url_secrets: each one)."""
        if not self.present(kind, name):
            return []
        each = self.tf.resources[(kind, name)].get("for_each")
        if each in EACH:
            values, key = EACH[each]
            return sorted(v if key is None else v[key] for v in self.values[values].values())
        value = self.values[f"name {kind}.{name}"]
        if kind == "google_monitoring_dashboard":  # named by the displayName of its JSON
            return [json.loads(value)["displayName"]]
        return [value]

    def resources(self) -> set[tuple[str, str]]:
        return {
            (KINDS[kind][0], instance)
            for kind, name in self.tf.resources
            if kind in KINDS
            for instance in self.names(kind, name)
        }

    def target(self, text: str, body: dict[str, Any]) -> list[tuple[str, str]]:
        ref = reference(text)
        assert ref and ref[0] in KINDS, text
        instances = self.names(*ref)
        if "[each.key]" in text:  # for_each over rpc_url_secrets: the secret of that key
            instances = sorted(self.values["secrets"].values())
        # A function's run.invoker is on its Cloud Run service, which has its name.
        return [(KINDS[ref[0]][0], i) for i in instances]

    def member(self, text: str) -> list[str]:
        ref = reference(text)
        if ref:
            return [f"serviceAccount:{n}" for n in self.names(*ref)]
        if text == "${local.pubsub_agent}":
            return ["pubsub-agent"]
        if text == "${each.value}":
            return list(self.variables["status_invokers"])
        raise AssertionError(text)

    def grants(self) -> dict[str, set[tuple[str, str, str, str]]]:
        out: dict[str, set[tuple[str, str, str, str]]] = {}
        for kind in _IAM_KINDS:
            for name, body in self.tf.of_kind(kind).items():
                if not self.present(kind, name):
                    continue
                condition = ""
                if kind == "google_project_iam_member":
                    targets = [("project", self.values["project"])]
                    if "condition" in body:
                        expression = body["condition"][0]["expression"]
                        condition = expression.replace(
                            "${local.firestore_name}", self.values["firestore_name"]
                        )
                else:
                    attr = next(
                        body[k]
                        for k in (
                            "topic",
                            "subscription",
                            "bucket",
                            "secret_id",
                            "repository",
                            "service_account_id",
                            "dataset_id",
                            "name",
                        )
                        if k in body
                    )
                    targets = self.target(attr, body)
                for member in self.member(body["member"]):
                    for target in targets:
                        out.setdefault(member, set()).add((*target, body["role"], condition))
        return out


def script_resources(commands: list[list[str]]) -> set[tuple[str, str]]:
    out = set()
    for c in commands:
        words = [w for w in c[1:] if not w.startswith("--")]
        f = flags(c)
        if c[0] == "bq" and words[:1] == ["mk"]:  # PROJECT:DATASET, PROJECT:DATASET.TABLE
            out.add(
                ("dataset", words[-1].split(":")[1])
                if "--dataset" in f
                else ("table", words[-1].split(".")[-1])
            )
        elif words[:3] == ["iam", "service-accounts", "create"]:
            out.add(("service account", words[3]))
        elif words[:3] == ["pubsub", "topics", "create"]:
            out.add(("topic", words[3]))
        elif words[:3] == ["pubsub", "subscriptions", "create"]:
            out.add(("subscription", words[3]))
        elif words[:2] == ["secrets", "create"]:
            out.add(("secret", words[2]))
        elif words[:3] == ["storage", "buckets", "create"]:
            out.add(("bucket", words[3].removeprefix("gs://")))
        elif words[:3] == ["artifacts", "repositories", "create"]:
            out.add(("repository", words[3]))
        elif words[:3] == ["run", "jobs", "deploy"]:
            out.add(("job", words[3]))
        elif words[:4] == ["scheduler", "jobs", "create", "http"]:
            out.add(("schedule", words[4]))
        elif words[:2] == ["functions", "deploy"]:
            out.add(("function", words[2]))
        elif words[:3] == ["logging", "metrics", "create"]:
            out.add(("metric", words[3]))
        elif words[:4] == ["alpha", "monitoring", "policies", "list"]:
            out.add(("alert", f["--filter"].removeprefix('displayName="').removesuffix('"')))
        elif words[:3] == ["firestore", "databases", "create"]:
            out.add(("database", f["--database"]))
        elif words[:4] == ["firestore", "backups", "schedules", "create"]:
            out.add(("backup schedule", f["--database"]))
        elif words[:3] == ["monitoring", "dashboards", "list"]:
            out.add(("dashboard", f["--filter"].removeprefix('displayName="').removesuffix('"')))
        elif words[:4] == ["builds", "triggers", "create", "github"]:
            out.add(("trigger", f["--name"]))
    return out


SCRIPT_KINDS = {
    "pubsub topics": "topic",
    "pubsub subscriptions": "subscription",
    "secrets": "secret",
    "storage buckets": "bucket",
    "run jobs": "job",
    "functions": "function",
    "iam service-accounts": "service account",
    "artifacts repositories": "repository",
    "projects": "project",
}


def script_member(member: str) -> str:
    if "@gcp-sa-pubsub." in member:
        return "pubsub-agent"
    return member.split("@")[0] if member.startswith("serviceAccount:") else member


def script_grants(commands: list[list[str]]) -> dict[str, set[tuple[str, str, str, str]]]:
    out: dict[str, set[tuple[str, str, str, str]]] = {}
    for c in commands:
        f = flags(c)
        if c[0] == "bq" and "add-iam-policy-binding" in c:  # bq ... --dataset PROJECT:DATASET
            target = ("dataset", c[-1].split(":")[1], f["--role"], "")
            out.setdefault(script_member(f["--member"]), set()).add(target)
            continue
        if "add-iam-policy-binding" in c:
            verb = c.index("add-iam-policy-binding")
            kind, resource, role = " ".join(c[1:verb]), c[verb + 1], f["--role"]
        elif "add-invoker-policy-binding" in c:
            kind, resource, role = "functions", c[3], "roles/run.invoker"
        else:
            continue
        resource = resource.removeprefix("gs://").split("@")[0]
        condition = f.get("--condition", "None")
        condition = "" if condition == "None" else condition.split(",title=")[0][11:]
        target = (SCRIPT_KINDS[kind], resource, role, condition)
        out.setdefault(script_member(f["--member"]), set()).add(target)
    return out


@pytest.fixture(params=list(MODES))
def both(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Terraform, Any]:
    variables, settings = MODES[request.param]
    terraform = Terraform(tmp_path, {**OPTIONS, **variables})
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path, **SETTINGS, **settings)))
    assert run.returncode == 0, run.stderr
    return terraform, run


def test_the_same_resources(both: tuple[Terraform, Any]) -> None:
    terraform, run = both
    made = terraform.resources()
    assert made - TERRAFORM_ONLY == script_resources(run.commands)
    assert {kind for kind, _ in made} == {kind for kind, _ in KINDS.values()}


def test_the_same_roles_for_each_principal(both: tuple[Terraform, Any]) -> None:
    terraform, run = both
    tf_grants, script = terraform.grants(), script_grants(run.commands)
    assert set(tf_grants) == set(script)
    for member in tf_grants:
        assert tf_grants[member] == script[member], member


def test_the_same_environment_secrets_schedule_timeout_and_alerts(
    both: tuple[Terraform, Any], tmp_path: Path
) -> None:
    terraform, run = both
    derived = evaluate(
        tmp_path,
        {
            "env": "local.runtime_env",
            "secrets": "local.secret_env",
            "schedule": "local.schedule",
            "timeout": "local.task_timeout",
            "stale": "local.stale_after",
            "window": "local.alert_window",
        },
        **{k: v for k, v in terraform.variables.items() if k not in REQUIRED},
    )
    job = flags(run.only("run", "jobs", "deploy"))
    assert env_vars(job["--set-env-vars"]) == derived["env"]
    mounts = dict(m.removesuffix(":latest").split("=") for m in job["--set-secrets"].split(","))
    assert mounts == derived["secrets"]
    assert (
        flags(run.only("scheduler", "jobs", "create", "http", "relayer-schedule"))["--schedule"]
        == (derived["schedule"])
    )
    assert job["--task-timeout"] == f"{derived['timeout']}s"
    stale = printed_file(run, "alert-stale.json")
    failed = printed_file(run, "alert-failed.json")
    assert isinstance(stale, dict) and isinstance(failed, dict)
    assert stale["conditions"][0]["conditionAbsent"]["duration"] == f"{derived['stale']}s"
    aggregation = failed["conditions"][0]["conditionThreshold"]["aggregations"][0]
    assert aggregation["alignmentPeriod"] == f"{derived['window']}s"


def test_the_same_metrics_dashboard_lag_alert_backups_trigger_and_bigquery(
    both: tuple[Terraform, Any], tmp_path: Path
) -> None:
    terraform, run = both
    derived = evaluate(
        tmp_path,
        {
            "metrics": "local.value_metrics",
            "dashboard": "local.dashboard_json",
            "lag": "local.lag_alert_blocks",
            "after": "local.lag_alert_after",
            "window": "local.alert_window",
            "retention": "local.backup_retention",
            "trigger": "local.build_trigger",
            "bigquery": "[local.bigquery_dataset, local.bigquery_table, local.bigquery_location]",
        },
        **{k: v for k, v in terraform.variables.items() if k not in REQUIRED},
    )
    tf = terraform.tf
    # The value metrics: the same names, filters, extractors, units and buckets.
    resource = tf.resource("google_logging_metric", "values")
    buckets = resource["bucket_options"][0]["exponential_buckets"][0]
    for key, metric in derived["metrics"].items():
        printed = printed_file(run, f"metric-{key}.json")
        assert isinstance(printed, dict)
        assert {
            "name": printed["name"],
            "description": printed["description"],
            "display_name": printed["metricDescriptor"]["displayName"],
            "filter": printed["filter"],
            "value_extractor": printed["valueExtractor"],
            "unit": printed["metricDescriptor"]["unit"],
        } == metric
        assert printed["bucketOptions"]["exponentialBuckets"] == {
            "numFiniteBuckets": buckets["num_finite_buckets"],
            "growthFactor": buckets["growth_factor"],
            "scale": buckets["scale"],
        }
    # The dashboard: deploy.sh renders the very template Terraform renders.
    assert printed_file(run, "dashboard.json") == json.loads(derived["dashboard"])
    # The lag alert: threshold, duration, window and aggregation.
    policy = printed_file(run, "alert-lag.json")
    assert isinstance(policy, dict)
    printed = policy["conditions"][0]["conditionThreshold"]
    condition = dynamic(tf.resource("google_monitoring_alert_policy", "lag"), "conditions")
    aggregation = condition["content"][0]["condition_threshold"][0]["aggregations"][0]
    assert (printed["thresholdValue"], printed["duration"]) == (
        derived["lag"],
        f"{derived['after']}s",
    )
    assert printed["aggregations"] == [
        {
            "alignmentPeriod": f"{derived['window']}s",
            "perSeriesAligner": aggregation["per_series_aligner"],
            "crossSeriesReducer": aggregation["cross_series_reducer"],
            "groupByFields": aggregation["group_by_fields"],
        }
    ]
    # Daily backups, kept as long.
    schedule = flags(run.only("firestore", "backups", "schedules", "create"))
    assert int(schedule["--retention"].removesuffix("d")) * 86400 == int(
        derived["retention"].removesuffix("s")
    )
    # The trigger: the same repository, branch, build file, account and substitutions.
    trigger = flags(run.only("builds", "triggers", "create", "github"))
    want = derived["trigger"]
    assert (trigger["--name"], trigger["--repo-owner"], trigger["--repo-name"]) == (
        want["name"],
        want["owner"],
        want["repository"],
    )
    assert trigger["--branch-pattern"] == want["branch_pattern"]
    assert trigger["--substitutions"] == ",".join(
        f"{k}={v}" for k, v in want["substitutions"].items()
    )
    assert (
        trigger["--build-config"] == tf.resource("google_cloudbuild_trigger", "deploy")["filename"]
    )
    deployer = f"relayer-deployer@{PROJECT}.iam.gserviceaccount.com"
    assert trigger["--service-account"] == f"projects/{PROJECT}/serviceAccounts/{deployer}"
    # BigQuery: the same table, in the same place, from the same schema file.
    dataset, table, location = derived["bigquery"]
    subscription = flags(run.only("pubsub", "subscriptions", "create", "escrow-events-bigquery"))
    assert subscription["--bigquery-table"] == f"{PROJECT}:{dataset}.{table}"
    made = next(c for c in run.commands if c[0] == "bq" and "--dataset" in c and "mk" in c)
    assert flags(made)["--location"] == location
    schema = next(flags(c)["--schema"] for c in run.commands if c[0] == "bq" and "--table" in c)
    assert (
        f'file("${{path.module}}/{schema.removeprefix("infra/")}")'
        in (tf.resource("google_bigquery_table", "events")["schema"])
    )


def test_the_same_runs_metric_and_alert_conditions(
    both: tuple[Terraform, Any], tmp_path: Path
) -> None:
    """The runs counter counts the same lines (the job's and the relay function's), and each
    alert has the same conditions: one per resource type the runs log on, where they can."""
    terraform, run = both
    derived = evaluate(
        tmp_path,
        {
            "runs": "local.run_summary_filter",
            "resources": "local.run_resources",
            "scheduled": "local.scheduled_resource_type",
            "lag": "local.lag_alert_blocks",
            "after": "local.lag_alert_after",
            "stale": "local.stale_after",
        },
        **{k: v for k, v in terraform.variables.items() if k not in REQUIRED},
    )
    metric = printed_file(run, "metric.json")
    assert isinstance(metric, dict) and metric["filter"] == derived["runs"]
    values = {
        "local.runs_metric": "logging.googleapis.com/user/relayer-runs",
        'google_logging_metric.values["lag-blocks"].name': "relayer-lag-blocks",
        "local.lag_alert_blocks": str(derived["lag"]),
        "local.lag_alert_after": str(derived["after"]),
        "local.stale_after": str(derived["stale"]),
        "local.scheduled_resource_type": derived["scheduled"],
    }
    policies = terraform.tf.of_kind("google_monitoring_alert_policy")
    for name, file in [("runs_failed", "alert-failed.json"), ("lag", "alert-lag.json")]:
        content = dynamic(policies[name], "conditions")["content"][0]
        threshold = content["condition_threshold"][0]
        want = [
            (
                rendered(content["display_name"], **values, **{"conditions.value.what": r["what"]}),
                rendered(threshold["filter"], **values, **{"conditions.key": kind}),
            )
            for kind, r in derived["resources"].items()
        ]
        printed = printed_file(run, file)
        assert isinstance(printed, dict)
        got = [(c["displayName"], c["conditionThreshold"]["filter"]) for c in printed["conditions"]]
        assert got == want, name
    (condition,) = policies["stale"]["conditions"]
    printed = printed_file(run, "alert-stale.json")
    assert isinstance(printed, dict)
    assert [(c["displayName"], c["conditionAbsent"]["filter"]) for c in printed["conditions"]] == [
        (
            rendered(condition["display_name"], **values),
            rendered(condition["condition_absent"][0]["filter"], **values),
        )
    ]
