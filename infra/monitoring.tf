# Alerts from the run summary: every run logs one JSON line with `run_summary: true`, its
# `outcome` (ok, idle, skipped, failed) and `relayer_id`; a configuration error logs one line
# with `outcome: failed` before any run. A log-based counter of those lines, by outcome and
# relayer, from the job and (relay_function) the relay function (local.run_resources,
# derived.tf), feeds two alerts:
# - runs fail: more than failed_runs_threshold failed runs of a relayer within the window
#   (local.alert_window, derived.tf);
# - lag grows: no successful run (ok or idle) of a relayer for local.stale_after (derived.tf):
#   a run that crashes or is killed logs nothing and keeps its lease until it expires, so the
#   window outlasts one crashed run's lease; lasting silence still pages. It watches where the
#   schedule starts runs (local.scheduled_resource_type): with the relay function the job's
#   schedule is paused, and a run of the job by hand must not page when its series stops.
# An alert condition names one resource type (the MetricThreshold and MetricAbsence filter
# "must specify the metric type and the resource type", Monitoring API v3), and a reduction
# never crosses resource types (Aggregation.groupByFields), so the failed-runs and lag alerts
# have one condition per resource type of the runs, combined with OR.
# Both go to var.notification_channels; without one they only open incidents in the console
# (the check below warns at plan time).
#
# Lag and activity: distribution metrics of the summary line's values (local.value_metrics,
# derived.tf: lag in blocks and seconds, events published, retractions, dead letters), by
# relayer, charted on a dashboard (dashboard.json) with the runs by outcome, and a third alert:
# - relayer lag: a relayer's lag after its runs, averaged over local.alert_window, above
#   local.lag_alert_blocks for local.lag_alert_after (derived.tf).
# Log-based distribution metrics are DELTA (https://cloud.google.com/logging/docs/logs-based-
# metrics/distribution-metrics); Monitoring keeps their count and mean exactly (the buckets only
# shape the heatmaps), and REDUCE_MEAN is valid for distribution values (the Aggregation
# reference), so the charts and the alert read the mean per relayer.

locals {
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
  description = "Relay runs of the ${var.name} relayer, by outcome and relayer (the run summary line)."
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

  dynamic "conditions" {
    for_each = local.run_resources

    content {
      display_name = "Failed runs of a relayer (${conditions.value.what})"

      condition_threshold {
        filter          = "resource.type = \"${conditions.key}\" AND metric.type = \"${local.runs_metric}\" AND metric.label.outcome = \"failed\""
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
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Runs of `${google_cloud_run_v2_job.relay.name}`
      (${join(" or ", [for r in values(local.run_resources) : r.what])}) ended with `outcome: failed`.
      The run summary's `error` says why; the state is left so that the next run loses nothing.
      Logs: `${local.run_lines} AND severity>=ERROR`.
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
      filter   = "resource.type = \"${local.scheduled_resource_type}\" AND metric.type = \"${local.runs_metric}\" AND metric.label.outcome = one_of(\"ok\", \"idle\")"
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
      No run of `${google_cloud_run_v2_job.relay.name}` in
      ${local.run_resources[local.scheduled_resource_type].what}, where the schedule starts runs,
      has succeeded for a relayer in ${local.stale_after} s: its lag behind the chain grows.
      Check the scheduler, the runs (a crashed or timed-out run logs no summary), the lease
      (`skipped` runs) and the status function's `/status`. The summaries:
      `${local.summary_lines}`.
    EOT
  }
}

resource "google_logging_metric" "values" {
  for_each = local.value_metrics

  project     = var.project_id
  name        = each.value.name
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = each.value.unit
    display_name = each.value.display_name

    labels {
      key         = "relayer_id"
      value_type  = "STRING"
      description = "The relayer's RELAYER_ID"
    }
  }

  value_extractor = each.value.value_extractor
  label_extractors = {
    relayer_id = "EXTRACT(jsonPayload.relayer_id)"
  }

  # 1 to ~1.5^64: from a block or a second to beyond any lag.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 64
      growth_factor      = 1.5
      scale              = 1
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "lag" {
  project               = var.project_id
  display_name          = "${var.name}: relayer lag"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  dynamic "conditions" {
    for_each = local.run_resources

    content {
      display_name = "Lag of a relayer above ${local.lag_alert_blocks} blocks for ${local.lag_alert_after} s (${conditions.value.what})"

      condition_threshold {
        filter          = "resource.type = \"${conditions.key}\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.values["lag-blocks"].name}\""
        comparison      = "COMPARISON_GT"
        threshold_value = local.lag_alert_blocks
        duration        = "${local.lag_alert_after}s"

        aggregations {
          alignment_period     = "${local.alert_window}s"
          per_series_aligner   = "ALIGN_DELTA"
          cross_series_reducer = "REDUCE_MEAN"
          group_by_fields      = ["metric.label.relayer_id"]
        }

        trigger {
          count = 1
        }
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      A relayer of `${google_cloud_run_v2_job.relay.name}` has stayed more than
      ${local.lag_alert_blocks} blocks behind the head after its runs for ${local.lag_alert_after} s:
      it is not catching up. Check, in this order:
      1. `/status` (the status function): `lag_blocks`, `reasons`, `last_run`, `rpc_limits`.
      2. The run summaries (`${local.summary_lines}`): a run that relays a whole batch
         (`to_block - from_block + 1` = RELAYER_BATCH_SIZE) every time is outpaced by the
         chain: raise RELAYER_BATCH_SIZE or run in follow mode (RELAYER_RUN_SECONDS).
      3. Failed or skipped runs (the other two alerts), and an RPC endpoint that refuses wide
         `eth_getLogs` ranges (`rpc_limits` shrinking) or answers slowly.
      A backfill from an old START_BLOCK lags on purpose until it is within one batch: raise
      lag_alert_blocks (LAG_ALERT_BLOCKS for deploy.sh) or snooze this alert meanwhile.
    EOT
  }
}

resource "google_monitoring_dashboard" "relay" {
  project        = var.project_id
  dashboard_json = local.dashboard_json

  depends_on = [google_logging_metric.runs, google_logging_metric.values]
}
