# Continuous deployment (build_trigger_repository): every push to build_trigger_branch runs
# cloudbuild.yaml (tests, image, `deploy.sh --code-only`) as <name>-deployer, the account that
# may only ship new code (iam.tf). The repository must be connected to Cloud Build first (the
# Cloud Build GitHub App: console, Cloud Build, Triggers, Connect repository), and the branch
# must carry the deploy.env that cloudbuild.yaml passes to deploy.sh (no secret in it).
# `github { owner, name, push { branch } }` and a service account given as
# projects/<p>/serviceAccounts/<email> follow the google_cloudbuild_trigger reference; a build
# under a service account of its own logs to Cloud Logging only (cloudbuild.yaml's options).

resource "google_cloudbuild_trigger" "deploy" {
  count = var.build_trigger_repository == null ? 0 : 1

  project         = var.project_id
  location        = var.region
  name            = local.build_trigger.name
  description     = "Tests, builds and ships ${var.name} on every push to ${var.build_trigger_branch}, as ${google_service_account.deployer.account_id}."
  filename        = "cloudbuild.yaml"
  service_account = google_service_account.deployer.id
  substitutions   = local.build_trigger.substitutions

  github {
    owner = local.build_trigger.owner
    name  = local.build_trigger.repository

    push {
      branch = local.build_trigger.branch_pattern
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.deployer_writes_build_logs,
  ]
}
