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

status_invokers       = ["group:oncall@example.com"]
notification_channels = []
