# The relayer's state (CONTRACT §4): `relayers/{id}` documents and their `blocks` subcollection.

resource "google_firestore_database" "this" {
  count = var.create_firestore_database ? 1 : 0

  project                 = var.project_id
  name                    = local.firestore_database
  location_id             = coalesce(var.firestore_location, var.region)
  type                    = "FIRESTORE_NATIVE"
  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = var.deletion_protection ? "ABANDON" : "DELETE"
  # Every version of the last 7 days stays readable at any minute: the state as it was before
  # a bad reset or import can be exported and restored (README.md, Restoring the state).
  point_in_time_recovery_enablement = var.firestore_pitr ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"

  depends_on = [google_project_service.apis]
}

# A daily backup of the relayer's database, kept firestore_backup_retention_days (at most 7
# days for a daily schedule: the google_firestore_backup_schedule reference). Backups outlive
# the database; `gcloud firestore databases restore` makes a new database from one.
resource "google_firestore_backup_schedule" "daily" {
  count = var.create_firestore_database && var.firestore_backup_retention_days > 0 ? 1 : 0

  project   = var.project_id
  database  = local.firestore_database
  retention = local.backup_retention

  daily_recurrence {}

  depends_on = [google_firestore_database.this]
}

# Processed-event records expire through the TTL policy on `expire_at`
# (RELAYER_EVENT_TTL_DAYS). The field is never queried and grows with time, which makes an
# index on it a write hotspot: its indexes are off.
resource "google_firestore_field" "blocks_expire_at" {
  project    = var.project_id
  database   = local.firestore_database
  collection = "blocks"
  field      = "expire_at"

  ttl_config {}
  index_config {}

  depends_on = [google_firestore_database.this]
}

# Fields the relayer never queries (it reads documents by id, and block documents by a
# `block_number` range, which keeps its index): indexing them would only cost writes,
# storage and index-entry limits. `events` holds the whole record of each event (a line, or
# a map with its message `data`), so exempting it covers those; `messages_zlib` holds the
# compressed messages of a document's lines. `children` is a page of a factory's children
# (RELAYER_FACTORY), read by id.
locals {
  index_exemptions = {
    "blocks/events"          = { collection = "blocks", field = "events" }
    "blocks/messages_zlib"   = { collection = "blocks", field = "messages_zlib" }
    "blocks/recorded_at"     = { collection = "blocks", field = "recorded_at" }
    "relayers/recent_blocks" = { collection = "relayers", field = "recent_blocks" }
    "relayers/last_run"      = { collection = "relayers", field = "last_run" }
    "children/children"      = { collection = "children", field = "children" }
  }
}

resource "google_firestore_field" "unindexed" {
  for_each = local.index_exemptions

  project    = var.project_id
  database   = local.firestore_database
  collection = each.value.collection
  field      = each.value.field

  index_config {}

  depends_on = [google_firestore_database.this]
}
