# What an operator needs next.

output "job_name" {
  description = "The Cloud Run Job."
  value       = google_cloud_run_v2_job.relay.name
}

output "run_job_now_command" {
  description = "Start one run by hand."
  value       = "gcloud run jobs execute ${google_cloud_run_v2_job.relay.name} --region=${var.region} --project=${var.project_id} --wait"
}

output "image" {
  description = "The image the job runs."
  value       = local.image
}

output "image_build_command" {
  description = "Build and push the job's image from the repository root."
  value       = "gcloud builds submit --project=${var.project_id} --region=${var.region} --tag=${local.image} ."
}

output "artifact_repository" {
  description = "Docker repository for the image."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "scheduler_job" {
  description = "The Cloud Scheduler job and its schedule."
  value       = "${google_cloud_scheduler_job.relay.name} (${local.schedule}, ${var.time_zone})"
}

output "topic" {
  description = "Full name of the events topic."
  value       = google_pubsub_topic.events.id
}

output "deadletter_topic" {
  description = "Full name of the dead-letter topic."
  value       = google_pubsub_topic.deadletter.id
}

output "example_subscription" {
  description = "Ordered example subscription for consumers (null when not created)."
  value       = try(google_pubsub_subscription.example[0].id, null)
}

output "abi_uri" {
  description = "ABI_URI; upload the ABI there when abi_file is null."
  value       = local.abi_uri
}

output "rpc_url_secret" {
  description = "The secret holding RPC_URL."
  value       = google_secret_manager_secret.rpc_url.id
}

output "rpc_url_add_version_command" {
  description = "Store the RPC URL (read from a file, never from the command line) before the first run."
  value       = "gcloud secrets versions add ${google_secret_manager_secret.rpc_url.secret_id} --project=${var.project_id} --data-file=rpc-url.txt"
}

output "firestore_database" {
  description = "The Firestore database holding the state (relayers/{RELAYER_ID})."
  value       = var.firestore_database
}

output "status_url" {
  description = "The status function; call it with an identity token."
  value       = google_cloudfunctions2_function.status.service_config[0].uri
}

output "status_curl_command" {
  description = "Read /status as a principal of status_invokers."
  value       = "curl -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" ${google_cloudfunctions2_function.status.service_config[0].uri}/status"
}

output "service_accounts" {
  description = "The three identities."
  value = {
    job       = google_service_account.job.email
    scheduler = google_service_account.scheduler.email
    status    = google_service_account.status.email
  }
}

output "logs_filter" {
  description = "Cloud Logging query for the run summaries."
  value       = local.run_summary_filter
}
