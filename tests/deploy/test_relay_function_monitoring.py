"""Monitoring with the relay function, both ways to deploy (relay_function, RELAY_FUNCTION).

With the function the job's schedule is paused and the runs happen in the function, which
Cloud Functions gen2 runs as the Cloud Run service `<name>-relay`: its lines are a
`cloud_run_revision`'s. The metrics count the summary lines of the job and of the function,
the failed-runs and lag alerts have one condition per resource type (an alert filter names one
resource type, and a time series cannot be reduced across resource types), the no-progress
alert watches where the schedule starts runs, the dashboard charts every series of a metric,
and the log queries the alerts and deploy.sh print find the function's lines. Whether a filter
matches a line is decided by deploy/logfilter.py, on lines shaped as Cloud Run logs them.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from deploy.apischema import needs_sdk, unrecognized
from deploy.logfilter import matches
from deploy.tfeval import evaluate, needs_terraform
from test_deploy_script import Run, deploy, printed_file, write_settings
from test_infra import Config, _load, dynamic, one
from test_lag_and_activity import VALUES, summary_line

JOB, FUNCTION = "cloud_run_job", "cloud_run_revision"


def line(resource: str, labels: dict[str, str], payload: dict[str, Any], severity: str) -> dict:
    return {
        "resource": {"type": resource, "labels": labels},
        "jsonPayload": payload,
        "severity": severity,
    }


def lines() -> dict[str, dict[str, Any]]:
    """Log lines as Cloud Logging stores them, by who wrote them."""
    summary = summary_line()
    failed = {**copy.deepcopy(summary), "outcome": "failed"}
    config_error = {"outcome": "failed", "message": "RPC_URL is not set"}
    job = {"job_name": "relayer", "location": "europe-west1"}
    relay = {"service_name": "relayer-relay", "revision_name": "relayer-relay-00002-kav"}
    status = {"service_name": "relayer-status", "revision_name": "relayer-status-00001-abc"}
    return {
        "job summary": line(JOB, job, summary, "INFO"),
        "job failed run": line(JOB, job, failed, "ERROR"),
        "function summary": line(FUNCTION, relay, summary, "INFO"),
        "function failed run": line(FUNCTION, relay, failed, "ERROR"),
        "function configuration error": line(FUNCTION, relay, config_error, "ERROR"),
        "status function": line(FUNCTION, status, summary, "INFO"),
        "another job": line(JOB, {"job_name": "other"}, summary, "INFO"),
    }


def found(query: str) -> set[str]:
    return {who for who, entry in lines().items() if matches(query, entry)}


SUMMARIES = {"job summary", "job failed run", "function summary", "function failed run"}
JOB_ONLY = {"job summary", "job failed run"}


# --- Terraform ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf() -> Config:
    return _load()


def derived(tmp_path: Path, relay_function: bool) -> dict[str, Any]:
    return evaluate(
        tmp_path,
        {
            "runs": "local.run_summary_filter",
            "values": "local.value_metrics",
            "lines": "local.run_lines",
            "resources": "local.run_resources",
            "scheduled": "local.scheduled_resource_type",
            "dashboard": "local.dashboard_json",
        },
        relay_function=relay_function,
    )


@needs_terraform
def test_terraform_metrics_count_the_relay_functions_summary_lines(tmp_path: Path) -> None:
    on = derived(tmp_path, True)
    assert found(on["runs"]) == SUMMARIES | {"function configuration error"}
    for key, metric in on["values"].items():
        assert found(metric["filter"]) == SUMMARIES, key
    assert found(on["lines"] + " AND severity>=ERROR") == {
        "job failed run",
        "function failed run",
        "function configuration error",
    }
    off = derived(tmp_path, False)
    assert found(off["runs"]) == JOB_ONLY
    for key, metric in off["values"].items():
        assert found(metric["filter"]) == JOB_ONLY, key


@needs_terraform
def test_terraform_resource_types_of_the_runs(tmp_path: Path) -> None:
    on, off = derived(tmp_path, True), derived(tmp_path, False)
    assert {t: r["what"] for t, r in on["resources"].items()} == {
        JOB: "the job",
        FUNCTION: "the relay function",
    }
    assert list(off["resources"]) == [JOB]
    # The schedule starts runs in the function (the job's is paused), else in the job.
    assert (on["scheduled"], off["scheduled"]) == (FUNCTION, JOB)


def rendered(text: str, **values: str) -> str:
    """An HCL string as Terraform renders it, with these interpolations' values."""
    text = text.replace('\\"', '"')
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, text
    return text


def terraform_conditions(tf: Config, policy: str, kind: str, types: list[str]) -> list[str]:
    """The filters of a policy whose conditions are one per resource type of the runs."""
    block = dynamic(tf.resource("google_monitoring_alert_policy", policy), "conditions")
    assert block["for_each"] == "${local.run_resources}"
    content = one(block["content"])
    text = one(content[kind])["filter"]
    metric = {
        "runs_failed": ("local.runs_metric", "logging.googleapis.com/user/relayer-runs"),
        "lag": (
            'google_logging_metric.values["lag-blocks"].name',
            "relayer-lag-blocks",
        ),
    }[policy]
    text = text.replace("${" + metric[0] + "}", metric[1])
    return [rendered(text, **{"conditions.key": t}) for t in types]


@needs_terraform
def test_terraform_alerts_on_failures_and_lag_of_the_job_and_the_function(
    tf: Config, tmp_path: Path
) -> None:
    types = list(derived(tmp_path, True)["resources"])
    for policy, kind, metric in [
        ("runs_failed", "condition_threshold", "relayer-runs"),
        ("lag", "condition_threshold", "relayer-lag-blocks"),
    ]:
        assert tf.resource("google_monitoring_alert_policy", policy)["combiner"] == "OR"
        filters = terraform_conditions(tf, policy, kind, types)
        assert [f.split(" AND ")[0] for f in filters] == [
            f'resource.type = "{JOB}"',
            f'resource.type = "{FUNCTION}"',
        ]
        for f in filters:
            assert f'metric.type = "logging.googleapis.com/user/{metric}"' in f


def test_terraform_no_progress_alert_watches_where_the_schedule_starts_runs(tf: Config) -> None:
    policy = tf.resource("google_monitoring_alert_policy", "stale")
    absent = one(one(policy["conditions"])["condition_absent"])
    values = {"local.scheduled_resource_type": "TYPE", "local.runs_metric": "METRIC"}
    assert rendered(absent["filter"], **values) == (
        'resource.type = "TYPE" AND metric.type = "METRIC"'
        ' AND metric.label.outcome = one_of("ok", "idle")'
    )


def test_terraform_failed_runs_text_gives_logs_of_job_and_function(tf: Config) -> None:
    text = one(tf.resource("google_monitoring_alert_policy", "runs_failed")["documentation"])
    assert "`${local.run_lines} AND severity>=ERROR`" in text["content"]
    assert "cloud_run_job" not in text["content"]


def dashboard_filters(dashboard: dict[str, Any]) -> list[str]:
    return [
        d["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        for w in dashboard["gridLayout"]["widgets"]
        for d in w["xyChart"]["dataSets"]
    ]


def assert_every_series_charted(dashboard: dict[str, Any]) -> None:
    """Each chart reads one metric on whatever resource carries it: its filter names the
    metric alone (ListTimeSeries needs no more), and the series of the job and of the function
    are charted side by side (they cannot be reduced into one)."""
    for f in dashboard_filters(dashboard):
        assert re.fullmatch(r'metric\.type="logging\.googleapis\.com/user/relayer-[a-z-]+"', f), f


@needs_terraform
def test_terraform_dashboard_charts_the_functions_series(tmp_path: Path) -> None:
    assert_every_series_charted(json.loads(derived(tmp_path, True)["dashboard"]))


# --- deploy.sh ---------------------------------------------------------------------------------


def dry_run(tmp_path: Path, relay_function: bool) -> Run:
    settings = write_settings(tmp_path, RELAY_FUNCTION=str(relay_function).lower())
    run = deploy("--dry-run", "--env-file", str(settings))
    assert run.returncode == 0, run.stderr
    return run


def document(run: Run, name: str) -> dict[str, Any]:
    found = printed_file(run, name)
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def with_function(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return dry_run(tmp_path_factory.mktemp("on"), True)


@pytest.fixture(scope="module")
def without_function(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return dry_run(tmp_path_factory.mktemp("off"), False)


def test_deploy_sh_metrics_count_the_relay_functions_summary_lines(
    with_function: Run, without_function: Run
) -> None:
    assert found(document(with_function, "metric.json")["filter"]) == SUMMARIES | {
        "function configuration error"
    }
    assert found(document(without_function, "metric.json")["filter"]) == JOB_ONLY
    for key in VALUES:
        assert found(document(with_function, f"metric-{key}.json")["filter"]) == SUMMARIES
        assert found(document(without_function, f"metric-{key}.json")["filter"]) == JOB_ONLY


def condition_types(policy: dict[str, Any], kind: str) -> list[str]:
    out = []
    for condition in policy["conditions"]:
        f = condition[kind]["filter"]
        out.append(re.match(r'resource\.type = "([a-z_]+)" AND ', f)[1])  # type: ignore[index]
    return out


def test_deploy_sh_alerts_on_failures_and_lag_of_the_job_and_the_function(
    with_function: Run, without_function: Run
) -> None:
    for name, metric in [("alert-failed.json", "relayer-runs"), ("alert-lag.json", "relayer-lag")]:
        policy = document(with_function, name)
        assert policy["combiner"] == "OR"
        assert condition_types(policy, "conditionThreshold") == [JOB, FUNCTION]
        for condition in policy["conditions"]:
            assert (
                f"logging.googleapis.com/user/{metric}" in condition["conditionThreshold"]["filter"]
            )
        assert condition_types(document(without_function, name), "conditionThreshold") == [JOB]


def test_deploy_sh_no_progress_alert_watches_where_the_schedule_starts_runs(
    with_function: Run, without_function: Run
) -> None:
    on = document(with_function, "alert-stale.json")
    off = document(without_function, "alert-stale.json")
    assert condition_types(on, "conditionAbsent") == [FUNCTION]
    assert condition_types(off, "conditionAbsent") == [JOB]


def test_deploy_sh_dashboard_charts_the_functions_series(with_function: Run) -> None:
    assert_every_series_charted(document(with_function, "dashboard.json"))


def printed_query(run: Run, label: str) -> str:
    """The filter of the `gcloud logging read` that deploy.sh prints after `label`."""
    (text,) = [s for s in run.stdout.splitlines() if s.startswith(f"# {label}")]
    argv = shlex.split(text.removeprefix(f"# {label}"))
    assert argv[:3] == ["gcloud", "logging", "read"], argv
    return argv[3]


def test_deploy_sh_prints_log_queries_that_find_the_functions_lines(
    with_function: Run, without_function: Run
) -> None:
    assert found(printed_query(with_function, "Run summaries:")) == SUMMARIES
    assert found(printed_query(without_function, "Run summaries:")) == JOB_ONLY
    text = document(with_function, "alert-failed.json")["documentation"]["content"]
    query = re.search(r"Logs: `([^`]+)`", text)
    assert query, text
    assert found(query[1]) == {
        "job failed run",
        "function failed run",
        "function configuration error",
    }


@needs_sdk
def test_deploy_sh_documents_with_the_function_are_ones_the_apis_know(with_function: Run) -> None:
    for name, api in [
        ("alert-failed.json", "alert policy"),
        ("alert-stale.json", "alert policy"),
        ("alert-lag.json", "alert policy"),
        ("metric.json", "log metric"),
        ("dashboard.json", "dashboard"),
    ]:
        assert unrecognized(api, document(with_function, name)) == [], name
