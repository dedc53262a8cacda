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
  description = "The image the job runs, by digest."
  value       = local.image
}

output "image_build_command" {
  description = "Build and push the job's image from the repository root, then print the reference by digest to set as image."
  value       = "gcloud builds submit --project=${var.project_id} --region=${var.region} --tag=${local.image_repository}:manual . && echo ${local.image_repository}@$(gcloud artifacts docker images describe ${local.image_repository}:manual --project=${var.project_id} --format='value(image_summary.digest)')"
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

output "rpc_url_add_version_commands" {
  description = "The same for each relayer's own secret (rpc_url_secrets), by variable name."
  value = {
    for name, secret in google_secret_manager_secret.relayer_rpc_url :
    name => "gcloud secrets versions add ${secret.secret_id} --project=${var.project_id} --data-file=${lower(name)}.txt"
  }
}

output "secret_env" {
  description = "The variables mounted from Secret Manager into the job and the functions: variable => secret id."
  value       = local.secret_env
}

output "firestore_database" {
  description = "The Firestore database holding the state (relayers/{RELAYER_ID})."
  value       = local.firestore_database
}

output "relay_function_url" {
  description = "The relay function (relay_function), POST only; null when not deployed."
  value       = try(google_cloudfunctions2_function.relay[0].service_config[0].uri, null)
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
  description = "The four identities; deployer is the one to give Cloud Build's trigger (gcloud builds triggers create ... --service-account)."
  value = {
    job       = google_service_account.job.email
    scheduler = google_service_account.scheduler.email
    status    = google_service_account.status.email
    deployer  = google_service_account.deployer.email
  }
}

output "logs_filter" {
  description = "Cloud Logging query for the run summaries."
  value       = local.run_summary_filter
}

output "dashboard_url" {
  description = "The Cloud Monitoring dashboard of lag and activity."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.relay.id), 3)}?project=${var.project_id}"
}

output "bigquery_table" {
  description = "The BigQuery table the bigquery_subscription writes (null when off)."
  value       = try("${google_bigquery_table.events[0].project}.${google_bigquery_table.events[0].dataset_id}.${google_bigquery_table.events[0].table_id}", null)
}

output "build_trigger" {
  description = "The Cloud Build trigger shipping pushes to build_trigger_branch (null when off)."
  value       = try(google_cloudbuild_trigger.deploy[0].name, null)
}

output "firestore_backups_command" {
  description = "List the Firestore backups (the daily schedule's), newest last."
  value       = "gcloud firestore backups list --project=${var.project_id} --format='table(name, database, snapshotTime, state)'"
}
