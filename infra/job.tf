# The relay job: `python main.py`, one run per execution (CONTRACT §2). Exit code 1 (the run
# failed) is worth a retry; the next scheduled run retries in any case, and the lease keeps
# overlapping runs from publishing the same event twice.

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = var.artifact_repository
  format        = "DOCKER"
  description   = "Images of the EVM relayer job."
  labels        = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_job" "relay" {
  project             = var.project_id
  name                = var.name
  location            = var.region
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    # Cloud Run sets CLOUD_RUN_TASK_INDEX and CLOUD_RUN_TASK_COUNT; the relayers of
    # RELAYER_CONFIG are shared among the tasks by index.
    task_count  = var.task_count
    parallelism = var.parallelism

    template {
      service_account = google_service_account.job.email
      timeout         = "${local.task_timeout}s"
      max_retries     = var.max_retries

      containers {
        image   = local.image
        command = ["python"]
        args    = ["main.py"]

        resources {
          limits = {
            cpu    = var.cpu
            memory = var.memory
          }
        }

        dynamic "env" {
          for_each = local.runtime_env
          content {
            name  = env.key
            value = env.value
          }
        }

        env {
          name = "RPC_URL"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.rpc_url.secret_id
              version = "latest"
            }
          }
        }

        # Each relayer's own RPC URL (RPC_URL_ENV in RELAYER_CONFIG), from its secret.
        dynamic "env" {
          for_each = google_secret_manager_secret.relayer_rpc_url
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = env.value.secret_id
                version = "latest"
              }
            }
          }
        }
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
      condition     = var.image != null
      error_message = "image is not set: build and push the image first (the image_build_command output prints its digest), then set image to <repository>/relayer@sha256:<digest>."
    }
    precondition {
      condition     = !local.follow || local.task_timeout >= local.follow_needs
      error_message = "task_timeout_seconds is shorter than the follow window: run_seconds + poll_interval_seconds + 60 s (start-up, last commit, hand-over) = ${local.follow_needs} s, or Cloud Run kills runs inside their window; raise task_timeout_seconds (or leave it null to derive it) or lower run_seconds."
    }
    precondition {
      condition     = !local.follow || tonumber(local.runtime_env["RELAYER_LEASE_SECONDS"]) > 2 * var.poll_interval_seconds
      error_message = "RELAYER_LEASE_SECONDS (extra_env) is too short for follow mode (run_seconds > 0): a follower renews its lease at every look, so it must exceed 2 x poll_interval_seconds; raise it or leave it out to derive it."
    }
  }
}
