# ---------------------------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------------------------
variable "project_id" {
  description = "Project that holds everything: the job, the topics, Firestore, the secret."
  type        = string
}

variable "region" {
  description = "Region of the job, the scheduler, the status function and the buckets."
  type        = string
  default     = "us-central1"
}

variable "name" {
  description = "Prefix of every resource name (job, service accounts, secret, buckets...)."
  type        = string
  default     = "relayer"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name: 2-20 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "labels" {
  description = "Labels put on the resources that take labels."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# What to relay (CONTRACT §1)
# ---------------------------------------------------------------------------------------------
variable "chain_id" {
  description = "CHAIN_ID: the EVM chain id; the job checks it against eth_chainId."
  type        = number
}

variable "contract_addresses" {
  description = "CONTRACT_ADDRESS: the contracts whose events are relayed."
  type        = list(string)

  validation {
    condition = length(var.contract_addresses) > 0 && alltrue([
      for a in var.contract_addresses : can(regex("^0x[0-9a-fA-F]{40}$", a))
    ])
    error_message = "contract_addresses: one or more 0x-prefixed 40-hex-digit addresses."
  }
}

variable "start_block" {
  description = "START_BLOCK: first block scanned when no checkpoint exists."
  type        = number
}

variable "abi_file" {
  description = "Local path of the ABI (a plain array or a Hardhat/Foundry artifact) to upload; null: upload it yourself to the ABI bucket at abi_object."
  type        = string
  default     = null
}

variable "abi_object" {
  description = "Object name of the ABI in the ABI bucket; ABI_URI is gs://<bucket>/<abi_object>."
  type        = string
  default     = "abi/contract.json"
}

variable "relayer_config" {
  description = "RELAYER_CONFIG: gs:// path of a multi-relayer file (JSON or YAML), or null. Put it in the ABI bucket: the service accounts read only that bucket, and publish only to this deployment's topics."
  type        = string
  default     = null

  validation {
    condition     = var.relayer_config == null || can(regex("^gs://[^/]+/.+", var.relayer_config))
    error_message = "relayer_config: a gs://bucket/object path, or null."
  }
}

variable "batch_size" {
  description = "RELAYER_BATCH_SIZE: most blocks one run scans."
  type        = number
  default     = 1000
}

variable "checkpoint_interval" {
  description = "RELAYER_CHECKPOINT_INTERVAL: blocks between checkpoint commits inside a run."
  type        = number
  default     = 100
}

variable "confirmations" {
  description = "RELAYER_CONFIRMATIONS: blocks behind the head a run stops at."
  type        = number
  default     = 12
}

variable "poll_interval_seconds" {
  description = "RELAYER_POLL_INTERVAL: seconds between two looks at the chain. One batch a run (run_seconds = 0): the runs' period, 60 or more, a whole number of minutes below an hour without an explicit schedule. Follow mode: any whole number of seconds >= 1."
  type        = number
  default     = 60

  validation {
    condition     = var.poll_interval_seconds >= 1 && floor(var.poll_interval_seconds) == var.poll_interval_seconds
    error_message = "poll_interval_seconds: a whole number of seconds, 1 or more (60 or more unless run_seconds > 0)."
  }
}

variable "run_seconds" {
  description = "RELAYER_RUN_SECONDS: follow mode's window; each run follows the chain this long, looking every poll_interval_seconds. The schedule (the window rounded up to whole minutes), the task timeout (window + poll interval + 60 s, at least 300) and RELAYER_LEASE_SECONDS (3 x poll interval, at least 300) derive from it. 0: one batch a run."
  type        = number
  default     = 0

  validation {
    condition     = var.run_seconds >= 0 && var.run_seconds <= 3600 && floor(var.run_seconds) == var.run_seconds
    error_message = "run_seconds: a whole number of seconds from 0 (one batch a run) to 3600."
  }
}

variable "schedule" {
  description = "Cron schedule of the runs; null: every poll_interval_seconds / 60 minutes. An explicit schedule should match poll_interval_seconds, which status uses to call a relayer stale."
  type        = string
  default     = null
}

variable "time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "extra_env" {
  description = "More relayer variables for the job and the status function (RELAYER_EVENTS, RELAYER_HEAD, RELAYER_LEASE_SECONDS, RELAYER_EVENT_TTL_DAYS, RELAYER_MAX_LAG_BLOCKS...). Never RPC_URL: that one comes from Secret Manager."
  type        = map(string)
  default     = {}

  validation {
    condition     = !contains(keys(var.extra_env), "RPC_URL")
    error_message = "extra_env: RPC_URL comes from the Secret Manager secret, never from a plain variable."
  }
}

# ---------------------------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------------------------
variable "topic" {
  description = "PUBSUB_TOPIC: the topic id the events are published to; null: <name>-events."
  type        = string
  default     = null
}

variable "deadletter_topic" {
  description = "RELAYER_DEADLETTER_TOPIC, also the example subscription's dead-letter topic; null: <topic>-deadletter."
  type        = string
  default     = null
}

variable "create_example_subscription" {
  description = "Create an ordered example subscription for consumers (with dead lettering)."
  type        = bool
  default     = true
}

variable "subscription" {
  description = "Id of the example subscription; null: <topic>-example."
  type        = string
  default     = null
}

variable "max_delivery_attempts" {
  description = "Deliveries of a message to the example subscription before it is dead-lettered (5-100)."
  type        = number
  default     = 10
}

# ---------------------------------------------------------------------------------------------
# State, secret, image
# ---------------------------------------------------------------------------------------------
variable "firestore_database" {
  description = "FIRESTORE_DATABASE: the Firestore database id."
  type        = string
  default     = "(default)"
}

variable "create_firestore_database" {
  description = "Create the Firestore database (false when it already exists in the project)."
  type        = bool
  default     = true
}

variable "firestore_location" {
  description = "Location of a created Firestore database (e.g. nam5, eur3 or a region); null: region."
  type        = string
  default     = null
}

variable "rpc_url_secret_id" {
  description = "Secret Manager secret holding RPC_URL; null: <name>-rpc-url. Terraform creates the secret, never its value: add it with `gcloud secrets versions add` (see the outputs)."
  type        = string
  default     = null
}

variable "image" {
  description = "Container image of the job (built from the Dockerfile); null: <region>-docker.pkg.dev/<project>/<artifact_repository>/relayer:latest."
  type        = string
  default     = null
}

variable "artifact_repository" {
  description = "Artifact Registry Docker repository created for the image."
  type        = string
  default     = "relayer"
}

# ---------------------------------------------------------------------------------------------
# The Cloud Run Job
# ---------------------------------------------------------------------------------------------
variable "task_count" {
  description = "Tasks per execution; the relayers of RELAYER_CONFIG are shared among them (CLOUD_RUN_TASK_INDEX/COUNT)."
  type        = number
  default     = 1

  validation {
    condition     = var.task_count >= 1
    error_message = "task_count: at least 1."
  }
}

variable "parallelism" {
  description = "Tasks running at once; 0: all of them."
  type        = number
  default     = 0
}

variable "task_timeout_seconds" {
  description = "Task timeout; null: 300, or in follow mode run_seconds + poll_interval_seconds + 60 (at least 300). One batch a run: keep it at most RELAYER_LEASE_SECONDS (300 by default) so that a run never outlives its lease. Follow mode: at least run_seconds + poll_interval_seconds + 60."
  type        = number
  default     = null
}

variable "max_retries" {
  description = "Retries of a failed task within one execution (the next scheduled run retries anyway)."
  type        = number
  default     = 1
}

variable "cpu" {
  description = "CPU limit of a task."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory limit of a task."
  type        = string
  default     = "512Mi"
}

variable "deletion_protection" {
  description = "Protect the job and the Firestore database from `terraform destroy`."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# Status function and alerts
# ---------------------------------------------------------------------------------------------
variable "status_invokers" {
  description = "Principals allowed to call the status function (e.g. group:ops@example.com). It is never public."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.status_invokers, "allUsers") && !contains(var.status_invokers, "allAuthenticatedUsers")
    error_message = "status_invokers: the status function is not public."
  }
}

variable "notification_channels" {
  description = "Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) the alerts go to."
  type        = list(string)
  default     = []
}

variable "failed_runs_threshold" {
  description = "Alert when a relayer has more failed runs than this within alert_window_seconds."
  type        = number
  default     = 0
}

variable "alert_window_seconds" {
  description = "Window over which failed runs are counted."
  type        = number
  default     = 600
}

variable "stale_after_seconds" {
  description = "Alert when a relayer has had no successful run (ok or idle) for this long; null: three poll intervals (what status calls stale), in follow mode three hand-overs (a run logs its summary once a window), at least 120 s."
  type        = number
  default     = null
}
