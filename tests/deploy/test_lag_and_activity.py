"""Lag and activity in Cloud Monitoring, both ways to deploy: log-based distribution metrics of
the run summary line (lag in blocks and seconds, events, retractions, dead letters; the runs by
outcome already counted), a dashboard charting them, and the "relayer lag" alert.

What the metrics read is what the summary line holds (function/core/summary.py log_fields), so
the fields are taken from a real summary; the documents gcloud is given are decoded with the
installed SDK's own API messages (deploy/apischema.py), and Terraform's dashboard_json is the
very document deploy.sh sends.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from deploy.apischema import needs_sdk, unrecognized
from deploy.tfeval import evaluate, needs_terraform
from test_deploy_script import (
    FAKE_GCLOUD,
    PROJECT,
    FakeCloud,
    Run,
    deploy,
    flags,
    printed_file,
    real_run,
    write_settings,
)
from test_infra import Config, _load, dynamic, one

from function.core.summary import RunSummary, log_fields

ROOT = Path(__file__).resolve().parents[2]
VALUES = {  # metric => the summary line's field it reads
    "lag-blocks": "lag_blocks",
    "lag-seconds": "lag_seconds",
    "events-published": "events_published",
    "retractions": "reorg.retracted",
    "dead-letters": "dead_lettered",
}


@pytest.fixture(scope="module")
def tf() -> Config:
    return _load()


@pytest.fixture
def dry(tmp_path: Path) -> Run:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path)))
    assert run.returncode == 0, run.stderr
    return run


def summary_line() -> dict[str, Any]:
    """The fields of a summary line of a run that relayed, met a reorganisation and
    dead-lettered a log, as the job logs them."""
    end = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    s = RunSummary("r1", "escrow", end, outcome="ok", from_block=30, to_block=40)
    s.head_block, s.to_block_time, s.finished_at = 52, int(end.timestamp()) - 30, end
    s.events_published, s.dead_lettered = 18, 1
    s.extra["reorg"] = {"depth": 2, "ancestor": 28, "retracted": 3}
    return {"relayer_id": s.relayer_id, "run_summary": True, **log_fields(s)}


def field(line: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        line = line[part]
    return line


def test_every_value_the_metrics_read_is_on_the_summary_line() -> None:
    line = summary_line()
    assert {m: field(line, f) for m, f in VALUES.items()} == {
        "lag-blocks": 12,
        "lag-seconds": 30.0,
        "events-published": 18,
        "retractions": 3,
        "dead-letters": 1,
    }


# --- Terraform ---------------------------------------------------------------------------------


def test_terraform_makes_a_distribution_metric_per_value_labelled_by_relayer(tf: Config) -> None:
    metrics = tf.resource("google_logging_metric", "values")
    assert metrics["for_each"] == "${local.value_metrics}"
    descriptor = one(metrics["metric_descriptor"])
    assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "DISTRIBUTION")
    assert one(descriptor["labels"])["key"] == "relayer_id"
    assert metrics["label_extractors"] == {"relayer_id": "EXTRACT(jsonPayload.relayer_id)"}
    assert metrics["value_extractor"] == "${each.value.value_extractor}"
    assert one(one(metrics["bucket_options"])["exponential_buckets"])
    # The job the filter names is the job (derived.tf cannot refer to it, only to var.name).
    assert tf.resource("google_cloud_run_v2_job", "relay")["name"] == "${var.name}"


@needs_terraform
def test_terraform_metrics_read_the_fields_and_skip_lines_without_them(tmp_path: Path) -> None:
    metrics = evaluate(tmp_path, {"m": "local.value_metrics"})["m"]
    assert set(metrics) == set(VALUES)
    for key, path in VALUES.items():
        m = metrics[key]
        assert m["name"] == f"relayer-{key}"
        assert m["value_extractor"] == f"EXTRACT(jsonPayload.{path})"
        # A value the run did not learn is absent from its line: the line is not counted.
        assert m["filter"].endswith(f"AND jsonPayload.{path}:*")
        assert 'resource.labels.job_name="relayer"' in m["filter"]
        assert "jsonPayload.run_summary=true" in m["filter"]
    assert metrics["lag-seconds"]["unit"] == "s"


def test_terraform_alerts_on_relayer_lag_like_the_other_alerts(tf: Config) -> None:
    policy = tf.resource("google_monitoring_alert_policy", "lag")
    assert policy["display_name"] == "${var.name}: relayer lag"
    assert policy["notification_channels"] == "${var.notification_channels}"
    conditions = dynamic(policy, "conditions")  # one per resource type the runs log on
    assert conditions["for_each"] == "${local.run_resources}"
    threshold = one(one(conditions["content"])["condition_threshold"])
    assert 'google_logging_metric.values["lag-blocks"].name' in threshold["filter"]
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["threshold_value"] == "${local.lag_alert_blocks}"
    assert threshold["duration"] == "${local.lag_alert_after}s"
    aggregation = one(threshold["aggregations"])
    # The window the failed-runs alert counts over: it always holds runs.
    assert aggregation["alignment_period"] == "${local.alert_window}s"
    assert (aggregation["per_series_aligner"], aggregation["cross_series_reducer"]) == (
        "ALIGN_DELTA",
        "REDUCE_MEAN",
    )
    assert aggregation["group_by_fields"] == ["metric.label.relayer_id"]
    content = one(policy["documentation"])["content"]
    for what in ("/status", "RELAYER_BATCH_SIZE", "rpc_limits", "START_BLOCK", "lag_alert_blocks"):
        assert what in content, what


@needs_terraform
@pytest.mark.parametrize(
    ("variables", "blocks", "after"),
    [
        ({}, 1012, 480),  # confirmations 12 + batch 1000; the stale alert's 480 s
        ({"confirmations": 20, "batch_size": 500}, 520, 480),
        ({"extra_env": {"RELAYER_MAX_LAG_BLOCKS": "5000"}}, 5000, 480),  # status's limit
        ({"lag_alert_blocks": 64, "lag_alert_seconds": 900}, 64, 900),
        ({"poll_interval_seconds": 120}, 1012, 600),
    ],
)
def test_the_lag_alert_defaults_to_the_status_limit_and_the_stale_wait(
    tmp_path: Path, variables: dict[str, Any], blocks: int, after: int
) -> None:
    got = evaluate(
        tmp_path,
        {"blocks": "local.lag_alert_blocks", "after": "local.lag_alert_after"},
        **variables,
    )
    assert (got["blocks"], got["after"]) == (blocks, after)


@needs_terraform
def test_terraform_dashboard_charts_lag_events_outcomes_dead_letters(
    tmp_path: Path, tf: Config
) -> None:
    dashboard = tf.resource("google_monitoring_dashboard", "relay")
    assert dashboard["dashboard_json"] == "${local.dashboard_json}"
    rendered = json.loads(evaluate(tmp_path, {"d": "local.dashboard_json"})["d"])
    assert rendered["displayName"] == "relayer: lag and activity"
    charted = {
        re.search(r"user/relayer-([a-z-]+)", d["timeSeriesQuery"]["timeSeriesFilter"]["filter"])[1]
        for w in rendered["gridLayout"]["widgets"]
        for d in w["xyChart"]["dataSets"]
    }
    assert charted == {*VALUES, "runs"}
    lag = rendered["gridLayout"]["widgets"][0]["xyChart"]
    assert one(lag["thresholds"])["value"] == 1012  # the lag alert's limit, drawn


@needs_sdk
@needs_terraform
def test_terraform_dashboard_is_a_dashboard_the_api_knows(tmp_path: Path) -> None:
    rendered = json.loads(evaluate(tmp_path, {"d": "local.dashboard_json"})["d"])
    assert unrecognized("dashboard", rendered) == []


def test_the_dashboard_template_has_only_its_two_placeholders() -> None:
    text = (ROOT / "infra" / "dashboard.json").read_text()
    assert set(re.findall(r"\$\{[^}]*\}|%\{", text)) == {"${name}", "${lag_blocks_limit}"}


# --- deploy.sh ---------------------------------------------------------------------------------


def test_deploy_sh_creates_the_value_metrics(dry: Run) -> None:
    created = {c[4] for c in dry.find("logging", "metrics", "create")}
    assert created == {"relayer-runs", *(f"relayer-{k}" for k in VALUES)}
    line = summary_line()
    for key, path in VALUES.items():
        metric = printed_file(dry, f"metric-{key}.json")
        assert isinstance(metric, dict)
        assert metric["metricDescriptor"]["valueType"] == "DISTRIBUTION"
        assert metric["valueExtractor"] == f"EXTRACT(jsonPayload.{path})"
        assert metric["labelExtractors"] == {"relayer_id": "EXTRACT(jsonPayload.relayer_id)"}
        assert metric["filter"].endswith(f"jsonPayload.{path}:*")
        assert field(line, path) is not None


def test_deploy_sh_alerts_on_relayer_lag(dry: Run) -> None:
    policy = printed_file(dry, "alert-lag.json")
    assert isinstance(policy, dict)
    assert policy["displayName"] == "relayer: relayer lag"
    threshold = policy["conditions"][0]["conditionThreshold"]
    assert "logging.googleapis.com/user/relayer-lag-blocks" in threshold["filter"]
    assert threshold["thresholdValue"] == 1012
    assert threshold["duration"] == "600s"  # the stale alert's wait with a 120 s poll interval
    aggregation = one(threshold["aggregations"])
    assert aggregation["alignmentPeriod"] == "600s"  # the failed-runs window
    assert policy["notificationChannels"] == [f"projects/{PROJECT}/notificationChannels/42"]
    lists = [c for c in dry.find("alpha", "monitoring", "policies", "list")]
    assert 'displayName="relayer: relayer lag"' in {flags(c)["--filter"] for c in lists}


@pytest.mark.parametrize(
    ("settings", "blocks", "after"),
    [
        ({"RELAYER_CONFIRMATIONS": "20", "RELAYER_BATCH_SIZE": "500"}, 520, "600s"),
        ({"RELAYER_MAX_LAG_BLOCKS": "5000"}, 5000, "600s"),
        ({"LAG_ALERT_BLOCKS": "64", "LAG_ALERT_AFTER": "900"}, 64, "900s"),
    ],
)
def test_deploy_sh_lag_alert_settings(
    tmp_path: Path, settings: dict[str, str], blocks: int, after: str
) -> None:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path, **settings)))
    assert run.returncode == 0, run.stderr
    policy = printed_file(run, "alert-lag.json")
    assert isinstance(policy, dict)
    threshold = policy["conditions"][0]["conditionThreshold"]
    assert (threshold["thresholdValue"], threshold["duration"]) == (blocks, after)
    dashboard = printed_file(run, "dashboard.json")
    assert isinstance(dashboard, dict)
    assert dashboard["gridLayout"]["widgets"][0]["xyChart"]["thresholds"][0]["value"] == blocks


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"LAG_ALERT_AFTER": "90"}, "LAG_ALERT_AFTER=90 is invalid: expected whole minutes"),
        ({"LAG_ALERT_BLOCKS": "0"}, "LAG_ALERT_BLOCKS=0 is invalid"),
    ],
)
def test_deploy_sh_refuses_a_bad_lag_alert(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path, **settings)))
    assert run.returncode == 2 and message in run.stderr
    assert run.commands == []


def test_deploy_sh_creates_the_dashboard_once(dry: Run) -> None:
    listed = dry.only("monitoring", "dashboards", "list")
    assert flags(listed)["--filter"] == 'displayName="relayer: lag and activity"'
    assert len(dry.find("monitoring", "dashboards", "create")) == 1
    dashboard = printed_file(dry, "dashboard.json")
    assert isinstance(dashboard, dict) and dashboard["displayName"] == "relayer: lag and activity"
    assert "${" not in json.dumps(dashboard)


@needs_sdk
def test_deploy_sh_documents_are_ones_the_apis_know(dry: Run) -> None:
    for name, api in [
        ("dashboard.json", "dashboard"),
        ("alert-lag.json", "alert policy"),
        ("alert-stale.json", "alert policy"),
        ("alert-failed.json", "alert policy"),
        ("metric.json", "log metric"),
        *((f"metric-{key}.json", "log metric") for key in VALUES),
    ]:
        assert unrecognized(api, printed_file(dry, name)) == [], name


def test_a_second_deploy_updates_the_listed_dashboard_with_its_etag(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    listing = 'if args[:3] == ["monitoring", "dashboards", "list"]:\n    print("projects/p/dashboards/9\\tetag-1")\nelif args[:2] == ["projects", "describe"]:'  # noqa: E501
    text = FAKE_GCLOUD.format(python=sys.executable, project=PROJECT)
    assert 'if args[:2] == ["projects", "describe"]:' in text
    (bin_dir / "gcloud").write_text(
        text.replace('if args[:2] == ["projects", "describe"]:', listing, 1)
    )
    (bin_dir / "gcloud").chmod(0o755)
    cloud = FakeCloud(bin_dir, tmp_path / "calls.jsonl")
    run = real_run(cloud, write_settings(tmp_path), True)
    assert run.returncode == 0, run.stderr
    calls = [c for c in cloud.calls() if c["argv"][:2] == ["monitoring", "dashboards"]]
    assert [c["argv"][2] for c in calls] == ["list", "update"]
    update = calls[1]
    assert update["argv"][3] == "projects/p/dashboards/9"
    document = update["file"]
    assert isinstance(document, dict)
    assert document["etag"] == "etag-1"
    assert document["displayName"] == "relayer: lag and activity"
