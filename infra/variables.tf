# ---------------------------------------------------------------------------------------------
# Where
# ---------------------------------------------------------------------------------------------
variable "project_id" {
  description = "Project that holds everything: the job, the topics, Firestore, the secret."
  type        = string
}

variable "region" {
  description = "Region of the job, the scheduler, the functions, the image repository and the buckets (no default: deploy.env's REGION and cloudbuild.yaml's _REGION must name the same)."
  type        = string
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
  description = "CONTRACT_ADDRESS: the contracts whose events are relayed. Empty only with RELAYER_FACTORY in extra_env (its children are relayed); a run of neither exits 2."
  type        = list(string)

  validation {
    condition = alltrue([
      for a in var.contract_addresses : can(regex("^0x[0-9a-fA-F]{40}$", a))
    ])
    error_message = "contract_addresses: 0x-prefixed 40-hex-digit addresses (none only with RELAYER_FACTORY in extra_env)."
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
  description = "More relayer variables for the job and the functions (RELAYER_EVENTS, RELAYER_FACTORY, RELAYER_INCLUDE, RELAYER_HEAD, RELAYER_LEASE_SECONDS, RELAYER_EVENT_TTL_DAYS, RELAYER_MAX_LAG_BLOCKS...), in plain text. Never an RPC URL: RPC_URL, RPC_WS_URL and the variables of rpc_url_secrets come from Secret Manager."
  type        = map(string)
  default     = {}

  validation {
    # RPC_URL, RPC_WS_URL, any *RPC_URL* or *WS_URL name, and any value that is an http(s)
    # or ws(s) URL: no other setting is one (ABI_URI is gs:// or a path), and a URL carries
    # a key whatever variable (an RPC_URL_ENV of RELAYER_CONFIG) holds it.
    condition = alltrue([
      for k, v in var.extra_env :
      !can(regex("RPC_URL|WS_URL", k)) && !can(regex("(?i)(^|,)\\s*(https?|wss?)://", v))
    ])
    error_message = "extra_env: an RPC URL carries API keys and never goes in a plain variable: RPC_URL comes from the rpc_url secret, RPC_WS_URL and a relayer's own (RPC_URL_ENV in RELAYER_CONFIG) from rpc_url_secrets."
  }
}

variable "rpc_url_secrets" {
  description = "The RPC URLs of the relayers of RELAYER_CONFIG that name their own (RPC_URL_ENV: NAME), and RPC_WS_URL (follow mode's websocket endpoint): variable NAME => Secret Manager secret id. Terraform creates each secret (never its value) and mounts it as NAME into the job and the functions, readable by their service accounts only."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.rpc_url_secrets : can(regex("^[A-Z_][A-Z0-9_]*$", k)) && k != "RPC_URL" && can(regex("^[A-Za-z0-9_-]{1,255}$", v))
    ])
    error_message = "rpc_url_secrets: variable names in upper case (not RPC_URL, which is the rpc_url secret) => secret ids (letters, digits, '_' and '-')."
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

variable "bigquery_subscription" {
  description = "Also write every message of the topic to a BigQuery table through a BigQuery subscription (no code: README.md, Events in BigQuery)."
  type        = bool
  default     = false
}

variable "bigquery_dataset" {
  description = "The BigQuery dataset of bigquery_subscription; null: <name>_events (with '-' as '_'). Its table is `events`."
  type        = string
  default     = null

  validation {
    condition     = var.bigquery_dataset == null || can(regex("^[A-Za-z0-9_]{1,1024}$", var.bigquery_dataset))
    error_message = "bigquery_dataset: letters, digits and '_' only."
  }
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset (a region, or EU / US); null: region."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# State, secret, image
# ---------------------------------------------------------------------------------------------
variable "firestore_database" {
  description = "FIRESTORE_DATABASE: the Firestore database id; null: <name>-state, a database of the relayer's own. \"(default)\" is usually shared with other applications."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_database == null || var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database: 4-63 lowercase letters, digits or '-', starting with a letter and not ending with '-', or (default)."
  }
}

variable "firestore_pitr" {
  description = "Point-in-time recovery on the created Firestore database: every version of the last 7 days stays readable, at any minute (README.md: restoring)."
  type        = bool
  default     = true
}

variable "firestore_backup_retention_days" {
  description = "A daily backup of the created Firestore database, kept this many days (1-7: Firestore's limit for daily backups); 0: no backup schedule."
  type        = number
  default     = 7

  validation {
    condition     = var.firestore_backup_retention_days >= 0 && var.firestore_backup_retention_days <= 7 && floor(var.firestore_backup_retention_days) == var.firestore_backup_retention_days
    error_message = "firestore_backup_retention_days: a whole number of days from 0 (no daily backup) to 7 (the most Firestore keeps a daily backup)."
  }
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
  description = "The job's image by digest: <region>-docker.pkg.dev/<project>/<artifact_repository>/relayer@sha256:<64 hex digits> (the image_build_command output builds it and prints the digest). null only before the first image exists (terraform apply -target, see README.md)."
  type        = string
  default     = null

  validation {
    condition     = var.image == null || can(regex("^[^@]+@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image: a reference by digest (...@sha256:<64 hex digits>), never a tag such as :latest, which can be moved under the job."
  }
}

variable "artifact_repository" {
  description = "Artifact Registry Docker repository created for the image (the deployer pushes there)."
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

variable "build_trigger_repository" {
  description = "A GitHub repository, owner/name, connected to Cloud Build (the Cloud Build GitHub App): a trigger runs cloudbuild.yaml as <name>-deployer on every push to build_trigger_branch. null: no trigger."
  type        = string
  default     = null

  validation {
    condition     = var.build_trigger_repository == null || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.build_trigger_repository))
    error_message = "build_trigger_repository: owner/name of a GitHub repository, or null."
  }
}

variable "build_trigger_branch" {
  description = "The branch whose pushes the build trigger ships (matched exactly)."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.build_trigger_branch))
    error_message = "build_trigger_branch: a branch name (letters, digits, '.', '_', '/', '-')."
  }
}

variable "relay_function" {
  description = "Also deploy the relay HTTP function (entry point relay, POST only; Cloud Functions gen2, not public) and start runs through it: a Cloud Scheduler job calls it with an OIDC token, and the job's own schedule is paused (the job stays, for runs by hand)."
  type        = bool
  default     = false
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
  description = "Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) the alerts go to. Empty: the alerts open incidents in the console and notify no one (README.md: how to create a channel)."
  type        = list(string)
  default     = []
}

variable "failed_runs_threshold" {
  description = "Alert when a relayer has more failed runs than this within alert_window_seconds."
  type        = number
  default     = 0
}

variable "alert_window_seconds" {
  description = "Window over which failed runs are counted; null: 3 periods between summaries, at least 600 s."
  type        = number
  default     = null
}

variable "stale_after_seconds" {
  description = "Alert when a relayer has had no successful run (ok or idle) for this long; null: long enough that one crashed run does not page: its lease (RELAYER_LEASE_SECONDS) + 2 periods between summaries (the poll interval; in follow mode the hand-over) + the window + 60 s, at least 3 periods. Below that, one OOM kill pages."
  type        = number
  default     = null
}

variable "lag_alert_blocks" {
  description = "Alert when a relayer's lag after its runs (blocks behind the head it relays from: the summary line's lag_blocks), averaged over alert_window_seconds, stays above this; null: RELAYER_MAX_LAG_BLOCKS of extra_env, else confirmations + batch_size (status's default limit: a relayer further behind cannot catch up in its next run)."
  type        = number
  default     = null

  validation {
    condition     = var.lag_alert_blocks == null || try(var.lag_alert_blocks >= 1 && floor(var.lag_alert_blocks) == var.lag_alert_blocks, false)
    error_message = "lag_alert_blocks: a whole number of blocks, 1 or more, or null."
  }
}

variable "lag_alert_seconds" {
  description = "How long the lag must stay above lag_alert_blocks before the alert fires, a whole number of minutes (Monitoring's rule for a threshold's duration); null: as long as the no-progress alert waits (stale_after_seconds), so that catching up after one crashed run does not page."
  type        = number
  default     = null

  validation {
    condition     = var.lag_alert_seconds == null || try(var.lag_alert_seconds >= 60 && var.lag_alert_seconds % 60 == 0, false)
    error_message = "lag_alert_seconds: a whole number of minutes in seconds (60, 120, ...), or null."
  }
}
