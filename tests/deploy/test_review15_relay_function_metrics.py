"""Review of issue 15: with the `relay` function (relay_function / RELAY_FUNCTION=true) the job's
schedule is paused and every run is the function's (Cloud Functions gen2: a Cloud Run
service, `resource.type="cloud_run_revision"`, `service_name` NAME-relay). The log-based
metrics, the alerts and the dashboard read the job's lines only (`resource.type=
"cloud_run_job"`), so in that deployment no run, failure or lag ever reaches Cloud
Monitoring: the failed-runs and lag alerts never fire and the dashboard stays empty.

Issue 15: "Export lag ... events published, retractions, dead letters and run outcomes as
metrics Cloud Monitoring charts and alerts on"; the relay function is one of its deploy
options."""

from __future__ import annotations

from pathlib import Path

from test_deploy_script import Run, deploy, printed_file, write_settings
from test_infra import _load


def dry(tmp_path: Path) -> Run:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path, RELAY_FUNCTION="true")))
    assert run.returncode == 0, run.stderr
    return run


def test_deploy_sh_counts_the_relay_functions_runs(tmp_path: Path) -> None:
    run = dry(tmp_path)
    metric = printed_file(run, "metric.json")
    assert isinstance(metric, dict)
    assert "relayer-relay" in metric["filter"], metric["filter"]


def test_deploy_sh_charts_the_relay_functions_lag(tmp_path: Path) -> None:
    run = dry(tmp_path)
    metric = printed_file(run, "metric-lag-blocks.json")
    assert isinstance(metric, dict)
    assert "relayer-relay" in metric["filter"], metric["filter"]


def test_terraform_counts_the_relay_functions_runs() -> None:
    """The filters are built from `run_resources` (derived.tf), which names the function's
    lines; test_relay_function_monitoring.py evaluates them against sample lines."""
    tf = _load()
    assert "local.run_lines" in str(tf.locals["run_summary_filter"])
    assert "local.run_lines" in str(tf.locals["summary_lines"])
    resources = str(tf.locals["run_resources"])
    assert "cloud_run_revision" in resources and "relay_function_name" in resources, resources
