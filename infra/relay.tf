# Optional (relay_function): the `relay` HTTP function (Cloud Functions gen2), one run per
# POST, for teams that prefer a function to a job. It runs the job's code with the job's
# identity and settings; Cloud Scheduler calls it with an OIDC token of its own account (the
# function is not public), and the job's schedule is paused so that one trigger starts runs.
# main.py answers 405 to anything but POST: an uptime check's GET never starts a run.

resource "google_cloudfunctions2_function" "relay" {
  count = var.relay_function ? 1 : 0

  project     = var.project_id
  name        = local.relay_function_name # its log lines' service_name (derived.tf run_resources)
  location    = var.region
  description = "One relay run of the ${var.name} relayer per POST."
  labels      = var.labels

  build_config {
    runtime     = "python311"
    entry_point = "relay"

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.status_source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.job.email
    available_memory      = var.memory
    timeout_seconds       = local.task_timeout
    min_instance_count    = 0
    # Two: in follow mode the next call waits for the running one to hand over.
    max_instance_count               = 2
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    # The code cannot see the platform's request timeout: it is told (RELAYER_REQUEST_TIMEOUT).
    environment_variables = merge(local.runtime_env, { RELAYER_REQUEST_TIMEOUT = tostring(local.task_timeout) })

    secret_environment_variables {
      key        = "RPC_URL"
      project_id = var.project_id
      secret     = google_secret_manager_secret.rpc_url.secret_id
      version    = "latest"
    }

    dynamic "secret_environment_variables" {
      for_each = google_secret_manager_secret.relayer_rpc_url
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.job_reads_rpc_url,
    google_secret_manager_secret_iam_member.job_reads_relayer_rpc_url,
  ]

  lifecycle {
    precondition {
      condition     = local.task_timeout <= 1800
      error_message = "relay_function: the task timeout (task_timeout_seconds, or derived from run_seconds) exceeds 1800 s, the longest Cloud Scheduler waits for an HTTP answer; use the job (relay_function = false) or a shorter run_seconds."
    }
  }
}

resource "google_cloud_scheduler_job" "relay_function" {
  count = var.relay_function ? 1 : 0

  project          = var.project_id
  region           = var.region
  name             = "${var.name}-relay-schedule"
  description      = "Calls the ${var.name} relay function: one run per call."
  schedule         = local.schedule
  time_zone        = var.time_zone
  attempt_deadline = "${local.task_timeout}s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.relay[0].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.relay[0].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes_relay]
}
