"""Review 14: the `relay` function as deploy.sh deploys it (RELAY_FUNCTION=true), with the
environment and timeout it gets, run through `relay_http` (the relayers themselves stubbed,
as in tests/unit/test_relay_request.py). Marked xfail(strict=True): a fix makes it pass."""

from __future__ import annotations

import json
from pathlib import Path

from deploy.test_deploy_script import deploy, env_vars, flags, write_settings

from function.ops import app
from function.stopping import StopSignal


def test_the_relay_function_deploy_sh_deploys_in_follow_mode_runs_its_window(
    tmp_path: Path, relay_requests: list[StopSignal]
) -> None:
    settings = write_settings(
        tmp_path, RELAY_FUNCTION="true", RELAYER_RUN_SECONDS="60", RELAYER_POLL_INTERVAL="5"
    )
    run = deploy("--dry-run", "--env-file", str(settings))
    assert run.returncode == 0, run.stderr
    relay = {c[3]: flags(c) for c in run.find("functions", "deploy")}["relayer-relay"]
    assert relay["--timeout"] == "300s"  # the platform gives a request 300 s
    env = {**env_vars(relay["--set-env-vars"]), "RPC_URL": "https://eth.example/v2/KEY"}
    body, code, _ = app.relay_http(env)
    assert code == 200, json.loads(body).get("error")
    assert len(relay_requests) == 1


def test_a_one_batch_relay_function_is_not_stopped_long_before_its_timeout(
    tmp_path: Path, relay_requests: list[StopSignal]
) -> None:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path, RELAY_FUNCTION="true")))
    assert run.returncode == 0, run.stderr
    relay = {c[3]: flags(c) for c in run.find("functions", "deploy")}["relayer-relay"]
    timeout = float(relay["--timeout"].rstrip("s"))
    env = {**env_vars(relay["--set-env-vars"]), "RPC_URL": "https://eth.example/v2/KEY"}
    _, fleet = app.load_deployment(env)
    from function.ops.request_window import request_stop_after

    assert request_stop_after(fleet[0].request_timeout_s) >= timeout - 10
