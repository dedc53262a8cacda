# The ABI bucket (ABI_URI, and RELAYER_CONFIG when used) and the functions' source.

resource "google_storage_bucket" "abi" {
  project                     = var.project_id
  name                        = local.abi_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  versioning {
    enabled = true
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "abi" {
  count = var.abi_file == null ? 0 : 1

  bucket       = google_storage_bucket.abi.name
  name         = var.abi_object
  source       = var.abi_file
  content_type = "application/json"
}

resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = local.source_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels

  depends_on = [google_project_service.apis]
}

# The functions (status, relay) are built from the same code as the job: main.py, the package
# and the runtime requirements, nothing else (no tests, no dev tooling).
locals {
  repo_root = "${path.module}/.."
  status_sources = toset(concat(
    ["main.py", "requirements.txt"],
    tolist(fileset(local.repo_root, "function/*.py")),
  ))
}

data "archive_file" "status" {
  type        = "zip"
  output_path = "${path.module}/.terraform/build/status-source.zip"

  dynamic "source" {
    for_each = local.status_sources
    content {
      filename = source.value
      content  = file("${local.repo_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket_object" "status_source" {
  bucket = google_storage_bucket.source.name
  # The hash in the name makes a code change redeploy the function.
  name   = "status/${data.archive_file.status.output_md5}.zip"
  source = data.archive_file.status.output_path
}
