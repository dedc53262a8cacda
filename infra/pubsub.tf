# The events topic, the dead-letter topic and an ordered example subscription for consumers.
#
# One dead-letter topic serves both ends: the relayer publishes there the logs it cannot
# decode (RELAYER_DEADLETTER_TOPIC), and the example subscription dead-letters the messages a
# consumer keeps failing on (those carry the CloudPubSubDeadLetterSourceSubscription attribute).
# A topic without a subscription drops what is published to it, so the dead-letter topic has
# one that keeps its messages for inspection.

resource "google_pubsub_topic" "events" {
  project = var.project_id
  name    = local.topic
  labels  = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "deadletter" {
  project = var.project_id
  name    = local.deadletter_topic
  labels  = var.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "deadletter" {
  project                    = var.project_id
  name                       = "${local.deadletter_topic}-sub"
  topic                      = google_pubsub_topic.deadletter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

# Consumers receive each contract's events in chain order (the relayer publishes with the
# ordering key {chain_id}:{contract}) and deduplicate on the event_id attribute.
resource "google_pubsub_subscription" "example" {
  count = var.create_example_subscription ? 1 : 0

  project                    = var.project_id
  name                       = local.subscription
  topic                      = google_pubsub_topic.events.id
  enable_message_ordering    = true
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.deadletter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}
