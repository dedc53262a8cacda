"""Every invalid setting in one run (docs/CONTRACT.md §1-§2): `python main.py`, the fleet file
and the CLI each report all of them, exit 2, one line each with the variable first. No
service is needed: the run stops at its configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from minimal_env import MINIMAL

ROOT = Path(__file__).resolve().parents[2]
GOOD = {**MINIMAL, "RPC_URL": "http://127.0.0.1:1/v2/secret-key-42"}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in GOOD and not k.startswith("RELAYER")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), "LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_main_logs_every_invalid_setting_a_line_each() -> None:
    bad = {**GOOD, "CHAIN_ID": "x", "START_BLOCK": "-1", "RELAYER_HEAD": "newest"}
    done = run(["main.py"], **{**bad, "RPC_URL": "ftp://node.example/secret-key-42"})
    assert done.returncode == 2
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    firsts = [line["message"].split("=", 1)[0].split(" ", 1)[0] for line in lines]
    assert firsts == ["CHAIN_ID", "RPC_URL", "START_BLOCK", "RELAYER_HEAD"]
    assert all(line["severity"] == "ERROR" for line in lines)
    assert "secret-key-42" not in done.stdout + done.stderr


def test_a_relayers_file_reports_every_relayers_problems(tmp_path: Path) -> None:
    config = tmp_path / "relayers.yaml"
    config.write_text(
        "relayers:\n"
        "  - {RELAYER_ID: a, CONTRACT_ADDRESS: '0x12'}\n"
        "  - {RELAYER_ID: b, START_BLOCK: soon, RPC_URL_ENV: NOT_SET_ANYWHERE}\n"
        "  - {RELAYER_ID: c, RELAYER_BATCH_SIZE: '0', PUBSUB_TOPIC: 'projects/p/topics/t'}\n"
    )
    done = run(["main.py"], **GOOD, RELAYER_CONFIG=str(config))
    assert done.returncode == 2
    messages = [json.loads(line)["message"] for line in done.stdout.splitlines()]
    assert len(messages) == 4, messages
    assert "relayers[0]: CONTRACT_ADDRESS='0x12'" in messages[0]
    assert "relayers[1] takes its RPC URL from NOT_SET_ANYWHERE" in messages[1]
    assert "relayers[2]: PUBSUB_TOPIC=" in messages[2]
    assert "relayers[2]: RELAYER_BATCH_SIZE=" in messages[3]


def test_the_cli_prints_an_error_line_per_invalid_setting() -> None:
    done = run(
        ["-c", "from function.ops.cli import main; main()", "status"],
        **{**GOOD, "CHAIN_ID": "x", "PUBSUB_TOPIC": ""},
    )
    assert done.returncode == 2
    assert [line.split(" ", 2)[1] for line in done.stderr.splitlines()] == [
        "CHAIN_ID='x'",
        "PUBSUB_TOPIC",
    ]
