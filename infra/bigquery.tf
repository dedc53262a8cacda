# Events in BigQuery with no code (bigquery_subscription): a BigQuery subscription on the
# events topic writes every message to a table, with Pub/Sub's metadata columns
# (write_metadata) and the message's JSON in `data` (use_table_schema off: the table is not
# mapped field by field, so a new field in the messages never stops the subscription).
# The table's schema (bigquery_schema.json) is the one the Pub/Sub documentation gives for
# write_metadata: subscription_name STRING, message_id STRING, publish_time TIMESTAMP,
# data (BYTES, STRING or JSON) and attributes (STRING or JSON; ordering_key included);
# JSON here, so that queries read fields with JSON_VALUE or dot notation. It is partitioned by
# day of publish_time: a query over a few days reads those days only.
# Writes are at least once: deduplicate on event_id (README.md: the queries).

resource "google_bigquery_dataset" "events" {
  count = var.bigquery_subscription ? 1 : 0

  project     = var.project_id
  dataset_id  = local.bigquery_dataset
  location    = local.bigquery_location
  description = "Events relayed by ${var.name}, written by the Pub/Sub subscription ${local.bigquery_subscription}."
  labels      = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "events" {
  count = var.bigquery_subscription ? 1 : 0

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.events[0].dataset_id
  table_id            = local.bigquery_table
  description         = "One row per message of the ${local.topic} topic (data: the event as docs/CONTRACT.md section 3 defines it; `relayer schema` prints its JSON Schema)."
  schema              = file("${path.module}/bigquery_schema.json")
  deletion_protection = var.deletion_protection
  labels              = var.labels

  time_partitioning {
    type  = "DAY"
    field = "publish_time"
  }
}

# Pub/Sub writes as its service agent, which needs BigQuery Data Editor on the table or above
# (the Pub/Sub "BigQuery subscriptions" page; metadataViewer is no longer asked for): on this
# dataset only.
resource "google_bigquery_dataset_iam_member" "pubsub_agent_writes_events" {
  count = var.bigquery_subscription ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_dataset.events[0].dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_agent
}

resource "google_pubsub_subscription" "bigquery" {
  count = var.bigquery_subscription ? 1 : 0

  project                    = var.project_id
  name                       = local.bigquery_subscription
  topic                      = google_pubsub_topic.events.id
  message_retention_duration = "604800s"
  labels                     = var.labels

  # Table of the form {project}.{dataset}.{table} (google_pubsub_subscription's bigquery_config).
  bigquery_config {
    table            = "${google_bigquery_table.events[0].project}.${google_bigquery_table.events[0].dataset_id}.${google_bigquery_table.events[0].table_id}"
    use_table_schema = false
    write_metadata   = true
  }

  expiration_policy {
    ttl = ""
  }

  # The subscription checks at creation that the agent may write the table.
  depends_on = [google_bigquery_dataset_iam_member.pubsub_agent_writes_events]
}
