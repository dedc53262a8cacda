# Alerts from the run summary: every run logs one JSON line with `run_summary: true`, its
# `outcome` (ok, idle, skipped, failed) and `relayer_id`; a configuration error logs one line
# with `outcome: failed` before any run. A log-based counter of those lines, by outcome and
# relayer, feeds two alerts:
# - runs fail: more than failed_runs_threshold failed runs of a relayer within the window
#   (local.alert_window, derived.tf);
# - lag grows: no successful run (ok or idle) of a relayer for local.stale_after (derived.tf):
#   a run that crashes or is killed logs nothing and keeps its lease until it expires, so the
#   window outlasts one crashed run's lease; lasting silence still pages.
# Both go to var.notification_channels; without one they only open incidents in the console
# (the check below warns at plan time).

locals {
  run_summary_filter = join(" AND ", [
    "resource.type=\"cloud_run_job\"",
    "resource.labels.job_name=\"${google_cloud_run_v2_job.relay.name}\"",
    "(jsonPayload.run_summary=true OR jsonPayload.outcome=\"failed\")",
  ])
  runs_metric = "logging.googleapis.com/user/${google_logging_metric.runs.name}"
}

check "alerts_notify_someone" {
  assert {
    condition     = length(var.notification_channels) > 0
    error_message = "notification_channels is empty: the alerts open incidents in the console and notify no one. Create a channel (gcloud beta monitoring channels create --display-name=oncall --type=email --channel-labels=email_address=oncall@example.com) and list its name (projects/<p>/notificationChannels/<id>) in notification_channels."
  }
}

resource "google_logging_metric" "runs" {
  project     = var.project_id
  name        = "${var.name}-runs"
  description = "Relay runs of the ${var.name} job, by outcome and relayer (the run summary line)."
  filter      = local.run_summary_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} relay runs"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "ok, idle, skipped or failed"
    }

    labels {
      key         = "relayer_id"
      value_type  = "STRING"
      description = "The relayer's RELAYER_ID"
    }
  }

  label_extractors = {
    outcome    = "EXTRACT(jsonPayload.outcome)"
    relayer_id = "EXTRACT(jsonPayload.relayer_id)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "runs_failed" {
  project               = var.project_id
  display_name          = "${var.name}: relay runs failed"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "Failed runs of a relayer"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_job\" AND metric.type = \"${local.runs_metric}\" AND metric.label.outcome = \"failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.failed_runs_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${local.alert_window}s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.relayer_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Runs of the `${google_cloud_run_v2_job.relay.name}` job ended with `outcome: failed`.
      The run summary's `error` says why; the state is left so that the next run loses nothing.
      Logs: `resource.type="cloud_run_job" resource.labels.job_name="${google_cloud_run_v2_job.relay.name}" severity>=ERROR`.
      Exit code 2 is a configuration or deployment error and needs a fix before runs succeed.
    EOT
  }
}

resource "google_monitoring_alert_policy" "stale" {
  project               = var.project_id
  display_name          = "${var.name}: relayer not progressing"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "No successful run of a relayer for ${local.stale_after} s"

    condition_absent {
      filter   = "resource.type = \"cloud_run_job\" AND metric.type = \"${local.runs_metric}\" AND metric.label.outcome = one_of(\"ok\", \"idle\")"
      duration = "${local.stale_after}s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.relayer_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      No run of the `${google_cloud_run_v2_job.relay.name}` job has succeeded for a relayer in
      ${local.stale_after} s: its lag behind the chain grows. Check the scheduler, the job's
      executions (a crashed or timed-out run logs no summary), the lease (`skipped` runs) and
      the status function's `/status`.
    EOT
  }
}
