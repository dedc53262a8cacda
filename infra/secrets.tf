# The RPC URLs live in Secret Manager: they carry API keys. Terraform creates the secrets but
# never their values, so the values stay out of the state and the plan; add them with the
# commands in the `rpc_url_add_version_commands` output before the job's first run.

resource "google_secret_manager_secret" "rpc_url" {
  project   = var.project_id
  secret_id = local.rpc_secret_id
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# One secret per relayer of RELAYER_CONFIG that names its own RPC URL (RPC_URL_ENV: NAME):
# mounted as NAME into the job and the functions.
resource "google_secret_manager_secret" "relayer_rpc_url" {
  for_each = var.rpc_url_secrets

  project   = var.project_id
  secret_id = each.value
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}
