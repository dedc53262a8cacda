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
from deploy.record_fields import large_block_fields
from deploy.tfeval import Refused, evaluate, needs_terraform
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
        "FIRESTORE_DATABASE=local.firestore_database",
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
    assert database["name"] == "${local.firestore_database}"
    ttl = tf.resource("google_firestore_field", "blocks_expire_at")
    assert (ttl["collection"], ttl["field"]) == ("blocks", "expire_at")
    assert ttl["ttl_config"] == [{}]
    assert ttl["index_config"] == [{}]
    assert ttl["database"] == "${local.firestore_database}"


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


def test_every_large_field_of_a_block_record_is_exempt(tf: Config) -> None:
    # From the writer's own code: a field added to block documents later is caught here.
    fields = {
        v["field"] for v in tf.locals["index_exemptions"].values() if v["collection"] == "blocks"
    }
    assert large_block_fields() <= fields


def test_the_rpc_url_value_never_enters_terraform(tf: Config) -> None:
    secret = tf.resource("google_secret_manager_secret", "rpc_url")
    assert secret["secret_id"] == "${local.rpc_secret_id}"
    assert not tf.of_kind("google_secret_manager_secret_version")
    assert not any(
        "rpc" in name.lower() and "url" in name.lower()
        for name in tf.variables
        if name not in ("rpc_url_secret_id", "rpc_url_secrets")  # secret ids, not values
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
    # The lines of the job (named var.name), and of the relay function when there is one
    # (test_relay_function_monitoring.py evaluates them).
    assert summary_filter.startswith("${local.run_lines} AND ")
    assert 'resource.labels.job_name=\\"${var.name}\\"' in tf.locals["run_resources"]
    assert tf.resource("google_cloud_run_v2_job", "relay")["name"] == "${var.name}"
    assert metric["label_extractors"] == {
        "outcome": "EXTRACT(jsonPayload.outcome)",
        "relayer_id": "EXTRACT(jsonPayload.relayer_id)",
    }
    assert tf.locals["runs_metric"] == (
        "logging.googleapis.com/user/${google_logging_metric.runs.name}"
    )
    failed = dynamic(tf.resource("google_monitoring_alert_policy", "runs_failed"), "conditions")
    assert failed["for_each"] == "${local.run_resources}"  # a condition per resource type
    threshold = one(one(failed["content"])["condition_threshold"])
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
    "google_service_account_iam_member",
    "google_artifact_registry_repository_iam_member",
    "google_bigquery_dataset_iam_member",
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
                        for k in (
                            "topic",
                            "subscription",
                            "bucket",
                            "secret_id",
                            "name",
                            "service_account_id",
                            "repository",
                            "dataset_id",
                        )
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
        # Each relayer's own RPC URL secret (rpc_url_secrets, for_each).
        (
            "google_secret_manager_secret_iam_member",
            "${google_secret_manager_secret.relayer_rpc_url[each.key].secret_id}",
            "roles/secretmanager.secretAccessor",
        ),
    }


def test_the_scheduler_may_only_run_the_job_and_the_relay_function(tf: Config) -> None:
    assert grants(tf, "scheduler") == {
        (
            "google_cloud_run_v2_job_iam_member",
            "${google_cloud_run_v2_job.relay.name}",
            "roles/run.invoker",
        ),
        # Only with relay_function (count).
        (
            "google_cloud_run_v2_service_iam_member",
            "${google_cloudfunctions2_function.relay[0].name}",
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
        (
            "google_secret_manager_secret_iam_member",
            "${google_secret_manager_secret.relayer_rpc_url[each.key].secret_id}",
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
    deployer = "${google_service_account.deployer.member}"
    for name, body in tf.of_kind("google_project_iam_member").items():
        if body["member"] == deployer:
            # Cloud Functions' upload URLs and operations exist only at the project level;
            # a build writes its own logs.
            assert body["role"] in ("roles/cloudfunctions.developer", "roles/logging.logWriter")
            continue
        assert body["role"] in ("roles/datastore.user", "roles/datastore.viewer"), name
        condition = one(body["condition"])
        assert condition["expression"] == 'resource.name == "${local.firestore_name}"'
    assert tf.locals["firestore_name"] == (
        "projects/${var.project_id}/databases/${local.firestore_database}"
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
    assert compact["window_up"] == "${max(1,ceil(var.run_seconds/60))}"
    assert compact["window_minutes"].endswith("?floor(var.run_seconds/60):local.window_up}")
    assert compact["follow_needs"] == "${var.run_seconds+var.poll_interval_seconds+60}"
    assert "max(300,local.follow_needs)" in compact["task_timeout"]
    assert "RELAYER_RUN_SECONDS=tostring(var.run_seconds)" in compact["follow_env"]
    assert "RELAYER_LEASE_SECONDS=tostring(local.lease_seconds)" in compact["follow_env"]
    assert "max(300,3*var.poll_interval_seconds)" in compact["lease_seconds"]
    assert "local.follow_env,var.extra_env" in compact["runtime_env"]
    assert "local.summary_period" in compact["stale_after"]
    assert "local.handover_period" in compact["summary_period"]


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


# --- The deployment issue: secrets, the build's rights, pins, state, relay function, alerts ----


def dynamics(block: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [entry[name] for entry in block.get("dynamic", []) if name in entry]


def job_container(tf: Config) -> dict[str, Any]:
    job = tf.resource("google_cloud_run_v2_job", "relay")
    return one(one(one(job["template"])["template"])["containers"])


def test_each_relayer_can_have_its_own_rpc_url_secret_mounted_in_job_and_functions(
    tf: Config,
) -> None:
    assert tf.variables["rpc_url_secrets"]["default"] == {}
    secret = tf.resource("google_secret_manager_secret", "relayer_rpc_url")
    assert secret["for_each"] == "${var.rpc_url_secrets}"
    assert secret["secret_id"] == "${each.value}"
    mounted = [d for d in dynamics(job_container(tf), "env") if "relayer_rpc_url" in d["for_each"]]
    assert len(mounted) == 1
    assert mounted[0]["for_each"] == "${google_secret_manager_secret.relayer_rpc_url}"
    content = one(mounted[0]["content"])
    assert content["name"] == "${env.key}"
    ref = one(one(content["value_source"])["secret_key_ref"])
    assert ref == {"secret": "${env.value.secret_id}", "version": "latest"}
    for function in ("status", "relay"):
        service = one(tf.resource("google_cloudfunctions2_function", function)["service_config"])
        extra = one(dynamics(service, "secret_environment_variables"))
        assert extra["for_each"] == "${google_secret_manager_secret.relayer_rpc_url}"
        body = one(extra["content"])
        assert body["key"] == "${secret_environment_variables.key}"
        assert body["secret"] == "${secret_environment_variables.value.secret_id}"
    for name in ("job_reads_relayer_rpc_url", "status_reads_relayer_rpc_url"):
        grant = tf.resource("google_secret_manager_secret_iam_member", name)
        assert grant["for_each"] == "${var.rpc_url_secrets}"


@needs_terraform
@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"extra_env": {"VAULT_RPC_URL": "https://x"}}, "never goes in a plain variable"),
        ({"rpc_url_secrets": {"RPC_URL": "other"}}, "rpc_url_secrets: variable names"),
        ({"rpc_url_secrets": {"vault_rpc_url": "s"}}, "rpc_url_secrets: variable names"),
        ({"image": "europe-west1-docker.pkg.dev/p/relayer/relayer:latest"}, "by digest"),
        ({"firestore_database": "ab"}, "firestore_database: 4-63"),
    ],
)
def test_plain_rpc_urls_mutable_images_and_bad_database_ids_are_refused(
    tmp_path: Path, variables: dict[str, Any], message: str
) -> None:
    with pytest.raises(Refused) as refused:
        evaluate(
            tmp_path,
            {
                "env": "local.runtime_env",
                "secrets": "local.secret_env",
                "image": "local.image",
                "db": "local.firestore_database",
            },
            **variables,
        )
    assert message in " ".join(str(refused.value).split())


@needs_terraform
def test_the_secrets_mounted_are_rpc_url_and_each_relayers_own(tmp_path: Path) -> None:
    got = evaluate(
        tmp_path,
        {"secrets": "local.secret_env", "env": "local.runtime_env"},
        rpc_url_secrets={"VAULT_RPC_URL": "relayer-vault-rpc-url"},
    )
    assert got["secrets"] == {
        "RPC_URL": "relayer-rpc-url",
        "VAULT_RPC_URL": "relayer-vault-rpc-url",
    }
    assert not {k for k in got["env"] if "RPC_URL" in k}


def test_the_deployer_may_push_the_image_and_update_the_job_and_functions_only(
    tf: Config,
) -> None:
    assert grants(tf, "deployer") == {
        (
            "google_artifact_registry_repository_iam_member",
            "${google_artifact_registry_repository.images.name}",
            "roles/artifactregistry.writer",
        ),
        (
            "google_cloud_run_v2_job_iam_member",
            "${google_cloud_run_v2_job.relay.name}",
            "roles/run.developer",
        ),
        ("google_project_iam_member", "project", "roles/cloudfunctions.developer"),
        ("google_project_iam_member", "project", "roles/logging.logWriter"),
        (
            "google_service_account_iam_member",
            "${google_service_account.job.name}",
            "roles/iam.serviceAccountUser",
        ),
        (
            "google_service_account_iam_member",
            "${google_service_account.status.name}",
            "roles/iam.serviceAccountUser",
        ),
    }
    roles = {role for _, _, role in grants(tf, "deployer")}
    for admin in ("Admin", "admin", "owner", "editor", "secretAccessor"):
        assert not [r for r in roles if admin in r], roles


def test_the_job_runs_an_image_by_digest_never_a_mutable_tag(tf: Config) -> None:
    assert tf.variables["image"]["default"] is None
    assert "@sha256:" in one(tf.variables["image"]["validation"])["condition"]
    assert tf.locals["image"] == "${var.image}"
    text = "\n".join(strings([tf.locals, tf.outputs, tf.resources]))
    assert ":latest" not in text
    checks = one(tf.resource("google_cloud_run_v2_job", "relay")["lifecycle"])["precondition"]
    assert any(c["condition"] == "${var.image != null}" for c in checks)
    assert "image_summary.digest" in tf.outputs["image_build_command"]["value"]


def test_providers_are_pinned_exactly_and_the_lock_file_is_committed(tf: Config) -> None:
    required = one(one(tf.terraform)["required_providers"])
    for name in ("google", "archive"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", required[name]["version"]), required[name]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "infra/.terraform.lock.hcl"], cwd=ROOT, timeout=30
    )
    assert ignored.returncode == 1, "git ignores infra/.terraform.lock.hcl"
    readme = (INFRA / "README.md").read_text()
    assert ".terraform.lock.hcl" in readme and "commit" in readme


def test_the_region_is_given_not_defaulted(tf: Config) -> None:
    assert "default" not in tf.variables["region"]


@needs_terraform
def test_state_defaults_to_a_firestore_database_of_its_own(tmp_path: Path, tf: Config) -> None:
    assert tf.variables["firestore_database"]["default"] is None
    got = evaluate(
        tmp_path,
        {
            "db": "local.firestore_database",
            "name": "local.firestore_name",
            "env": "local.runtime_env",
        },
    )
    assert got["db"] == "relayer-state"
    assert got["name"] == "projects/acme-relay-prod/databases/relayer-state"
    assert got["env"]["FIRESTORE_DATABASE"] == "relayer-state"
    named = evaluate(tmp_path, {"db": "local.firestore_database"}, firestore_database="(default)")
    assert named["db"] == "(default)"
    for name in ("blocks_expire_at", "unindexed"):
        assert tf.resource("google_firestore_field", name)["database"] == (
            "${local.firestore_database}"
        )


def test_the_relay_function_is_optional_and_scheduled_with_an_oidc_token(tf: Config) -> None:
    assert tf.variables["relay_function"]["default"] is False
    function = tf.resource("google_cloudfunctions2_function", "relay")
    assert function["count"] == "${var.relay_function ? 1 : 0}"
    build = one(function["build_config"])
    assert (build["entry_point"], build["runtime"]) == ("relay", "python311")
    service = one(function["service_config"])
    assert service["service_account_email"] == "${google_service_account.job.email}"
    # The job's settings, and the request timeout the code cannot see for itself.
    assert service["environment_variables"] == (
        "${merge(local.runtime_env, {RELAYER_REQUEST_TIMEOUT = tostring(local.task_timeout)})}"
    )
    assert service["timeout_seconds"] == "${local.task_timeout}"
    assert one(service["secret_environment_variables"])["key"] == "RPC_URL"
    schedule = tf.resource("google_cloud_scheduler_job", "relay_function")
    assert schedule["count"] == "${var.relay_function ? 1 : 0}"
    assert schedule["schedule"] == "${local.schedule}"
    target = one(schedule["http_target"])
    uri = "${google_cloudfunctions2_function.relay[0].service_config[0].uri}"
    assert (target["http_method"], target["uri"]) == ("POST", uri)
    token = one(target["oidc_token"])
    assert token == {
        "service_account_email": "${google_service_account.scheduler.email}",
        "audience": uri,
    }
    assert "oauth_token" not in target
    # One trigger: with the function, the job's schedule is paused.
    assert tf.resource("google_cloud_scheduler_job", "relay")["paused"] == "${var.relay_function}"
    invoker = tf.resource("google_cloud_run_v2_service_iam_member", "scheduler_invokes_relay")
    assert invoker["member"] == "${google_service_account.scheduler.member}"


@needs_terraform
@pytest.mark.parametrize(
    ("variables", "lease", "period", "window"),
    [
        ({}, 300, 60, 0),
        ({"poll_interval_seconds": 120}, 300, 120, 0),
        ({"extra_env": {"RELAYER_LEASE_SECONDS": "900"}}, 900, 60, 0),
        ({"poll_interval_seconds": 5, "run_seconds": 60}, 300, 60, 60),
        ({"poll_interval_seconds": 120, "run_seconds": 600}, 360, 600, 600),
    ],
)
def test_the_stale_alert_outlasts_a_crashed_runs_lease(
    tmp_path: Path, variables: dict[str, Any], lease: int, period: int, window: int
) -> None:
    got = evaluate(
        tmp_path,
        {
            "stale": "local.stale_after",
            "lease": "local.lease_seconds",
            "failed": "local.alert_window",
        },
        **variables,
    )
    assert got["lease"] == lease
    # From the last success: the crashed run starts a period later, holds its lease, the first
    # run after it starts within a period and logs its summary after its window.
    assert got["stale"] > lease + 2 * period + window
    assert got["stale"] >= 3 * period and got["stale"] % 60 == 0
    assert got["failed"] >= max(600, 3 * period)


def test_alerts_warn_when_they_notify_no_one() -> None:
    with (INFRA / "monitoring.tf").open() as f:
        parsed = hcl2.load(f, serialization_options=_OPTIONS)
    checks = {name: body for entry in parsed.get("check", []) for name, body in entry.items()}
    condition = one(checks["alerts_notify_someone"]["assert"])
    assert condition["condition"] == "${length(var.notification_channels) > 0}"
    assert "monitoring channels create" in condition["error_message"]
