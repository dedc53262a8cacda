# The relayer on Google Cloud: a Cloud Run Job that Cloud Scheduler starts every poll interval,
# its Pub/Sub topics, its Firestore state, the RPC URL secrets, the ABI bucket, the status
# function, an optional relay function and the alerts. One file per concern; the names and
# settings derived from the variables are in derived.tf, the APIs here.

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
