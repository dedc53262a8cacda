# Terraform and providers, pinned exactly: a plan made here is the plan made in CI. The first
# `terraform init` writes .terraform.lock.hcl with the providers' checksums; commit it (it is
# not ignored), so that every later init verifies the very same provider builds. The arguments
# used follow the google provider's documentation for 6.x; `archive` zips the functions' source.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "6.50.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "2.7.1"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
