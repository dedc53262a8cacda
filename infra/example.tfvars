# Copy to terraform.tfvars (or pass with -var-file) and adjust. The RPC URL is not here: it goes
# into Secret Manager (see README.md).
project_id = "my-project"
region     = "europe-west1"
name       = "relayer"

# Sepolia; the escrow contract and the block it was deployed at.
chain_id           = 11155111
contract_addresses = ["0x0000000000000000000000000000000000000001"]
start_block        = 9505000
abi_file           = "../contracts/build/Escrow.json"

topic                 = "escrow-events"
poll_interval_seconds = 60
confirmations         = 12
batch_size            = 1000

# Follow mode (events seconds after their confirmations): each run follows the chain for
# run_seconds, looking every poll_interval_seconds (which may then be below 60); the schedule,
# the task timeout and RELAYER_LEASE_SECONDS derive from it. The replaced service's settings:
# poll_interval_seconds = 5
# run_seconds           = 60

# Many relayers in one job: list them in a file in the ABI bucket and share them among tasks.
# relayer_config = "gs://my-project-relayer-abi/relayers.yaml"
# task_count     = 2

extra_env = {
  RELAYER_EVENTS = "EscrowCreated,EscrowReleased"
}

# The first apply (-target, README.md) runs without an image; then the digest the
# image_build_command output prints:
# image = "europe-west1-docker.pkg.dev/my-project/relayer/relayer@sha256:<64 hex digits>"

# A relayer of RELAYER_CONFIG with `RPC_URL_ENV: VAULT_RPC_URL` reads its URL from this secret.
# rpc_url_secrets = { VAULT_RPC_URL = "relayer-vault-rpc-url" }

# State in a database of its own (the default, <name>-state); "(default)" is usually shared.
# firestore_database = "relayer-state"

# Runs through the relay HTTP function instead of the job's schedule.
# relay_function = true

# Every event in BigQuery, through a BigQuery subscription (table <name>_events.events).
# bigquery_subscription = true

# Ship every push to main of this GitHub repository (connected to Cloud Build) as the deployer.
# build_trigger_repository = "my-org/evm-relayer"
# build_trigger_branch     = "main"

# Recovery of the state: point-in-time recovery and daily backups kept 7 days (the defaults).
# firestore_pitr                  = true
# firestore_backup_retention_days = 7

status_invokers = ["group:oncall@example.com"]
# Where alerts go: without a channel they notify no one (README.md: creating one).
notification_channels = ["projects/my-project/notificationChannels/1234567890"]
# The lag alert: null derives confirmations + batch_size blocks, for as long as the stale alert.
# lag_alert_blocks  = 1012
# lag_alert_seconds = 480
