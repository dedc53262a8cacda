# RPC_URL lives in Secret Manager: it carries API keys. Terraform creates the secret but never
# its value, so the value stays out of the state and the plan; add it with the command in the
# `rpc_url_add_version_command` output before the job's first run.

resource "google_secret_manager_secret" "rpc_url" {
  project   = var.project_id
  secret_id = local.rpc_secret_id
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}
