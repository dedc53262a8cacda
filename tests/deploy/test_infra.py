"""The Terraform in infra/, parsed with python-hcl2 (no cloud, no provider download).

Checks what the deployment must be (CONTRACT §1, §2, §4 and the deployment issue): the job and
its schedule, the topics and the ordered subscription, Firestore's TTL and index exemptions, the
secret, the status function, the alerts, least-privilege IAM, and that every reference in the
configuration points at something declared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False, preserve_heredocs=False
)
_REFERENCE = re.compile(
    r"(?<![\w.])(data\.[a-z0-9_]+\.[a-z0-9_-]+|var\.[a-z0-9_]+|local\.[a-z0-9_]+"
    r"|google_[a-z0-9_]+\.[a-z0-9_-]+)"
)


@dataclass
class Config:
    """Every block of infra/*.tf, by kind."""

    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    providers: list[dict[str, Any]] = field(default_factory=list)

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        assert (kind, name) in self.resources, f"infra/ declares no {kind}.{name}"
        return self.resources[(kind, name)]

    def of_kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for (k, name), body in self.resources.items() if k == kind}


def _load() -> Config:
    config = Config()
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as f:
            parsed = hcl2.load(f, serialization_options=_OPTIONS)
        for entry in parsed.get("resource", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    assert (kind, name) not in config.resources, f"{kind}.{name} declared twice"
                    config.resources[(kind, name)] = body
        for entry in parsed.get("data", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    config.data[(kind, name)] = body
        for entry in parsed.get("variable", []):
            config.variables.update(entry)
        for entry in parsed.get("output", []):
            config.outputs.update(entry)
        for entry in parsed.get("locals", []):
            for key, value in entry.items():
                assert key not in config.locals, f"local.{key} declared twice"
                config.locals[key] = value
        config.terraform += parsed.get("terraform", [])
        config.providers += parsed.get("provider", [])
    return config


@pytest.fixture(scope="module")
def tf() -> Config:
    return _load()


def one(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The single nested block of a repeated-block list."""
    assert len(blocks) == 1, blocks
    return blocks[0]


def strings(value: Any) -> Iterator[str]:
    """Every string inside a parsed value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def dynamic(block: dict[str, Any], name: str) -> dict[str, Any]:
    for entry in block.get("dynamic", []):
        if name in entry:
            return entry[name]  # type: ignore[no-any-return]
    raise AssertionError(f"no dynamic {name!r} block")


def config_variable_names() -> set[str]:
    """The environment variables function/config.py reads."""
    source = (ROOT / "function" / "config.py").read_text()
    return set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))


# --- Parsing and references ---------------------------------------------------------------------


def test_every_file_parses_and_declares_the_google_provider(tf: Config) -> None:
    assert {p.name for p in INFRA.glob("*.tf")} >= {"variables.tf", "outputs.tf", "job.tf"}
    required = one(one(tf.terraform)["required_providers"])
    assert required["google"]["source"] == "hashicorp/google"
    assert "google" in {name for p in tf.providers for name in p}


def test_every_reference_points_at_a_declaration(tf: Config) -> None:
    blocks: list[Any] = [
        *tf.resources.values(),
        *tf.data.values(),
        *tf.outputs.values(),
        tf.locals,
        tf.providers,
    ]
    missing = set()
    for text in (s for block in blocks for s in strings(block)):
        for ref in _REFERENCE.findall(text):
            head, _, rest = ref.partition(".")
            name = rest.split(".")[0]
            if head == "var":
                found = name in tf.variables
            elif head == "local":
                found = name in tf.locals
            elif head == "data":
                kind, _, data_name = rest.partition(".")
                found = (kind, data_name.split(".")[0]) in tf.data
            else:
                found = (head, name) in tf.resources
            if not found:
                missing.add(ref)
    assert not missing, f"references to nothing declared: {sorted(missing)}"


def test_every_variable_is_used_and_described(tf: Config) -> None:
    text = "\n".join(
        s
        for block in [tf.resources, tf.data, tf.outputs, tf.locals, tf.providers]
        for s in strings(block)
    )
    for name, body in tf.variables.items():
        assert body.get("description"), f"variable {name} has no description"
        assert f"var.{name}" in text, f"variable {name} is never used"


def test_example_tfvars_sets_every_required_variable_and_nothing_undeclared(tf: Config) -> None:
    with (INFRA / "example.tfvars").open() as f:
        example = hcl2.load(f, serialization_options=_OPTIONS)
    required = {name for name, body in tf.variables.items() if "default" not in body}
    assert required <= set(example), f"example.tfvars misses {required - set(example)}"
    assert set(example) <= set(tf.variables), set(example) - set(tf.variables)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_is_clean() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- The job and its schedule -------------------------------------------------------------------


def test_the_job_runs_python_main_py_with_tasks_timeout_and_retries(tf: Config) -> None:
    job = tf.resource("google_cloud_run_v2_job", "relay")
    execution = one(job["template"])
    assert execution["task_count"] == "${var.task_count}"
    assert execution["parallelism"] == "${var.parallelism}"
    task = one(execution["template"])
    assert task["timeout"] == "${local.task_timeout}s"
    assert task["max_retries"] == "${var.max_retries}"
    assert task["service_account"] == "${google_service_account.job.email}"
    container = one(task["containers"])
    assert container["command"] == ["python"]
    assert container["args"] == ["main.py"]
    assert container["image"] == "${local.image}"


def test_the_job_gets_the_relayer_settings_and_rpc_url_from_the_secret(tf: Config) -> None:
    container = one(
        one(one(tf.resource("google_cloud_run_v2_job", "relay")["template"])["template"])[
            "containers"
        ]
    )
    env = dynamic(container, "env")
    assert env["for_each"] == "${local.runtime_env}"
    wanted = {
        "CHAIN_ID",
        "CONTRACT_ADDRESS",
        "ABI_URI",
        "PUBSUB_PROJECT_ID",
        "PUBSUB_TOPIC",
        "START_BLOCK",
        "RELAYER_BATCH_SIZE",
        "RELAYER_CHECKPOINT_INTERVAL",
        "RELAYER_POLL_INTERVAL",
        "RELAYER_CONFIRMATIONS",
        "RELAYER_DEADLETTER_TOPIC",
        "FIRESTORE_DATABASE",
        "LOG_FORMAT",
    }
    runtime_env = tf.locals["runtime_env"]
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", runtime_env))
    assert wanted <= names, wanted - names
    assert "RPC_URL" not in names
    compact = re.sub(r"\s+", "", runtime_env)
    for pair in (
        'LOG_FORMAT="json"',
        "PUBSUB_PROJECT_ID=var.project_id",
        "PUBSUB_TOPIC=local.topic",
        "ABI_URI=local.abi_uri",
        "RELAYER_DEADLETTER_TOPIC=local.deadletter_topic",
        "FIRESTORE_DATABASE=var.firestore_database",
        "RELAYER_POLL_INTERVAL=tostring(var.poll_interval_seconds)",
        "var.relayer_config==null?{}:{RELAYER_CONFIG=var.relayer_config}",
        "var.extra_env",
    ):
        assert pair in compact, pair
    secret_env = one(container["env"])
    assert secret_env["name"] == "RPC_URL"
    ref = one(one(secret_env["value_source"])["secret_key_ref"])
    assert ref == {
        "secret": "${google_secret_manager_secret.rpc_url.secret_id}",
        "version": "latest",
    }


def test_every_variable_the_job_gets_is_one_the_relayer_reads(tf: Config) -> None:
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=", tf.locals["runtime_env"]))
    # RELAYER_CONFIG is part of the contract (§1) even where config.py does not name it yet.
    unknown = names - config_variable_names() - {"RELAYER_CONFIG"}
    assert not unknown, f"the job is given variables the relayer never reads: {unknown}"


def test_the_scheduler_runs_the_job_through_its_run_endpoint_with_its_own_token(
    tf: Config,
) -> None:
    schedule = tf.resource("google_cloud_scheduler_job", "relay")
    assert schedule["schedule"] == "${local.schedule}"
    target = one(schedule["http_target"])
    assert target["http_method"] == "POST"
    assert target["uri"] == (
        "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}"
        "/jobs/${google_cloud_run_v2_job.relay.name}:run"
    )
    token = one(target["oauth_token"])
    assert token["service_account_email"] == "${google_service_account.scheduler.email}"
    assert "oidc_token" not in target
    assert "var.poll_interval_seconds" in tf.locals["schedule"]


# --- Pub/Sub, Firestore, secret, buckets ---------------------------------------------------------


def test_topics_and_an_ordered_example_subscription_with_dead_lettering(tf: Config) -> None:
    assert tf.resource("google_pubsub_topic", "events")["name"] == "${local.topic}"
    assert tf.resource("google_pubsub_topic", "deadletter")["name"] == "${local.deadletter_topic}"
    example = tf.resource("google_pubsub_subscription", "example")
    assert example["topic"] == "${google_pubsub_topic.events.id}"
    assert example["enable_message_ordering"] is True
    policy = one(example["dead_letter_policy"])
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.deadletter.id}"
    # Something must keep what reaches the dead-letter topic, or it is dropped.
    keeper = tf.resource("google_pubsub_subscription", "deadletter")
    assert keeper["topic"] == "${google_pubsub_topic.deadletter.id}"


def test_dead_lettering_is_allowed_for_the_pubsub_service_agent(tf: Config) -> None:
    assert "@gcp-sa-pubsub.iam.gserviceaccount.com" in tf.locals["pubsub_agent"]
    publish = tf.resource("google_pubsub_topic_iam_member", "pubsub_agent_deadletters")
    assert (publish["topic"], publish["role"], publish["member"]) == (
        "${google_pubsub_topic.deadletter.name}",
        "roles/pubsub.publisher",
        "${local.pubsub_agent}",
    )
    ack = tf.resource("google_pubsub_subscription_iam_member", "pubsub_agent_acks")
    assert ack["role"] == "roles/pubsub.subscriber"
    assert ack["subscription"] == "${google_pubsub_subscription.example[0].name}"


def test_firestore_database_and_ttl_on_expire_at_of_the_blocks_group(tf: Config) -> None:
    database = tf.resource("google_firestore_database", "this")
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["name"] == "${var.firestore_database}"
    ttl = tf.resource("google_firestore_field", "blocks_expire_at")
    assert (ttl["collection"], ttl["field"]) == ("blocks", "expire_at")
    assert ttl["ttl_config"] == [{}]
    assert ttl["index_config"] == [{}]
    assert ttl["database"] == "${var.firestore_database}"


def test_index_exemptions_on_fields_never_queried(tf: Config) -> None:
    exempt = tf.resource("google_firestore_field", "unindexed")
    assert exempt["for_each"] == "${local.index_exemptions}"
    assert exempt["index_config"] == [{}]
    assert "ttl_config" not in exempt
    fields = {(v["collection"], v["field"]) for v in tf.locals["index_exemptions"].values()}
    assert {
        ("blocks", "events"),
        ("relayers", "recent_blocks"),
        ("relayers", "last_run"),
    } <= fields


def test_the_rpc_url_value_never_enters_terraform(tf: Config) -> None:
    secret = tf.resource("google_secret_manager_secret", "rpc_url")
    assert secret["secret_id"] == "${local.rpc_secret_id}"
    assert not tf.of_kind("google_secret_manager_secret_version")
    assert not any(
        "rpc" in name.lower() and "url" in name.lower()
        for name in tf.variables
        if name != "rpc_url_secret_id"
    )


def test_the_abi_bucket_is_private_and_abi_uri_points_into_it(tf: Config) -> None:
    bucket = tf.resource("google_storage_bucket", "abi")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert tf.locals["abi_uri"] == "gs://${local.abi_bucket}/${var.abi_object}"
    upload = tf.resource("google_storage_bucket_object", "abi")
    assert upload["source"] == "${var.abi_file}"


# --- Status function and alerts -----------------------------------------------------------------


def test_the_status_function_is_gen2_http_entry_point_status_and_reads_the_secret(
    tf: Config,
) -> None:
    function = tf.resource("google_cloudfunctions2_function", "status")
    build = one(function["build_config"])
    assert build["entry_point"] == "status"
    assert build["runtime"] == "python311"
    assert "event_trigger" not in function  # HTTP
    service = one(function["service_config"])
    assert service["service_account_email"] == "${google_service_account.status.email}"
    assert service["environment_variables"] == "${local.runtime_env}"
    secret = one(service["secret_environment_variables"])
    assert secret["key"] == "RPC_URL"
    assert secret["secret"] == "${google_secret_manager_secret.rpc_url.secret_id}"


def test_the_status_function_source_is_the_runtime_code_only(tf: Config) -> None:
    sources = tf.locals["status_sources"]
    assert '"main.py"' in sources or "main.py" in sources
    assert "requirements.txt" in sources
    assert "function/*.py" in sources
    archive = tf.data[("archive_file", "status")]
    assert dynamic(archive, "source")["for_each"] == "${local.status_sources}"


def test_the_run_summary_metric_and_the_alerts_on_failures_and_staleness(tf: Config) -> None:
    metric = tf.resource("google_logging_metric", "runs")
    assert metric["filter"] == "${local.run_summary_filter}"
    summary_filter = tf.locals["run_summary_filter"]
    assert "jsonPayload.run_summary=true" in summary_filter
    assert 'resource.type=\\"cloud_run_job\\"' in summary_filter
    assert "google_cloud_run_v2_job.relay.name" in summary_filter
    assert metric["label_extractors"] == {
        "outcome": "EXTRACT(jsonPayload.outcome)",
        "relayer_id": "EXTRACT(jsonPayload.relayer_id)",
    }
    assert tf.locals["runs_metric"] == (
        "logging.googleapis.com/user/${google_logging_metric.runs.name}"
    )
    failed = one(tf.resource("google_monitoring_alert_policy", "runs_failed")["conditions"])
    threshold = one(failed["condition_threshold"])
    assert "${local.runs_metric}" in threshold["filter"]
    assert 'metric.label.outcome = "failed"' in threshold["filter"]
    assert one(threshold["aggregations"])["group_by_fields"] == ["metric.label.relayer_id"]
    stale = one(tf.resource("google_monitoring_alert_policy", "stale")["conditions"])
    absent = one(stale["condition_absent"])
    assert "${local.runs_metric}" in absent["filter"]
    assert "one_of" in absent["filter"] and "ok" in absent["filter"]
    assert absent["duration"] == "${local.stale_after}s"
    for policy in tf.of_kind("google_monitoring_alert_policy").values():
        assert policy["notification_channels"] == "${var.notification_channels}"


def test_every_api_used_is_enabled(tf: Config) -> None:
    apis = set(tf.locals["apis"])
    assert {
        "run.googleapis.com",
        "cloudscheduler.googleapis.com",
        "pubsub.googleapis.com",
        "firestore.googleapis.com",
        "secretmanager.googleapis.com",
        "cloudfunctions.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "logging.googleapis.com",
        "monitoring.googleapis.com",
        "storage.googleapis.com",
    } <= apis
    enable = tf.resource("google_project_service", "apis")
    assert enable["for_each"] == "${toset(local.apis)}"
    assert enable["disable_on_destroy"] is False


def test_outputs_tell_the_operator_what_comes_next(tf: Config) -> None:
    assert {
        "job_name",
        "run_job_now_command",
        "image_build_command",
        "topic",
        "deadletter_topic",
        "example_subscription",
        "abi_uri",
        "rpc_url_add_version_command",
        "status_url",
        "status_curl_command",
        "service_accounts",
    } <= set(tf.outputs)
    for name, body in tf.outputs.items():
        assert body.get("description"), f"output {name} has no description"
    assert "--data-file=" in tf.outputs["rpc_url_add_version_command"]["value"]


# --- IAM: least privilege ------------------------------------------------------------------------

_IAM_KINDS = (
    "google_project_iam_member",
    "google_pubsub_topic_iam_member",
    "google_pubsub_subscription_iam_member",
    "google_storage_bucket_iam_member",
    "google_secret_manager_secret_iam_member",
    "google_cloud_run_v2_job_iam_member",
    "google_cloud_run_v2_service_iam_member",
)


def grants(tf: Config, account: str) -> set[tuple[str, str, str]]:
    """(binding kind, target, role) of every binding whose member is the service account."""
    member = f"${{google_service_account.{account}.member}}"
    out = set()
    for kind in _IAM_KINDS:
        for body in tf.of_kind(kind).values():
            if body["member"] == member:
                target = next(
                    (
                        body[k]
                        for k in ("topic", "subscription", "bucket", "secret_id", "name")
                        if k in body
                    ),
                    "project",
                )
                out.add((kind, target, body["role"]))
    return out


def test_the_job_may_publish_use_its_firestore_and_read_its_abi_and_secret_only(
    tf: Config,
) -> None:
    assert grants(tf, "job") == {
        (
            "google_pubsub_topic_iam_member",
            "${google_pubsub_topic.events.name}",
            "roles/pubsub.publisher",
        ),
        (
            "google_pubsub_topic_iam_member",
            "${google_pubsub_topic.events.name}",
            "roles/pubsub.viewer",
        ),
        (
            "google_pubsub_topic_iam_member",
            "${google_pubsub_topic.deadletter.name}",
            "roles/pubsub.publisher",
        ),
        (
            "google_pubsub_topic_iam_member",
            "${google_pubsub_topic.deadletter.name}",
            "roles/pubsub.viewer",
        ),
        ("google_project_iam_member", "project", "roles/datastore.user"),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.abi.name}",
            "roles/storage.objectViewer",
        ),
        (
            "google_secret_manager_secret_iam_member",
            "${google_secret_manager_secret.rpc_url.secret_id}",
            "roles/secretmanager.secretAccessor",
        ),
    }


def test_the_scheduler_may_only_run_the_job(tf: Config) -> None:
    assert grants(tf, "scheduler") == {
        (
            "google_cloud_run_v2_job_iam_member",
            "${google_cloud_run_v2_job.relay.name}",
            "roles/run.invoker",
        ),
    }


def test_the_status_function_only_reads(tf: Config) -> None:
    assert grants(tf, "status") == {
        ("google_project_iam_member", "project", "roles/datastore.viewer"),
        (
            "google_secret_manager_secret_iam_member",
            "${google_secret_manager_secret.rpc_url.secret_id}",
            "roles/secretmanager.secretAccessor",
        ),
        # Only with RELAYER_CONFIG (count), which lists the relayers.
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.abi.name}",
            "roles/storage.objectViewer",
        ),
    }
    assert tf.resource("google_storage_bucket_iam_member", "status_reads_config")["count"] == (
        "${var.relayer_config == null ? 0 : 1}"
    )


def test_project_level_grants_are_limited_to_the_relayer_database(tf: Config) -> None:
    for name, body in tf.of_kind("google_project_iam_member").items():
        assert body["role"] in ("roles/datastore.user", "roles/datastore.viewer"), name
        condition = one(body["condition"])
        assert condition["expression"] == 'resource.name == "${local.firestore_name}"'
    assert tf.locals["firestore_name"] == (
        "projects/${var.project_id}/databases/${var.firestore_database}"
    )


def test_nothing_is_public_and_no_basic_role_is_granted(tf: Config) -> None:
    text = "\n".join(strings(tf.resources))
    assert "allUsers" not in text
    assert "allAuthenticatedUsers" not in text
    for kind in _IAM_KINDS:
        for body in tf.of_kind(kind).values():
            assert body["role"] not in ("roles/owner", "roles/editor", "roles/viewer")
    invokers = tf.resource("google_cloud_run_v2_service_iam_member", "status_invokers")
    assert invokers["for_each"] == "${toset(var.status_invokers)}"
    assert invokers["name"] == "${google_cloudfunctions2_function.status.name}"


# --- Follow mode (run_seconds > 0) ---------------------------------------------------------------


def test_follow_mode_derives_the_schedule_timeout_lease_and_passes_its_window(tf: Config) -> None:
    assert tf.variables["run_seconds"]["default"] == 0
    assert tf.variables["task_timeout_seconds"]["default"] is None
    compact = {k: re.sub(r"\s+", "", str(v)) for k, v in tf.locals.items()}
    assert 'local.window_minutes==1?"*****"' in compact["schedule"]
    assert compact["window_minutes"] == "${max(1,ceil(var.run_seconds/60))}"
    assert compact["follow_needs"] == "${var.run_seconds+var.poll_interval_seconds+60}"
    assert "max(300,local.follow_needs)" in compact["task_timeout"]
    assert "RELAYER_RUN_SECONDS=tostring(var.run_seconds)" in compact["follow_env"]
    assert "max(300,3*var.poll_interval_seconds)" in compact["follow_env"]
    assert "local.follow_env,var.extra_env" in compact["runtime_env"]
    assert "local.handover_period" in compact["stale_after"]


def test_inconsistent_follow_settings_are_refused_with_clear_messages(tf: Config) -> None:
    job = tf.resource("google_cloud_run_v2_job", "relay")
    schedule = tf.resource("google_cloud_scheduler_job", "relay")
    checks = [
        *one(job["lifecycle"])["precondition"],
        *one(schedule["lifecycle"])["precondition"],
    ]
    by_message = {c["error_message"]: re.sub(r"\s+", "", c["condition"]) for c in checks}
    timeout = next(m for m in by_message if m.startswith("task_timeout_seconds is shorter"))
    assert "run_seconds + poll_interval_seconds + 60 s" in timeout
    assert by_message[timeout] == "${!local.follow||local.task_timeout>=local.follow_needs}"
    gaps = next(m for m in by_message if "coverage has gaps" in m)
    assert "run_seconds" in gaps and "poll_interval_seconds" in gaps and "schedule" in gaps
    assert "local.handover_period<=var.run_seconds+var.poll_interval_seconds" in by_message[gaps]
    lease = next(m for m in by_message if m.startswith("RELAYER_LEASE_SECONDS"))
    assert "2*var.poll_interval_seconds" in by_message[lease]
    fast = next(m for m in by_message if m.startswith("poll_interval_seconds below 60"))
    assert by_message[fast] == "${local.follow||var.poll_interval_seconds>=60}"
