"""Review of issue 15: RPC_WS_URL "A secret like RPC_URL, shown only by its host" (README,
Configuration): it carries the same API key. Issue 15 asks that every RPC secret be mounted
from Secret Manager by both deploy paths. Terraform takes it as plain text in extra_env
(its validation looks for "RPC_URL" and misses "RPC_WS_URL"), so the key lands in the job's
plain environment, the Terraform state and `relayer job-env`'s output; deploy.sh cannot take
its value at all (--rpc-url-file accepts http(s) only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy.tfeval import Refused, evaluate, needs_terraform
from test_deploy_script import deploy, write_settings

KEYED_WS = "wss://eth.example/ws/SECRETKEY"


@needs_terraform
def test_terraform_refuses_rpc_ws_url_in_plain_text(tmp_path: Path) -> None:
    try:
        got = evaluate(tmp_path, {"env": "local.runtime_env"}, extra_env={"RPC_WS_URL": KEYED_WS})
    except Refused:
        return
    pytest.fail(f"extra_env took RPC_WS_URL as plain text: {got['env'].get('RPC_WS_URL')}")


def test_deploy_sh_mounts_rpc_ws_url_from_a_secret(tmp_path: Path) -> None:
    ws = tmp_path / "ws.txt"
    ws.write_text(KEYED_WS)
    settings = write_settings(tmp_path, RPC_URL_SECRETS="RPC_WS_URL=relayer-ws-url")
    run = deploy("--dry-run", "--env-file", str(settings), "--rpc-url-file", f"RPC_WS_URL={ws}")
    assert run.returncode == 0, run.stderr.strip().splitlines()[-1:]
    assert "SECRETKEY" not in run.stdout + run.stderr
