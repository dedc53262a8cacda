# Cloud Scheduler starts an execution of the job every poll interval through the Cloud Run
# Admin API (`jobs/<name>:run`), authenticated with an OAuth token of its own service account.
# No retry here: the next tick is the retry.

resource "google_cloud_scheduler_job" "relay" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name}-schedule"
  description      = "Runs the ${var.name} relay job every ${var.poll_interval_seconds} s."
  schedule         = local.schedule
  time_zone        = var.time_zone
  attempt_deadline = "60s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${google_cloud_run_v2_job.relay.name}:run"

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.scheduler_runs_job]

  lifecycle {
    precondition {
      condition     = var.schedule != null || (var.poll_interval_seconds % 60 == 0 && var.poll_interval_seconds < 3600)
      error_message = "poll_interval_seconds is not a whole number of minutes below an hour: set schedule (cron) to match it."
    }
  }
}
