"""RPC_WS_URL carries its API key like RPC_URL: both deploy paths mount it from Secret
Manager (rpc_url_secrets / RPC_URL_SECRETS), neither takes it, nor any RPC URL, as plain
text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy.tfeval import Refused, evaluate, needs_terraform
from test_deploy_script import deploy, fake_cloud, flags, real_run, write_settings  # noqa: F401

WS = "wss://eth.example/ws/SECRETKEY"


@needs_terraform
@pytest.mark.parametrize(
    "extra_env",
    [
        {"RPC_WS_URL": WS},
        {"VAULT_WS_URL": WS},
        {"VAULT_NODE": "https://vault.example/v2/SECRETKEY"},  # an RPC_URL_ENV of any name
        {"VAULT_NODE": "http://a.example, WSS://b.example/SECRETKEY"},
    ],
)
def test_terraform_refuses_any_rpc_url_in_extra_env(
    tmp_path: Path, extra_env: dict[str, str]
) -> None:
    with pytest.raises(Refused) as refused:
        evaluate(tmp_path, {"env": "local.runtime_env"}, extra_env=extra_env)
    assert "never goes in a plain variable" in " ".join(str(refused.value).split())


@needs_terraform
def test_terraform_mounts_rpc_ws_url_from_its_secret_and_keeps_other_settings(
    tmp_path: Path,
) -> None:
    got: dict[str, Any] = evaluate(
        tmp_path,
        {"secrets": "local.secret_env", "env": "local.runtime_env"},
        rpc_url_secrets={"RPC_WS_URL": "relayer-ws-url"},
        extra_env={"RELAYER_HEAD": "finalized", "ABI_URI": "gs://abis/escrow.json"},
    )
    assert got["secrets"]["RPC_WS_URL"] == "relayer-ws-url"
    assert "RPC_WS_URL" not in got["env"]
    assert got["env"]["RELAYER_HEAD"] == "finalized"


def test_deploy_sh_mounts_rpc_ws_url_into_the_job_and_the_functions(tmp_path: Path) -> None:
    ws = tmp_path / "ws.txt"
    ws.write_text(WS + "\n")
    settings = write_settings(tmp_path, RPC_URL_SECRETS="RPC_WS_URL=relayer-ws-url")
    run = deploy("--dry-run", "--env-file", str(settings), "--rpc-url-file", f"RPC_WS_URL={ws}")
    assert run.returncode == 0, run.stderr
    mounts = "RPC_URL=relayer-rpc-url:latest,RPC_WS_URL=relayer-ws-url:latest"
    assert flags(run.only("run", "jobs", "deploy"))["--set-secrets"] == mounts
    assert flags(run.only("functions", "deploy"))["--set-secrets"] == mounts
    assert "SECRETKEY" not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RPC_WS_URL", "https://eth.example/SECRETKEY", "does not start with ws:// or wss://"),
        ("RPC_WS_URL", WS + "," + WS, "does not start with ws:// or wss://"),
        ("VAULT_RPC_URL", WS, "does not start with http:// or https://"),
    ],
)
def test_deploy_sh_takes_ws_urls_only_for_a_ws_url_variable(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    file = tmp_path / "url.txt"
    file.write_text(value)
    settings = write_settings(tmp_path, RPC_URL_SECRETS=f"{name}=relayer-{name.lower()[:6]}")
    run = deploy("--dry-run", "--env-file", str(settings), "--rpc-url-file", f"{name}={file}")
    assert run.returncode == 2
    assert message in run.stderr and name in run.stderr
    assert "SECRETKEY" not in run.stdout + run.stderr


def test_deploy_sh_refuses_rpc_ws_url_in_the_settings_file(
    tmp_path: Path,
    fake_cloud: Any,  # noqa: F811
) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path, RPC_WS_URL=WS), existing=False)
    assert run.returncode == 2
    assert "RPC_URL_SECRETS=RPC_WS_URL=SECRET" in run.stderr
    assert "SECRETKEY" not in run.stdout + run.stderr
    assert fake_cloud.calls() == []
