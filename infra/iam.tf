# Four identities, each with what it needs and nothing more:
# - the job (and the relay function, which runs the same code) publishes to its two topics,
#   reads and writes its Firestore database, reads the ABI bucket and the RPC URL secrets;
# - the scheduler may only run the job (and call the relay function);
# - the status function only reads: Firestore, and the secrets (it asks the nodes for the head);
# - the deployer (Cloud Build's service account) may only ship new code: push an image, update
#   the job and the functions. Everything else (APIs, IAM, topics, secrets, buckets, alerts) is
#   the one-time set-up, applied by a person.
# Bindings are on the resources themselves wherever IAM allows it.

resource "google_service_account" "job" {
  project      = var.project_id
  account_id   = "${var.name}-job"
  display_name = "EVM relayer job"
  description  = "Runs the relay job: publishes events, keeps the checkpoint in Firestore."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name}-scheduler"
  display_name = "EVM relayer scheduler"
  description  = "Cloud Scheduler's identity: may only run the relay job."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "status" {
  project      = var.project_id
  account_id   = "${var.name}-status"
  display_name = "EVM relayer status"
  description  = "The status function's identity: reads the relayer state and the RPC URL."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.name}-deployer"
  display_name = "EVM relayer deployer"
  description  = "Cloud Build's identity: pushes the image, updates the job and the functions."

  depends_on = [google_project_service.apis]
}

# --- The job -----------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "job_publishes_events" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.job.member
}

# The job checks at start that its topics exist (a missing topic is a deployment error).
resource "google_pubsub_topic_iam_member" "job_views_events" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.viewer"
  member  = google_service_account.job.member
}

resource "google_pubsub_topic_iam_member" "job_publishes_deadletter" {
  project = var.project_id
  topic   = google_pubsub_topic.deadletter.name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.job.member
}

resource "google_pubsub_topic_iam_member" "job_views_deadletter" {
  project = var.project_id
  topic   = google_pubsub_topic.deadletter.name
  role    = "roles/pubsub.viewer"
  member  = google_service_account.job.member
}

# Firestore has no per-collection IAM: the finest grant is the database, through an IAM
# condition on its name. The job reads and writes only its own `relayers` documents.
resource "google_project_iam_member" "job_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.job.member

  condition {
    title       = "${var.name}-firestore-database"
    description = "Only the relayer's Firestore database."
    expression  = "resource.name == \"${local.firestore_name}\""
  }
}

# A dedicated bucket: with uniform bucket-level access the bucket is the unit of access, and it
# holds only what the relayer reads (the ABI, a RELAYER_CONFIG file).
resource "google_storage_bucket_iam_member" "job_reads_abi" {
  bucket = google_storage_bucket.abi.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.job.member
}

resource "google_secret_manager_secret_iam_member" "job_reads_rpc_url" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.rpc_url.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.job.member
}

resource "google_secret_manager_secret_iam_member" "job_reads_relayer_rpc_url" {
  for_each = var.rpc_url_secrets

  project   = var.project_id
  secret_id = google_secret_manager_secret.relayer_rpc_url[each.key].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.job.member
}

# --- The scheduler -----------------------------------------------------------------------------

# roles/run.invoker on a job allows running it (run.jobs.run), on this job only.
resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_job" {
  project  = var.project_id
  location = google_cloud_run_v2_job.relay.location
  name     = google_cloud_run_v2_job.relay.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# The relay function's Cloud Run service (same name as the function): invoked with an OIDC
# token of the scheduler's account.
resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_relay" {
  count = var.relay_function ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.relay[0].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# --- The status function -----------------------------------------------------------------------

resource "google_project_iam_member" "status_firestore" {
  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = google_service_account.status.member

  condition {
    title       = "${var.name}-firestore-database-read"
    description = "Only the relayer's Firestore database, read only."
    expression  = "resource.name == \"${local.firestore_name}\""
  }
}

resource "google_secret_manager_secret_iam_member" "status_reads_rpc_url" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.rpc_url.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.status.member
}

resource "google_secret_manager_secret_iam_member" "status_reads_relayer_rpc_url" {
  for_each = var.rpc_url_secrets

  project   = var.project_id
  secret_id = google_secret_manager_secret.relayer_rpc_url[each.key].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.status.member
}

# With RELAYER_CONFIG the status function reads the relayer list too.
resource "google_storage_bucket_iam_member" "status_reads_config" {
  count = var.relayer_config == null ? 0 : 1

  bucket = google_storage_bucket.abi.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.status.member
}

# Who may call the status function (never allUsers): run.invoker on its Cloud Run service.
resource "google_cloud_run_v2_service_iam_member" "status_invokers" {
  for_each = toset(var.status_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.status.name
  role     = "roles/run.invoker"
  member   = each.value
}

# --- The deployer (Cloud Build) ------------------------------------------------------------------
# What `deploy.sh --code-only` does on every push: push the image, resolve its digest, update the
# job to it and redeploy the functions from the same commit. Not: IAM, secrets (it cannot read
# an RPC URL itself), topics, buckets, APIs, alerts. But the code it deploys runs as the job's
# (and the status function's) account, with their rights: the branch it builds is as trusted.

resource "google_artifact_registry_repository_iam_member" "deployer_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deployer.member
}

# run.developer on this job only: get and update it (a new image), not its IAM policy.
resource "google_cloud_run_v2_job_iam_member" "deployer_updates_job" {
  project  = var.project_id
  location = google_cloud_run_v2_job.relay.location
  name     = google_cloud_run_v2_job.relay.name
  role     = "roles/run.developer"
  member   = google_service_account.deployer.member
}

# Deploying the functions from source asks for an upload URL and polls operations, which exist
# at the project's level only; cloudfunctions.developer cannot change IAM policies.
resource "google_project_iam_member" "deployer_deploys_functions" {
  project = var.project_id
  role    = "roles/cloudfunctions.developer"
  member  = google_service_account.deployer.member
}

# A build that runs as a service account of its own writes its logs itself.
resource "google_project_iam_member" "deployer_writes_build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.deployer.member
}

# Updating what runs as an account needs actAs on it: the job and the relay function run as
# the job's account, the status function as its own.
resource "google_service_account_iam_member" "deployer_acts_as_job" {
  service_account_id = google_service_account.job.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}

resource "google_service_account_iam_member" "deployer_acts_as_status" {
  service_account_id = google_service_account.status.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}

# --- Pub/Sub's own service agent, for the example subscription's dead lettering ----------------

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "pubsub_agent_deadletters" {
  count = var.create_example_subscription ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.deadletter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks" {
  count = var.create_example_subscription ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.example[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
