# Everything derived from the variables alone: names, the schedule, the timeouts, the alert
# windows and the runtime environment. Nothing here refers to a resource or a data source, so
# tests/deploy evaluates this file with `terraform console` (no provider, no cloud) and checks
# it against deploy.sh, which derives the same values from its settings.

locals {
  topic            = coalesce(var.topic, "${var.name}-events")
  deadletter_topic = coalesce(var.deadletter_topic, "${local.topic}-deadletter")
  subscription     = coalesce(var.subscription, "${local.topic}-example")
  rpc_secret_id    = coalesce(var.rpc_url_secret_id, "${var.name}-rpc-url")
  abi_bucket       = "${var.project_id}-${var.name}-abi"
  source_bucket    = "${var.project_id}-${var.name}-source"
  abi_uri          = "gs://${local.abi_bucket}/${var.abi_object}"
  image_repository = "${var.region}-docker.pkg.dev/${var.project_id}/${var.artifact_repository}/relayer"
  # By digest only (variables.tf validates it): a tag can be moved, a digest cannot.
  image = var.image
  # A database of the relayer's own: the IAM grants are conditioned on its name, so the
  # relayer reaches no other application's data.
  firestore_database = coalesce(var.firestore_database, "${var.name}-state")
  firestore_name     = "projects/${var.project_id}/databases/${local.firestore_database}"

  # Cloud Scheduler fires at most once a minute: every N minutes, N = the poll interval (one
  # batch a run), or the follow window rounded up to whole minutes (follow mode).
  follow = var.run_seconds > 0
  # The window rounded up to whole minutes, or down when a run then still finds the previous
  # one about to end (within poll_interval_seconds + 10 s) and waits for it: a window a little
  # longer than the period (70 s every minute) hands over without a gap.
  window_up      = max(1, ceil(var.run_seconds / 60))
  window_minutes = (local.window_up * 60 > var.run_seconds + var.poll_interval_seconds && var.run_seconds >= 60 && var.run_seconds - floor(var.run_seconds / 60) * 60 <= var.poll_interval_seconds + 10) ? floor(var.run_seconds / 60) : local.window_up
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
  # The first scheduled run no earlier than poll_interval_seconds + 10 s before a window's end
  # takes over (an earlier one skips; this one waits for the hand-over, CONTRACT §7.7).
  handover_period = local.schedule_minutes > 0 ? max(local.schedule_period, ceil(max(0, var.run_seconds - var.poll_interval_seconds - 10) / local.schedule_period) * local.schedule_period) : 0
  follow_needs    = var.run_seconds + var.poll_interval_seconds + 60
  task_timeout    = coalesce(var.task_timeout_seconds, local.follow ? max(300, local.follow_needs) : 300)
  # RELAYER_LEASE_SECONDS: given in extra_env, or 300 (the relayer's default), in follow mode
  # at least 3 poll intervals (a follower renews it at every look).
  lease_seconds = tonumber(lookup(var.extra_env, "RELAYER_LEASE_SECONDS", local.follow ? max(300, 3 * var.poll_interval_seconds) : 300))
  follow_env = local.follow ? {
    RELAYER_RUN_SECONDS   = tostring(var.run_seconds)
    RELAYER_LEASE_SECONDS = tostring(local.lease_seconds)
  } : {}

  # Alerts. A healthy relayer logs a successful summary every summary_period: each run (one
  # batch a run), or once a window, at each hand-over (follow mode). A run killed without a
  # summary (an OOM kill, a crashed node) keeps its lease until it expires, and the runs that
  # find it held are `skipped`: from the last success, the next one comes at worst after the
  # crashed run's start (one period), its lease, the first run after that (one period) and its
  # window. The stale alert waits that out plus a minute, so that one crash does not page,
  # and never less than 3 periods (what status calls stale).
  summary_period = max(var.poll_interval_seconds, local.handover_period)
  crash_gap      = local.lease_seconds + 2 * local.summary_period + var.run_seconds + 60
  stale_after = coalesce(var.stale_after_seconds, max(
    120, ceil(max(3 * local.summary_period, local.crash_gap) / 60) * 60,
  ))
  # Failed runs are counted over at least 3 periods, so that a window always holds runs.
  alert_window = coalesce(var.alert_window_seconds, max(600, ceil(3 * local.summary_period / 60) * 60))
  # The lag alert: the limit status applies (RELAYER_MAX_LAG_BLOCKS, else confirmations + one
  # batch: a relayer further behind cannot catch up in its next run), averaged per relayer over
  # the failed-runs window (it always holds runs), for as long as the stale alert waits (what
  # one crashed run can cost), so that the catching-up after one crash does not page.
  lag_alert_blocks = coalesce(var.lag_alert_blocks, tonumber(lookup(var.extra_env, "RELAYER_MAX_LAG_BLOCKS", var.confirmations + var.batch_size)))
  lag_alert_after  = coalesce(var.lag_alert_seconds, local.stale_after)

  # Where runs log: the job (named var.name, job.tf) and, with relay_function, the relay
  # function (relay.tf), which Cloud Functions gen2 runs as the Cloud Run service of its name,
  # so that its lines are a cloud_run_revision's. Resource type => that resource's lines (a
  # Logging query) and what it is. The metrics count the lines of both; an alert condition names
  # one resource type (Monitoring requires it) and a time series is never reduced across
  # resource types, so the failed-runs and lag alerts have a condition per type.
  relay_function_name = "${var.name}-relay"
  run_resources = merge(
    { cloud_run_job = { lines = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${var.name}\"", what = "the job" } },
    var.relay_function ? { cloud_run_revision = { lines = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.relay_function_name}\"", what = "the relay function" } } : {},
  )
  # Every run's lines. Two resources are bracketed each and together: the query never depends
  # on how Logging ranks AND and OR.
  run_lines = length(local.run_resources) == 1 ? local.run_resources.cloud_run_job.lines : "(${join(" OR ", [for r in values(local.run_resources) : "(${r.lines})"])})"
  # The runs counter (monitoring.tf): every summary, and the line a configuration error logs
  # before any run (outcome failed, no summary).
  run_summary_filter = "${local.run_lines} AND (jsonPayload.run_summary=true OR jsonPayload.outcome=\"failed\")"
  # Where the schedule starts runs: in the function when there is one (the job's schedule is
  # then paused and the job runs by hand only), so that is where no success means no progress.
  scheduled_resource_type = var.relay_function ? "cloud_run_revision" : "cloud_run_job"

  # Log-based distribution metrics, one value per run summary line (function/core/summary.py
  # log_fields) and relayer. A line without the field (lag_seconds of a run that read no block
  # time, reorg.retracted of a run without a reorganisation) is not counted: no false 0.
  summary_lines = "${local.run_lines} AND jsonPayload.run_summary=true"
  value_metrics = {
    for key, m in {
      "lag-blocks"       = { field = "lag_blocks", unit = "1", what = "Blocks behind the head after each run" }
      "lag-seconds"      = { field = "lag_seconds", unit = "s", what = "Seconds from the last relayed block's time to each run's end" }
      "events-published" = { field = "events_published", unit = "1", what = "Events published by each run" }
      "retractions"      = { field = "reorg.retracted", unit = "1", what = "Events retracted by each run that met a reorganisation" }
      "dead-letters"     = { field = "dead_lettered", unit = "1", what = "Logs dead-lettered by each run" }
    } :
    key => {
      name            = "${var.name}-${key}"
      description     = "${m.what}, by relayer (the run summary line's ${m.field})."
      display_name    = "${var.name} ${key}"
      filter          = "${local.summary_lines} AND jsonPayload.${m.field}:*"
      value_extractor = "EXTRACT(jsonPayload.${m.field})"
      unit            = m.unit
    }
  }
  # infra/dashboard.json, as deploy.sh renders it too.
  dashboard_json = templatefile("${path.module}/dashboard.json", {
    name             = var.name
    lag_blocks_limit = local.lag_alert_blocks
  })

  # Firestore: the daily backups' retention (the backup schedule's duration format).
  backup_retention = "${var.firestore_backup_retention_days * 86400}s"

  # The BigQuery subscription (bigquery_subscription): dataset ids take letters, digits and _.
  bigquery_dataset      = coalesce(var.bigquery_dataset, "${replace(var.name, "-", "_")}_events")
  bigquery_location     = coalesce(var.bigquery_location, var.region)
  bigquery_table        = "events"
  bigquery_subscription = "${local.topic}-bigquery"

  # The Cloud Build trigger (build_trigger_repository): pushes to one branch, matched exactly.
  build_trigger = {
    name           = "${var.name}-deploy"
    owner          = try(split("/", var.build_trigger_repository)[0], null)
    repository     = try(split("/", var.build_trigger_repository)[1], null)
    branch_pattern = "^${replace(var.build_trigger_branch, ".", "\\.")}$"
    substitutions  = { _REGION = var.region, _REPO = var.artifact_repository }
  }

  # What the job and the functions all read (CONTRACT §1); the RPC URLs are secrets.
  runtime_env = merge(
    {
      CHAIN_ID                    = tostring(var.chain_id)
      ABI_URI                     = local.abi_uri
      PUBSUB_PROJECT_ID           = var.project_id
      PUBSUB_TOPIC                = local.topic
      START_BLOCK                 = tostring(var.start_block)
      RELAYER_BATCH_SIZE          = tostring(var.batch_size)
      RELAYER_CHECKPOINT_INTERVAL = tostring(var.checkpoint_interval)
      RELAYER_POLL_INTERVAL       = tostring(var.poll_interval_seconds)
      RELAYER_CONFIRMATIONS       = tostring(var.confirmations)
      RELAYER_DEADLETTER_TOPIC    = local.deadletter_topic
      FIRESTORE_DATABASE          = local.firestore_database
      LOG_FORMAT                  = "json"
    },
    # None with RELAYER_FACTORY alone (extra_env): its children are what is relayed.
    length(var.contract_addresses) == 0 ? {} : { CONTRACT_ADDRESS = join(",", var.contract_addresses) },
    var.relayer_config == null ? {} : { RELAYER_CONFIG = var.relayer_config },
    local.follow_env,
    var.extra_env,
  )
  # The secrets mounted as environment variables: RPC_URL, and the variable each relayer of
  # RELAYER_CONFIG names with RPC_URL_ENV (rpc_url_secrets).
  secret_env = merge({ RPC_URL = local.rpc_secret_id }, var.rpc_url_secrets)

  apis = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
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
