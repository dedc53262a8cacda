# Cloud Scheduler starts an execution of the job every poll interval through the Cloud Run
# Admin API (`jobs/<name>:run`), authenticated with an OAuth token of its own service account.
# No retry here: the next tick is the retry.

resource "google_cloud_scheduler_job" "relay" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name}-schedule"
  description      = local.follow ? "Runs the ${var.name} relay job every ${local.schedule_period} s, each run following the chain for ${var.run_seconds} s." : "Runs the ${var.name} relay job every ${var.poll_interval_seconds} s."
  schedule         = local.schedule
  time_zone        = var.time_zone
  attempt_deadline = "60s"
  # With the relay function, runs start through it (relay.tf): this schedule is paused, and the
  # job stays for runs by hand.
  paused = var.relay_function

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
      condition     = local.follow || var.schedule != null || (var.poll_interval_seconds % 60 == 0 && var.poll_interval_seconds < 3600)
      error_message = "poll_interval_seconds is not a whole number of minutes below an hour: set schedule (cron) to match it."
    }
    precondition {
      condition     = local.follow || var.poll_interval_seconds >= 60
      error_message = "poll_interval_seconds below 60 needs follow mode (run_seconds > 0): Cloud Scheduler runs at most once a minute."
    }
    precondition {
      condition     = !local.follow || (local.schedule_minutes >= 1 && local.schedule_minutes <= 60 && 60 % local.schedule_minutes == 0)
      error_message = "follow mode (run_seconds > 0): the schedule must repeat evenly every N minutes, N dividing 60 ('* * * * *', '*/N * * * *', 'M * * * *'): pick run_seconds whose minutes are 1-6, 10, 12, 15, 20, 30 or 60, or such a schedule."
    }
    precondition {
      condition     = !local.follow || local.handover_period <= var.run_seconds + var.poll_interval_seconds
      error_message = "the schedule's period does not fit run_seconds with poll_interval_seconds: a window ends more than poll_interval_seconds before the next scheduled run takes over, so coverage has gaps; make run_seconds a whole number of minutes (at most poll_interval_seconds short of one, or up to poll_interval_seconds + 10 s longer: the next run then waits for the hand-over), or set schedule to match."
    }
  }
}
