"""Where the `relayer` command gets the job's environment: the shell, an env file, or the
deployed Cloud Run Job itself (its plain variables; secrets stay in Secret Manager, and a plain
variable holding an RPC URL is named, never written: the URL carries its API key).

The shell wins over an env file, as with Docker's `--env-file` and python-dotenv: an operator
can keep the job's settings in a file and still override one on the command line
(`RPC_URL=... relayer --env-file job.env status`).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from function.errors import ConfigError

GCLOUD_TIMEOUT_S = 60.0


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines (`#` comments, quotes, `export KEY=...`), as python-dotenv reads them."""
    from dotenv import dotenv_values

    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"--env-file {path}: no such file (KEY=VALUE lines, e.g. from `relayer job-env`)"
        )
    values = dotenv_values(file)
    blank = sorted(k for k, v in values.items() if v is None)
    if blank:
        raise ConfigError(
            f"--env-file {path}: {', '.join(blank)} has no '=': write KEY=VALUE (KEY= for empty)"
        )
    return {k: v for k, v in values.items() if v is not None}


def load_under(environ: dict[str, str] | Any, file_values: Mapping[str, str]) -> list[str]:
    """Put the file's values into `environ` (os.environ: the client libraries read their
    emulator hosts and credentials there) where the shell has not set them; the names
    the shell overrode."""
    overridden = sorted(k for k, v in file_values.items() if k in environ and environ[k] != v)
    for key, value in file_values.items():
        environ.setdefault(key, value)
    return overridden


# An RPC URL carries its API key: never written, whatever variable holds it (RPC_URL,
# RPC_WS_URL, the RPC_URL_ENV of a RELAYER_CONFIG entry, whose name can be anything). No
# other setting is an http(s) or ws(s) URL (ABI_URI is gs:// or a path), so the value tells.
RPC_URL_NAMES = ("RPC_URL", "RPC_WS_URL")
URL_SCHEMES = ("http://", "https://", "ws://", "wss://")


def is_rpc_url(name: str, value: str) -> bool:
    """Whether a plain variable holds an RPC URL (and so a key): by its name or its value."""
    return name in RPC_URL_NAMES or any(
        part.strip().lower().startswith(URL_SCHEMES) for part in value.split(",")
    )


@dataclass(frozen=True)
class JobEnv:
    """A deployed job's container variables: plain values, those mounted from secrets, and
    the plain ones left out because they hold an RPC URL."""

    values: dict[str, str]
    secrets: dict[str, str]  # variable -> "secret:version"
    withheld: tuple[str, ...] = ()  # plain variables holding an RPC URL: named, not written
    region: str | None = None  # the job's, when its description tells it

    def as_env_file(self, job: str) -> str:
        lines = [f"# The environment of Cloud Run Job {job}, as deployed (relayer job-env)."]
        for name, ref in sorted(self.secrets.items()):
            lines.append(
                f"# {name} comes from Secret Manager ({ref}): not written here; set it in the "
                "shell, e.g. "
                f'{name}="$(gcloud secrets versions access {ref.split(":")[-1]} '
                f'--secret={ref.split(":")[0]})"'
            )
        path = ".spec.template.spec.template.spec.containers[0].env[]"
        for name in self.withheld:
            lines.append(
                f"# {name} is a plain variable of the job holding an RPC URL (its API key): not "
                "written here (mount it from Secret Manager: README, Deploying); set it in the "
                f'shell, e.g. {name}="$(gcloud run jobs describe {job} '
                f"--region={self.region or 'REGION'} --format=json | jq -r "
                f'\'{path} | select(.name == "{name}").value\')"'
            )
        lines += [f"{k}={_quoted(v)}" for k, v in sorted(self.values.items())]
        return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    if value and all(c.isalnum() or c in "._-/:@,+=" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def job_env(described: Any, job: str) -> JobEnv:
    """The variables of `gcloud run jobs describe --format=json` (the v1 Knative shape gcloud
    prints, or the v2 API's)."""
    containers = _containers(described)
    if not containers:
        raise ConfigError(f"Cloud Run Job {job}: its description has no container to read")
    values: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for entry in containers[0].get("env") or []:
        name = str(entry.get("name", ""))
        if not name:
            continue
        source = entry.get("valueFrom") or entry.get("valueSource") or {}
        ref = source.get("secretKeyRef") if isinstance(source, dict) else None
        if isinstance(ref, dict):
            secret = str(ref.get("name") or ref.get("secret") or "?").rsplit("/", 1)[-1]
            secrets[name] = f"{secret}:{ref.get('key') or ref.get('version') or 'latest'}"
        else:
            values[name] = str(entry.get("value", ""))
    withheld = tuple(sorted(k for k, v in values.items() if is_rpc_url(k, v)))
    kept = {k: v for k, v in values.items() if k not in withheld}
    return JobEnv(kept, secrets, withheld, _region(described))


def _region(described: Any) -> str | None:
    labels = described.get("metadata", {}).get("labels") if isinstance(described, dict) else None
    region = labels.get("cloud.googleapis.com/location") if isinstance(labels, dict) else None
    return str(region) if region else None


def _containers(described: Any) -> list[dict[str, Any]]:
    if not isinstance(described, dict):
        return []
    v1 = described.get("spec", {}).get("template", {}).get("spec", {}).get("template", {})
    found = v1.get("spec", {}).get("containers")
    if not found:  # the v2 API: template.template.containers
        found = described.get("template", {}).get("template", {}).get("containers")
    return [c for c in found or [] if isinstance(c, dict)]


def describe_job(job: str, region: str, project: str | None, gcloud: str = "gcloud") -> Any:
    """`gcloud run jobs describe` of the deployed job (the caller's own credentials)."""
    command: Sequence[str] = [
        gcloud, "run", "jobs", "describe", job, f"--region={region}", "--format=json",
        *([f"--project={project}"] if project else []),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=GCLOUD_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise ConfigError(
            "relayer job-env needs the Google Cloud CLI (gcloud) on PATH, logged in with "
            "`gcloud auth login`"
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"`{shlex.join(command)}` did not answer in {GCLOUD_TIMEOUT_S:g} s"
        ) from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConfigError(f"`{shlex.join(command)}` failed: {detail}")
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise ConfigError(f"`{shlex.join(command)}` did not print JSON") from None
