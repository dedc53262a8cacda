"""infra/derived.tf evaluated by `terraform console`: no provider, no state, no cloud.

derived.tf holds every value Terraform derives from its variables alone (names, schedule,
timeouts, alert windows, the runtime environment), so its results can be compared with what
deploy.sh derives from the same settings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")

# The variables without a default, as in the deploy.sh tests' settings.
REQUIRED: dict[str, Any] = {
    "project_id": "acme-relay-prod",
    "region": "europe-west1",
    "chain_id": 11155111,
    "contract_addresses": [
        "0x00000000000000000000000000000000000000aa",
        "0x00000000000000000000000000000000000000bb",
    ],
    "start_block": 9505000,
}


class Refused(Exception):
    """Terraform refused the variables (a validation failed) or the expression."""


def evaluate(folder: Path, expressions: dict[str, str], **variables: Any) -> dict[str, Any]:
    """The expressions' values with these variables (over REQUIRED)."""
    assert TERRAFORM, "terraform is not installed"
    work = folder / f"tf-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    # derived.tf renders the dashboard template (templatefile) too.
    for name in ("variables.tf", "derived.tf", "dashboard.json"):
        shutil.copy(ROOT / "infra" / name, work)
    (work / "terraform.tfvars.json").write_text(json.dumps({**REQUIRED, **variables}))
    body = ", ".join(f"{json.dumps(k)} = {v}" for k, v in expressions.items())
    result = subprocess.run(
        [TERRAFORM, "console"],
        cwd=work,
        input=f"jsonencode({{{body}}})\n",
        capture_output=True,
        text=True,
        timeout=120,
        # No version check over the network, no CLI configuration.
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull},
    )
    if result.returncode != 0:
        raise Refused(re.sub(r"\x1b\[[0-9;]*m", "", result.stderr + result.stdout))
    line = [s for s in result.stdout.splitlines() if s.startswith('"')][-1]
    value = json.loads(json.loads(line))
    assert isinstance(value, dict)
    return value
