# The relayer on Google Cloud: a Cloud Run Job that Cloud Scheduler starts every poll interval,
# its Pub/Sub topics, its Firestore state, the RPC URL secret, the ABI bucket, the status
# function and the alerts. One file per concern; this one holds the names and the APIs.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  topic            = coalesce(var.topic, "${var.name}-events")
  deadletter_topic = coalesce(var.deadletter_topic, "${local.topic}-deadletter")
  subscription     = coalesce(var.subscription, "${local.topic}-example")
  rpc_secret_id    = coalesce(var.rpc_url_secret_id, "${var.name}-rpc-url")
  abi_bucket       = "${var.project_id}-${var.name}-abi"
  source_bucket    = "${var.project_id}-${var.name}-source"
  abi_uri          = "gs://${local.abi_bucket}/${var.abi_object}"
  image            = coalesce(var.image, "${var.region}-docker.pkg.dev/${var.project_id}/${var.artifact_repository}/relayer:latest")
  firestore_name   = "projects/${var.project_id}/databases/${var.firestore_database}"

  # Cloud Scheduler fires at most once a minute: every N minutes, N = the poll interval (one
  # batch a run), or the follow window rounded up to whole minutes (follow mode).
  follow         = var.run_seconds > 0
  window_minutes = max(1, ceil(var.run_seconds / 60))
  schedule = coalesce(var.schedule, local.follow ? (
    local.window_minutes == 1 ? "* * * * *" : local.window_minutes == 60 ? "0 * * * *" : "*/${local.window_minutes} * * * *"
    ) : (
    var.poll_interval_seconds == 60 ? "* * * * *" : "*/${floor(var.poll_interval_seconds / 60)} * * * *"
  ))
  # Follow mode: the schedule's period in minutes (0: a cron whose period cannot be checked),
  # the first scheduled run at or after a window's end (it takes over), and what a task needs:
  # the window, the last look, start-up, the last commit and a hand-over wait.
  schedule_minutes = var.schedule == null ? local.window_minutes : (
    can(regex("^\\*\\s+\\*\\s+\\*\\s+\\*\\s+\\*$", var.schedule)) ? 1 :
    can(regex("^\\*/[0-9]+\\s+\\*\\s+\\*\\s+\\*\\s+\\*$", var.schedule)) ? tonumber(regex("^\\*/([0-9]+)", var.schedule)[0]) :
    can(regex("^[0-9]+\\s+\\*\\s+\\*\\s+\\*\\s+\\*$", var.schedule)) ? 60 : 0
  )
  schedule_period = local.schedule_minutes * 60
  handover_period = local.schedule_minutes > 0 ? ceil(var.run_seconds / local.schedule_period) * local.schedule_period : 0
  follow_needs    = var.run_seconds + var.poll_interval_seconds + 60
  task_timeout    = coalesce(var.task_timeout_seconds, local.follow ? max(300, local.follow_needs) : 300)
  follow_env = local.follow ? {
    RELAYER_RUN_SECONDS   = tostring(var.run_seconds)
    RELAYER_LEASE_SECONDS = tostring(max(300, 3 * var.poll_interval_seconds))
  } : {}

  # What the job and the status function both read (CONTRACT §1); RPC_URL is the secret.
  runtime_env = merge(
    {
      CHAIN_ID                    = tostring(var.chain_id)
      CONTRACT_ADDRESS            = join(",", var.contract_addresses)
      ABI_URI                     = local.abi_uri
      PUBSUB_PROJECT_ID           = var.project_id
      PUBSUB_TOPIC                = local.topic
      START_BLOCK                 = tostring(var.start_block)
      RELAYER_BATCH_SIZE          = tostring(var.batch_size)
      RELAYER_CHECKPOINT_INTERVAL = tostring(var.checkpoint_interval)
      RELAYER_POLL_INTERVAL       = tostring(var.poll_interval_seconds)
      RELAYER_CONFIRMATIONS       = tostring(var.confirmations)
      RELAYER_DEADLETTER_TOPIC    = local.deadletter_topic
      FIRESTORE_DATABASE          = var.firestore_database
      LOG_FORMAT                  = "json"
    },
    var.relayer_config == null ? {} : { RELAYER_CONFIG = var.relayer_config },
    local.follow_env,
    var.extra_env,
  )

  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
