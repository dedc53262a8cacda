# The status function (Cloud Functions gen2, HTTP, entry point `status`): /health, /status,
# /metrics and a page for people. It requires authentication: grant `status_invokers`.

resource "google_cloudfunctions2_function" "status" {
  project     = var.project_id
  name        = "${var.name}-status"
  location    = var.region
  description = "Health, status and metrics of the ${var.name} relayer."
  labels      = var.labels

  build_config {
    runtime     = "python311"
    entry_point = "status"

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.status_source.name
      }
    }
  }

  service_config {
    service_account_email          = google_service_account.status.email
    available_memory               = "256M"
    timeout_seconds                = 30
    min_instance_count             = 0
    max_instance_count             = 3
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    environment_variables          = local.runtime_env

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
    google_secret_manager_secret_iam_member.status_reads_rpc_url,
    google_secret_manager_secret_iam_member.status_reads_relayer_rpc_url,
  ]
}
