"""Google API documents checked against the installed Cloud SDK's own API messages, offline.

gcloud decodes `--config-from-file` and `--policy-from-file` into the generated apitools
messages of each API (googlecloudsdk/generated_clients/apis/...); a misspelt field or an enum
value that does not exist lands in the message's unrecognized fields. `unrecognized` decodes a
document the same way, with the SDK's bundled Python, and lists every such path: what the API
would refuse or ignore. The JSON that Terraform sends (dashboard_json, the table schema) is
checked the same way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# API => (module under generated_clients/apis, message class).
MESSAGES = {
    "dashboard": ("monitoring.v1.monitoring_v1_messages", "Dashboard"),
    "alert policy": ("monitoring.v3.monitoring_v3_messages", "AlertPolicy"),
    "log metric": ("logging.v2.logging_v2_messages", "LogMetric"),
    "table schema": ("bigquery.v2.bigquery_v2_messages", "TableSchema"),
}

_DECODE = """
import json, sys
sys.path[:0] = sys.argv[1:3]
from importlib import import_module
from apitools.base.py import encoding
from apitools.base.protorpclite import messages

def walk(msg, path):
    out = [f"{path}.{name}" for name in msg.all_unrecognized_fields()]
    for field in msg.all_fields():
        value = msg.get_assigned_value(field.name)
        for i, item in enumerate(value if field.repeated else [value]):
            where = f"{path}.{field.name}" + (f"[{i}]" if field.repeated else "")
            if isinstance(item, messages.Message):
                out += walk(item, where)
    return out

module, name, text = json.load(sys.stdin)
cls = getattr(import_module("googlecloudsdk.generated_clients.apis." + module), name)
print(json.dumps(walk(encoding.JsonToMessage(cls, text), "$")))
"""


def _sdk() -> tuple[str, Path] | None:
    """The SDK's Python (its bundled one when there is one) and its lib folder."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    root = Path(gcloud).resolve().parents[1]
    lib = root / "lib"
    if not (lib / "googlecloudsdk" / "generated_clients").is_dir():
        return None
    bundled = root / "platform" / "bundledpythonunix" / "bin" / "python3"
    return (str(bundled) if bundled.exists() else sys.executable), lib


needs_sdk = pytest.mark.skipif(_sdk() is None, reason="the Google Cloud SDK is not installed")


def unrecognized(api: str, document: Any) -> list[str]:
    """The paths of `document` (an API's JSON) that the API's message does not know."""
    found = _sdk()
    assert found, "the Google Cloud SDK is not installed"
    python, lib = found
    module, name = MESSAGES[api]
    result = subprocess.run(
        [python, "-c", _DECODE, str(lib), str(lib / "third_party")],
        input=json.dumps([module, name, json.dumps(document)]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout)
    assert isinstance(paths, list)
    return [str(p) for p in paths]
