#!/usr/bin/env bash
# Deploy the relayer with gcloud alone: the same deployment as infra/ (Terraform), for teams
# without Terraform. Idempotent: each resource is described first, then created or updated, so
# running it again applies changes and creates nothing twice.
#
#   ./deploy.sh [--env-file FILE] [--rpc-url-file [VAR=]FILE|-]... [--image IMAGE]
#               [--code-only] [--dry-run]
#
#   --env-file FILE      settings (default: deploy.env; see deploy.env.example). Relative paths
#                        in it (ABI_FILE) are relative to the file's folder.
#   --rpc-url-file FILE  the RPC URL value, read from FILE or from standard input with '-'.
#                        Needed when the secret does not exist yet (on a terminal it is asked
#                        for instead); given when the secret exists, it adds a new version.
#                        The value is piped to gcloud and never printed. VAR=FILE: the value
#                        of the secret of VAR in RPC_URL_SECRETS (a relayer's own RPC URL,
#                        or RPC_WS_URL's ws:// or wss:// URL: RPC_URL_SECRETS=RPC_WS_URL=ID).
#   --image IMAGE        deploy this image (in REGION-docker.pkg.dev/PROJECT_ID/ARTIFACT_REPO/
#                        relayer) instead of building one there; a tag is resolved to its
#                        digest, and the job runs the digest.
#   --code-only          ship new code only (what Cloud Build does on every push, as the
#                        deployer account): the job to --image's digest, the functions from
#                        this folder. No API, IAM, secret, topic, bucket or alert is touched.
#   --dry-run            print the exact gcloud commands, run none of them (no cloud needed).
#
# Every command is printed on its own line as `+ gcloud ...` before it runs. Exit codes: 0 done,
# 2 bad settings or arguments (nothing was changed), otherwise that of the gcloud command that
# failed, the last one printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly ROOT
readonly SCOPE="https://www.googleapis.com/auth/cloud-platform"
readonly APIS=(
  artifactregistry.googleapis.com bigquery.googleapis.com cloudbuild.googleapis.com
  cloudfunctions.googleapis.com
  cloudresourcemanager.googleapis.com cloudscheduler.googleapis.com firestore.googleapis.com
  iam.googleapis.com logging.googleapis.com monitoring.googleapis.com pubsub.googleapis.com
  run.googleapis.com secretmanager.googleapis.com storage.googleapis.com
)
# The settings deploy.env may hold; anything else is a typo and stops the script.
readonly SETTINGS=(
  PROJECT_ID REGION NAME CHAIN_ID CONTRACT_ADDRESS START_BLOCK ABI_URI ABI_FILE ABI_BUCKET
  ABI_OBJECT PUBSUB_TOPIC DEADLETTER_TOPIC SUBSCRIPTION CREATE_EXAMPLE_SUBSCRIPTION
  MAX_DELIVERY_ATTEMPTS RELAYER_POLL_INTERVAL RELAYER_RUN_SECONDS SCHEDULE TIME_ZONE RPC_URL_SECRET
  FIRESTORE_DATABASE FIRESTORE_LOCATION RELAYER_BATCH_SIZE RELAYER_CHECKPOINT_INTERVAL
  RELAYER_CONFIRMATIONS RELAYER_CONFIG TASKS PARALLELISM TASK_TIMEOUT MAX_RETRIES CPU MEMORY
  ARTIFACT_REPO STATUS_INVOKERS NOTIFICATION_CHANNELS FAILED_RUNS_THRESHOLD ALERT_WINDOW
  STALE_AFTER RPC_URL_SECRETS RELAY_FUNCTION LAG_ALERT_BLOCKS LAG_ALERT_AFTER FIRESTORE_PITR
  FIRESTORE_BACKUP_RETENTION_DAYS BIGQUERY_SUBSCRIPTION BIGQUERY_DATASET BIGQUERY_LOCATION
  BUILD_TRIGGER_REPOSITORY BUILD_TRIGGER_BRANCH
)
# Log-based distribution metrics of the run summary line (infra/derived.tf value_metrics):
# NAME-<key>, the line's field, the unit, what it is.
readonly VALUE_METRICS=(
  "lag-blocks|lag_blocks|1|Blocks behind the head after each run"
  "lag-seconds|lag_seconds|s|Seconds from the last relayed block's time to each run's end"
  "events-published|events_published|1|Events published by each run"
  "retractions|reorg.retracted|1|Events retracted by each run that met a reorganisation"
  "dead-letters|dead_lettered|1|Logs dead-lettered by each run"
)
# Relayer variables passed through to the job and the status function when set.
readonly PASSTHROUGH=(
  RELAYER_EVENTS RELAYER_HEAD RELAYER_ID RELAYER_LEASE_SECONDS RELAYER_EVENT_TTL_DAYS
  RELAYER_ORDERING RELAYER_MAX_LAG_BLOCKS RELAYER_FACTORY RELAYER_INCLUDE LOG_LEVEL
)

DRY_RUN=0
CODE_ONLY=0
ENV_FILE="deploy.env"
IMAGE=""
IMAGE_REF=""
WORK=""
# The secrets mounted into the job and the functions: variable names and secret ids, RPC_URL
# first; the values given with --rpc-url-file [VAR=]FILE, by variable.
SECRET_VARS=()
SECRET_IDS=()
declare -A SECRET_FILES=()
declare -A SECRET_VALUES=()
ADDRESSES=()
INVOKERS=()
CHANNELS=()
FOLLOW_PLAN=""

die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 2
}

say() { printf '%s\n' "$*"; }

# A command as a shell could read it back: plain words bare, anything else single-quoted.
quoted() {
  local arg out=()
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@,+%^-]+$ ]]; then
      out+=("$arg")
    else
      out+=("'${arg//\'/\'\\\'\'}'")
    fi
  done
  printf '%s' "${out[*]}"
}

show() { printf '+ %s\n' "$(quoted "$@")"; }

run() {
  show "$@"
  if ((DRY_RUN)); then return 0; fi
  "$@"
}

# IAM bindings may name an account created seconds ago, which IAM takes a moment to know.
run_retry() {
  show "$@"
  if ((DRY_RUN)); then return 0; fi
  local attempt
  for attempt in 1 2 3 4 5; do
    if "$@"; then return 0; fi
    if ((attempt < 5)); then
      say "#   retrying in $((attempt * 5)) s"
      sleep $((attempt * 5))
    fi
  done
  return 1
}

# Does the resource exist? The describe command is printed, its output discarded.
check() {
  show "$@"
  if ((DRY_RUN)); then return 0; fi
  "$@" >/dev/null 2>&1
}

# upsert KIND ARGS...: KIND_describe decides between KIND_create and KIND_update (when there
# is one). A dry run cannot know, so it prints both branches.
upsert() {
  local kind=$1
  shift
  if ((DRY_RUN)); then
    "${kind}_describe" "$@"
    say "#   if absent:"
    "${kind}_create" "$@"
    if declare -F "${kind}_update" >/dev/null; then
      say "#   if present:"
      "${kind}_update" "$@"
    else
      say "#   if present: nothing to change"
    fi
  elif "${kind}_describe" "$@"; then
    if declare -F "${kind}_update" >/dev/null; then
      "${kind}_update" "$@"
    else
      say "#   exists"
    fi
  else
    "${kind}_create" "$@"
  fi
}

step() { printf '\n# --- %s\n' "$*"; }

# A file handed to gcloud (--config-from-file, --policy-from-file); a dry run shows it.
write_file() {
  local path="$WORK/$1" line
  cat >"$path"
  if ((DRY_RUN)); then
    say "#   $1:"
    while IFS= read -r line; do say "#   | $line"; done <"$path"
  fi
}

json_str() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

# An alert's conditions, one per resource type the runs log on (run_resources): `$1 TYPE WHAT`
# prints each one's JSON.
per_run_resource() {
  local i sep=""
  printf '['
  for i in "${!RUN_TYPES[@]}"; do
    printf '%s' "$sep"
    "$1" "${RUN_TYPES[i]}" "${RUN_WHATS[i]}"
    sep=", "
  done
  printf ']'
}

# The aggregation of an alert on the runs counter: a sum per relayer over PERIOD.
per_relayer_sum() {
  printf '[{"alignmentPeriod": "%s", "perSeriesAligner": "ALIGN_SUM", ' "$1"
  printf '"crossSeriesReducer": "REDUCE_SUM", "groupByFields": ["metric.label.relayer_id"]}]'
}

json_list() {
  local item sep="" text="["
  for item in "$@"; do
    text+="$sep$(json_str "$item")"
    sep=", "
  done
  printf '%s]' "$text"
}

split_commas() {
  local -n into=$1
  local item _items
  into=()
  IFS=',' read -r -a _items <<<"$2"
  for item in "${_items[@]}"; do
    item="${item#"${item%%[![:space:]]*}"}"
    item="${item%"${item##*[![:space:]]}"}"
    if [[ -n $item ]]; then into+=("$item"); fi
  done
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------------------
# Arguments and settings
# ---------------------------------------------------------------------------------------------

parse_args() {
  while (($#)); do
    case $1 in
      --dry-run) DRY_RUN=1 ;;
      --env-file) ENV_FILE=${2:?--env-file needs a path}; shift ;;
      --env-file=*) ENV_FILE=${1#*=} ;;
      --rpc-url-file) rpc_url_file "${2:?--rpc-url-file needs a path or -}"; shift ;;
      --rpc-url-file=*) rpc_url_file "${1#*=}" ;;
      --image) IMAGE=${2:?--image needs an image}; shift ;;
      --image=*) IMAGE=${1#*=} ;;
      --code-only) CODE_ONLY=1 ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
  done
}

# --rpc-url-file FILE is RPC_URL's value, --rpc-url-file VAR=FILE that of VAR's secret.
rpc_url_file() {
  if [[ $1 =~ ^([A-Z_][A-Z0-9_]*)=(.+)$ ]]; then
    SECRET_FILES[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  else
    SECRET_FILES[RPC_URL]=$1
  fi
}

is_setting() {
  local key=$1 known
  for known in "${SETTINGS[@]}" "${PASSTHROUGH[@]}"; do
    if [[ $key == "$known" ]]; then return 0; fi
  done
  return 1
}

load_env() {
  local file=$1 line key value n=0
  [[ -f $file ]] || die "settings file $file not found: copy deploy.env.example to deploy.env"
  for key in "${SETTINGS[@]}" "${PASSTHROUGH[@]}"; do unset "$key"; done
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    line=${line%$'\r'}
    if [[ $line =~ ^[[:space:]]*(#|$) ]]; then continue; fi
    if [[ ! $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
      die "$file:$n: expected KEY=VALUE"
    fi
    key=${BASH_REMATCH[2]}
    value=${BASH_REMATCH[3]}
    if [[ $value =~ ^\"(.*)\"[[:space:]]*$ || $value =~ ^\'(.*)\'[[:space:]]*$ ]]; then
      value=${BASH_REMATCH[1]}
    else
      value=${value%%[[:space:]]#*}
      value=${value%"${value##*[![:space:]]}"}
    fi
    if [[ $key == RPC_URL ]]; then
      die "$file:$n: the RPC URL never goes in the settings file: it carries API keys. Set RPC_URL_SECRET and pass the value with --rpc-url-file"
    fi
    if [[ $key == RPC_WS_URL ]]; then
      die "$file:$n: RPC_WS_URL never goes in the settings file: it carries API keys. Set RPC_URL_SECRETS=RPC_WS_URL=SECRET and pass the value with --rpc-url-file RPC_WS_URL=FILE"
    fi
    is_setting "$key" || die "$file:$n: unknown setting $key (see deploy.env.example)"
    printf -v "$key" '%s' "$value"
  done <"$file"
}

require() {
  local key
  for key in "$@"; do
    [[ -n ${!key:-} ]] || die "$key is not set in $ENV_FILE: it is required (see deploy.env.example)"
  done
}

integer() {
  local key=$1 low=$2
  if [[ ! ${!key} =~ ^[0-9]+$ ]] || ((10#${!key} < low)); then
    die "$key=${!key} is invalid: expected an integer >= $low"
  fi
  printf -v "$key" '%d' "$((10#${!key}))"
}

validate() {
  require PROJECT_ID REGION CHAIN_ID START_BLOCK PUBSUB_TOPIC
  : "${NAME:=relayer}" "${RELAYER_POLL_INTERVAL:=60}" "${TIME_ZONE:=Etc/UTC}"
  : "${DEADLETTER_TOPIC:=$PUBSUB_TOPIC-deadletter}" "${SUBSCRIPTION:=$PUBSUB_TOPIC-example}"
  : "${CREATE_EXAMPLE_SUBSCRIPTION:=true}" "${MAX_DELIVERY_ATTEMPTS:=10}"
  : "${RPC_URL_SECRET:=$NAME-rpc-url}" "${FIRESTORE_DATABASE:=$NAME-state}"
  : "${FIRESTORE_LOCATION:=$REGION}" "${RELAYER_BATCH_SIZE:=1000}"
  : "${RELAYER_CHECKPOINT_INTERVAL:=100}" "${RELAYER_CONFIRMATIONS:=12}" "${TASKS:=1}"
  : "${PARALLELISM:=0}" "${MAX_RETRIES:=1}" "${CPU:=1}" "${RELAYER_RUN_SECONDS:=0}"
  : "${MEMORY:=512Mi}" "${ARTIFACT_REPO:=relayer}" "${ABI_BUCKET:=$PROJECT_ID-$NAME-abi}"
  : "${ABI_OBJECT:=abi/contract.json}" "${FAILED_RUNS_THRESHOLD:=0}" "${RELAY_FUNCTION:=false}"
  : "${FIRESTORE_PITR:=true}" "${FIRESTORE_BACKUP_RETENTION_DAYS:=7}" "${BUILD_TRIGGER_BRANCH:=main}"
  : "${BIGQUERY_SUBSCRIPTION:=false}" "${BIGQUERY_DATASET:=${NAME//-/_}_events}"
  : "${BIGQUERY_LOCATION:=$REGION}"

  [[ $NAME =~ ^[a-z][a-z0-9-]{1,19}$ ]] ||
    die "NAME=$NAME is invalid: expected 2-20 lowercase letters, digits or '-', starting with a letter"
  [[ $PROJECT_ID =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
    die "PROJECT_ID=$PROJECT_ID is invalid: expected a Google Cloud project id"
  integer CHAIN_ID 1
  integer START_BLOCK 0
  integer RELAYER_RUN_SECONDS 0
  # Follow mode (RELAYER_RUN_SECONDS > 0) looks every RELAYER_POLL_INTERVAL inside a run, so
  # any interval goes; one-batch runs are the schedule's ticks, a minute at least.
  if ((RELAYER_RUN_SECONDS > 0)); then
    integer RELAYER_POLL_INTERVAL 1
  else
    integer RELAYER_POLL_INTERVAL 60
  fi
  integer RELAYER_BATCH_SIZE 1
  integer RELAYER_CHECKPOINT_INTERVAL 1
  integer RELAYER_CONFIRMATIONS 0
  integer TASKS 1
  integer PARALLELISM 0
  integer MAX_RETRIES 0
  integer MAX_DELIVERY_ATTEMPTS 5
  integer FAILED_RUNS_THRESHOLD 0
  # A database of the relayer's own by default: the grants are conditioned on its name, and
  # "(default)" is usually shared with other applications.
  [[ $FIRESTORE_DATABASE == "(default)" || $FIRESTORE_DATABASE =~ ^[a-z][a-z0-9-]{2,61}[a-z0-9]$ ]] ||
    die "FIRESTORE_DATABASE=$FIRESTORE_DATABASE is invalid: expected 4-63 lowercase letters, digits or '-', starting with a letter and not ending with '-', or (default)"
  [[ $RELAY_FUNCTION == true || $RELAY_FUNCTION == false ]] ||
    die "RELAY_FUNCTION=$RELAY_FUNCTION is invalid: expected true or false"
  [[ $FIRESTORE_PITR == true || $FIRESTORE_PITR == false ]] ||
    die "FIRESTORE_PITR=$FIRESTORE_PITR is invalid: expected true or false"
  integer FIRESTORE_BACKUP_RETENTION_DAYS 0
  ((FIRESTORE_BACKUP_RETENTION_DAYS <= 7)) ||
    die "FIRESTORE_BACKUP_RETENTION_DAYS=$FIRESTORE_BACKUP_RETENTION_DAYS is invalid: expected 0 (no daily backup) to 7 days (the most Firestore keeps a daily backup)"
  [[ $BIGQUERY_SUBSCRIPTION == true || $BIGQUERY_SUBSCRIPTION == false ]] ||
    die "BIGQUERY_SUBSCRIPTION=$BIGQUERY_SUBSCRIPTION is invalid: expected true or false"
  [[ $BIGQUERY_DATASET =~ ^[A-Za-z0-9_]{1,1024}$ ]] ||
    die "BIGQUERY_DATASET=$BIGQUERY_DATASET is invalid: expected letters, digits and '_' only"
  if [[ -n ${BUILD_TRIGGER_REPOSITORY:-} ]]; then
    [[ $BUILD_TRIGGER_REPOSITORY =~ ^([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)$ ]] ||
      die "BUILD_TRIGGER_REPOSITORY=$BUILD_TRIGGER_REPOSITORY is invalid: expected owner/name of a GitHub repository"
    TRIGGER_OWNER=${BASH_REMATCH[1]}
    TRIGGER_REPO=${BASH_REMATCH[2]}
  fi
  [[ $BUILD_TRIGGER_BRANCH =~ ^[A-Za-z0-9._/-]+$ ]] ||
    die "BUILD_TRIGGER_BRANCH=$BUILD_TRIGGER_BRANCH is invalid: expected a branch name (letters, digits, '.', '_', '/', '-')"
  # Pushes to that branch only: the name matched whole, its dots literal.
  TRIGGER_BRANCH_PATTERN="^${BUILD_TRIGGER_BRANCH//./\\.}\$"
  secret_settings
  local address
  split_commas ADDRESSES "${CONTRACT_ADDRESS:-}"
  ((${#ADDRESSES[@]})) || [[ -n ${RELAYER_FACTORY:-} ]] ||
    die "CONTRACT_ADDRESS is empty: expected one or more addresses (or RELAYER_FACTORY: its children)"
  for address in "${ADDRESSES[@]}"; do
    [[ $address =~ ^0x[0-9a-fA-F]{40}$ ]] ||
      die "CONTRACT_ADDRESS has $address: expected 0x followed by 40 hex digits, comma-separated"
  done
  if ((RELAYER_RUN_SECONDS > 0)); then
    follow_settings
  else
    : "${TASK_TIMEOUT:=300s}"
    SCHEDULE_DESCRIPTION="Runs the $NAME relay job every $RELAYER_POLL_INTERVAL s"
    SCHEDULE_STEP="a run every $RELAYER_POLL_INTERVAL s"
    STALE_BASE=$RELAYER_POLL_INTERVAL
    if [[ -z ${SCHEDULE:-} ]]; then
      ((RELAYER_POLL_INTERVAL % 60 == 0 && RELAYER_POLL_INTERVAL < 3600)) ||
        die "RELAYER_POLL_INTERVAL=$RELAYER_POLL_INTERVAL is not a whole number of minutes below an hour: set SCHEDULE"
      if ((RELAYER_POLL_INTERVAL == 60)); then
        SCHEDULE="* * * * *"
      else
        SCHEDULE="*/$((RELAYER_POLL_INTERVAL / 60)) * * * *"
      fi
    fi
  fi
  # Alerts (as infra/derived.tf). A healthy relayer logs a successful summary every STALE_BASE
  # seconds (a run; in follow mode a hand-over). A run killed without one (an OOM kill) keeps
  # its lease until it expires: from the last success, the next comes at worst after a period,
  # the lease, another period and a window. The stale alert waits that out plus a minute, so
  # one crash does not page, and never less than 3 periods (what status calls stale);
  # Monitoring's floor for an absence is 120 s.
  if [[ -n ${RELAYER_LEASE_SECONDS:-} ]]; then integer RELAYER_LEASE_SECONDS 1; fi
  LEASE=${RELAYER_LEASE_SECONDS:-300}
  if [[ -n ${STALE_AFTER:-} ]]; then
    integer STALE_AFTER 120
  else
    local gap=$((LEASE + 2 * STALE_BASE + RELAYER_RUN_SECONDS + 60))
    if ((gap < 3 * STALE_BASE)); then gap=$((3 * STALE_BASE)); fi
    STALE_AFTER=$(((gap + 59) / 60 * 60))
    if ((STALE_AFTER < 120)); then STALE_AFTER=120; fi
  fi
  # Failed runs are counted over at least 3 periods, so that a window always holds runs.
  if [[ -n ${ALERT_WINDOW:-} ]]; then
    integer ALERT_WINDOW 60
  else
    ALERT_WINDOW=$(((STALE_BASE * 3 + 59) / 60 * 60))
    if ((ALERT_WINDOW < 600)); then ALERT_WINDOW=600; fi
  fi
  # The lag alert (as infra/derived.tf): the limit status applies (RELAYER_MAX_LAG_BLOCKS, else
  # the confirmations + one batch: a relayer further behind cannot catch up in its next run),
  # averaged over ALERT_WINDOW, for as long as the stale alert waits (what one crash costs).
  if [[ -n ${LAG_ALERT_BLOCKS:-} ]]; then
    integer LAG_ALERT_BLOCKS 1
  elif [[ -n ${RELAYER_MAX_LAG_BLOCKS:-} ]]; then
    integer RELAYER_MAX_LAG_BLOCKS 1
    LAG_ALERT_BLOCKS=$RELAYER_MAX_LAG_BLOCKS
  else
    LAG_ALERT_BLOCKS=$((RELAYER_CONFIRMATIONS + RELAYER_BATCH_SIZE))
  fi
  if [[ -n ${LAG_ALERT_AFTER:-} ]]; then
    integer LAG_ALERT_AFTER 60
    ((LAG_ALERT_AFTER % 60 == 0)) ||
      die "LAG_ALERT_AFTER=$LAG_ALERT_AFTER is invalid: expected whole minutes in seconds (60, 120, ...): Monitoring's rule for a threshold's duration"
  else
    LAG_ALERT_AFTER=$STALE_AFTER
  fi
  TASK_TIMEOUT_S=$(seconds_of TASK_TIMEOUT) || exit 2
  if [[ $RELAY_FUNCTION == true ]] && ((TASK_TIMEOUT_S > 1800)); then
    die "RELAY_FUNCTION=true with TASK_TIMEOUT=$TASK_TIMEOUT: Cloud Scheduler waits at most 1800 s for an HTTP answer; lower TASK_TIMEOUT (or RELAYER_RUN_SECONDS) or use the job (RELAY_FUNCTION=false)"
  fi
  [[ $CREATE_EXAMPLE_SUBSCRIPTION == true || $CREATE_EXAMPLE_SUBSCRIPTION == false ]] ||
    die "CREATE_EXAMPLE_SUBSCRIPTION=$CREATE_EXAMPLE_SUBSCRIPTION is invalid: expected true or false"

  if [[ -n ${ABI_FILE:-} ]]; then
    [[ -z ${ABI_URI:-} ]] || die "set ABI_URI or ABI_FILE, not both"
    if [[ $ABI_FILE != /* ]]; then ABI_FILE="$(cd "$(dirname "$ENV_FILE")" && pwd)/$ABI_FILE"; fi
    [[ -f $ABI_FILE ]] || die "ABI_FILE=$ABI_FILE: no such file"
    ABI_URI="gs://$ABI_BUCKET/$ABI_OBJECT"
  fi
  [[ -n ${ABI_URI:-} ]] || die "ABI_URI is not set in $ENV_FILE: set ABI_URI (gs://...) or ABI_FILE"
  [[ $ABI_URI =~ ^gs://[^/]+/.+ ]] ||
    die "ABI_URI=$ABI_URI is invalid: expected gs://bucket/object.json (the job cannot read local files)"
  if [[ -n ${RELAYER_CONFIG:-} && ! $RELAYER_CONFIG =~ ^gs://[^/]+/.+ ]]; then
    die "RELAYER_CONFIG=$RELAYER_CONFIG is invalid: expected gs://bucket/object"
  fi
  split_commas INVOKERS "${STATUS_INVOKERS:-}"
  split_commas CHANNELS "${NOTIFICATION_CHANNELS:-}"
  local member
  for member in "${INVOKERS[@]}"; do
    [[ $member != allUsers && $member != allAuthenticatedUsers ]] ||
      die "STATUS_INVOKERS has $member: the status function is not public"
  done

  JOB_SA="$NAME-job@$PROJECT_ID.iam.gserviceaccount.com"
  SCHEDULER_SA="$NAME-scheduler@$PROJECT_ID.iam.gserviceaccount.com"
  STATUS_SA="$NAME-status@$PROJECT_ID.iam.gserviceaccount.com"
  DEPLOYER_SA="$NAME-deployer@$PROJECT_ID.iam.gserviceaccount.com"
  STATUS_FUNCTION="$NAME-status"
  RELAY_FUNCTION_NAME="$NAME-relay"
  run_resources
  # The one repository images come from (Cloud Build pushes there too): the job runs a digest.
  IMAGE_REPO="$REGION-docker.pkg.dev/$PROJECT_ID/$ARTIFACT_REPO/relayer"
  if [[ -n $IMAGE && $IMAGE != "$IMAGE_REPO"[:@]* ]]; then
    die "--image $IMAGE is not an image of $IMAGE_REPO (REGION, PROJECT_ID and ARTIFACT_REPO of $ENV_FILE): push it there, or fix the settings (cloudbuild.yaml's _REGION must be REGION)"
  fi
  if ((CODE_ONLY)) && [[ -z $IMAGE ]]; then
    die "--code-only needs --image: the image to deploy (pushed to $IMAGE_REPO)"
  fi
  METRIC="$NAME-runs"
  DASHBOARD="$NAME: lag and activity"
  BIGQUERY_TABLE="$PROJECT_ID:$BIGQUERY_DATASET.events"
  DATABASE_NAME="projects/$PROJECT_ID/databases/$FIRESTORE_DATABASE"
  build_env
}

# Where runs log (as infra/derived.tf run_resources): the job and, with the relay function,
# the function, which Cloud Functions gen2 runs as the Cloud Run service of its name (its lines
# are a cloud_run_revision's). RUN_LINES is a Logging query of every run's lines (two resources
# bracketed each and together: it never depends on how Logging ranks AND and OR); the alerts
# on failures and lag have a condition per resource type (RUN_TYPES, RUN_WHATS), and the
# no-progress alert watches where the schedule starts runs (SCHEDULED_TYPE).
run_resources() {
  local job="resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"$NAME\""
  RUN_TYPES=(cloud_run_job)
  RUN_WHATS=("the job")
  RUN_LINES=$job
  SCHEDULED_TYPE=cloud_run_job
  SCHEDULED_WHAT="the job"
  if [[ $RELAY_FUNCTION == true ]]; then
    RUN_TYPES+=(cloud_run_revision)
    RUN_WHATS+=("the relay function")
    RUN_LINES="(($job) OR (resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"$RELAY_FUNCTION_NAME\"))"
    # The job's schedule is paused: the job runs by hand only.
    SCHEDULED_TYPE=cloud_run_revision
    SCHEDULED_WHAT="the relay function"
  fi
}

# The value of a duration setting (300, 300s, 10m, 1h) in seconds.
seconds_of() {
  local key=$1 value
  [[ ${!key} =~ ^([0-9]+)(s|m|h)?$ ]] ||
    die "$key=${!key} is invalid: expected seconds (300 or 300s), minutes (10m) or hours (1h)"
  value=$((10#${BASH_REMATCH[1]}))
  case ${BASH_REMATCH[2]} in
    m) value=$((value * 60)) ;;
    h) value=$((value * 3600)) ;;
  esac
  printf '%d' "$value"
}

# RPC_URL from RPC_URL_SECRET, and each relayer's own (RPC_URL_ENV: VAR in RELAYER_CONFIG)
# from RPC_URL_SECRETS=VAR=SECRET,...: mounted into the job and the functions as VAR.
secret_settings() {
  local item var secret items=()
  SECRET_VARS=(RPC_URL)
  SECRET_IDS=("$RPC_URL_SECRET")
  split_commas items "${RPC_URL_SECRETS:-}"
  for item in "${items[@]}"; do
    [[ $item =~ ^([A-Z_][A-Z0-9_]*)=([A-Za-z0-9_-]{1,255})$ ]] ||
      die "RPC_URL_SECRETS has $item: expected VAR=SECRET (VAR the RPC_URL_ENV of a relayer of RELAYER_CONFIG, SECRET a Secret Manager secret id), comma-separated"
    var=${BASH_REMATCH[1]}
    secret=${BASH_REMATCH[2]}
    [[ $var != RPC_URL ]] || die "RPC_URL_SECRETS has RPC_URL: its secret is RPC_URL_SECRET"
    [[ " ${SECRET_VARS[*]} " != *" $var "* ]] || die "RPC_URL_SECRETS names $var twice"
    SECRET_VARS+=("$var")
    SECRET_IDS+=("$secret")
  done
  for var in "${!SECRET_FILES[@]}"; do
    [[ " ${SECRET_VARS[*]} " == *" $var "* ]] ||
      die "--rpc-url-file $var=...: $var is not in RPC_URL_SECRETS"
  done
  local mounts=() i
  for i in "${!SECRET_VARS[@]}"; do mounts+=("${SECRET_VARS[i]}=${SECRET_IDS[i]}:latest"); done
  SECRET_MOUNTS=$(IFS=,; printf '%s' "${mounts[*]}")
}

# Follow mode: the schedule, the task timeout and the lease follow from RELAYER_RUN_SECONDS.
# A run follows the chain for its window; the next scheduled run takes over at the window's
# end (CONTRACT §7.7), so the schedule's period must reach a window's end within a poll
# interval, and Cloud Run must let a run finish its window, its last commit and a hand-over.
follow_settings() {
  local window=$RELAYER_RUN_SECONDS poll=$RELAYER_POLL_INTERVAL minutes period handover need
  local what="RELAYER_RUN_SECONDS=$window with RELAYER_POLL_INTERVAL=$poll"
  if [[ -z ${SCHEDULE:-} ]]; then
    # The window rounded up to whole minutes, or down when a run then still finds the
    # previous one about to end (within RELAYER_POLL_INTERVAL + 10 s) and waits for it: a
    # window a little longer than the period (70 s every minute) hands over without a gap.
    minutes=$(((window + 59) / 60))
    if ((minutes * 60 > window + poll && window >= 60 && window - window / 60 * 60 <= poll + 10)); then
      minutes=$((window / 60))
    fi
    ((minutes <= 60 && 60 % minutes == 0)) ||
      die "$what: a window of $minutes minutes cannot be a Cloud Scheduler period (cron */N needs N dividing an hour): make RELAYER_RUN_SECONDS at most 3600 s and its minutes one of 1-6, 10, 12, 15, 20, 30, 60"
    case $minutes in
      1) SCHEDULE="* * * * *" ;;
      60) SCHEDULE="0 * * * *" ;;
      *) SCHEDULE="*/$minutes * * * *" ;;
    esac
  elif [[ $SCHEDULE =~ ^\*[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*$ ]]; then
    minutes=1
  elif [[ $SCHEDULE =~ ^\*/([0-9]+)[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*$ ]] &&
    ((10#${BASH_REMATCH[1]} >= 1 && 60 % 10#${BASH_REMATCH[1]} == 0)); then
    minutes=$((10#${BASH_REMATCH[1]}))
  elif [[ $SCHEDULE =~ ^[0-9]+[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*[[:space:]]+\*$ ]]; then
    minutes=60
  else
    die "SCHEDULE=$SCHEDULE cannot be checked against $what: in follow mode use '* * * * *', '*/N * * * *' (N dividing 60) or 'M * * * *', or unset SCHEDULE to derive it"
  fi
  period=$((minutes * 60))
  # The first scheduled run that takes over: the first one no earlier than
  # RELAYER_POLL_INTERVAL + 10 s before the window's end (an earlier one skips; this one
  # waits for the hand-over, docs/CONTRACT.md §7.7), so at or after window - poll - 10.
  local earliest=$((window - poll - 10 > 0 ? window - poll - 10 : 0))
  handover=$(((earliest + period - 1) / period * period))
  ((handover > 0)) || handover=$period
  ((handover <= window + poll)) ||
    die "SCHEDULE='$SCHEDULE' (every $period s) does not fit $what: a window ends $((handover - window)) s before the next scheduled run takes over, longer than RELAYER_POLL_INTERVAL, so coverage has gaps; make RELAYER_RUN_SECONDS a whole number of minutes (at most RELAYER_POLL_INTERVAL short of one, or up to RELAYER_POLL_INTERVAL + 10 s longer: the next run then waits for the hand-over), or set SCHEDULE to match"
  # Start-up, the last look, the commit and a hand-over wait (RELAYER_POLL_INTERVAL + 10 s).
  need=$((window + poll + 60))
  if [[ -n ${TASK_TIMEOUT:-} ]]; then
    local given
    if [[ $TASK_TIMEOUT =~ ^([0-9]+)(s|m|h)?$ ]]; then
      given=$((10#${BASH_REMATCH[1]}))
      case ${BASH_REMATCH[2]} in
        m) given=$((given * 60)) ;;
        h) given=$((given * 3600)) ;;
      esac
    else
      die "TASK_TIMEOUT=$TASK_TIMEOUT is invalid: expected seconds (300 or 300s), minutes (10m) or hours (1h)"
    fi
    ((given >= need)) ||
      die "TASK_TIMEOUT=$TASK_TIMEOUT is shorter than the follow window: $what needs RELAYER_RUN_SECONDS + RELAYER_POLL_INTERVAL + 60 s (start-up, last commit, hand-over) = $need s, or Cloud Run kills runs inside their window; raise TASK_TIMEOUT (or unset it to derive it) or lower RELAYER_RUN_SECONDS"
    TASK_TIMEOUT="${given}s"
  else
    TASK_TIMEOUT="$((need > 300 ? need : 300))s"
  fi
  # A follower renews its lease at every look: it must outlast two poll intervals.
  if [[ -n ${RELAYER_LEASE_SECONDS:-} ]]; then
    integer RELAYER_LEASE_SECONDS 1
    ((RELAYER_LEASE_SECONDS > 2 * poll)) ||
      die "RELAYER_LEASE_SECONDS=$RELAYER_LEASE_SECONDS is too short for follow mode ($what): it must exceed 2 x RELAYER_POLL_INTERVAL = $((2 * poll)); raise RELAYER_LEASE_SECONDS or unset it"
  else
    RELAYER_LEASE_SECONDS=$((3 * poll > 300 ? 3 * poll : 300))
  fi
  SCHEDULE_DESCRIPTION="Runs the $NAME relay job every $period s, each run following the chain for $window s"
  SCHEDULE_STEP="a run every $period s, each following for $window s"
  STALE_BASE=$((handover > poll ? handover : poll))
  FOLLOW_PLAN="# Follow mode: windows of $window s looking every $poll s; schedule '$SCHEDULE' (every $period s, hand-over every $handover s); task timeout $TASK_TIMEOUT; RELAYER_LEASE_SECONDS=$RELAYER_LEASE_SECONDS"
}

# The job's and the status function's environment (CONTRACT §1), in gcloud's ^|^ list syntax
# so that comma-separated values (several contracts) stay whole.
build_env() {
  local pairs=(
    "CHAIN_ID=$CHAIN_ID" "ABI_URI=$ABI_URI" "PUBSUB_PROJECT_ID=$PROJECT_ID" "PUBSUB_TOPIC=$PUBSUB_TOPIC"
    "START_BLOCK=$START_BLOCK" "RELAYER_BATCH_SIZE=$RELAYER_BATCH_SIZE"
    "RELAYER_CHECKPOINT_INTERVAL=$RELAYER_CHECKPOINT_INTERVAL"
    "RELAYER_POLL_INTERVAL=$RELAYER_POLL_INTERVAL" "RELAYER_CONFIRMATIONS=$RELAYER_CONFIRMATIONS"
    "RELAYER_DEADLETTER_TOPIC=$DEADLETTER_TOPIC" "FIRESTORE_DATABASE=$FIRESTORE_DATABASE"
    "LOG_FORMAT=json"
  )
  if ((${#ADDRESSES[@]})); then pairs+=("CONTRACT_ADDRESS=$(IFS=,; printf '%s' "${ADDRESSES[*]}")"); fi
  if ((RELAYER_RUN_SECONDS > 0)); then pairs+=("RELAYER_RUN_SECONDS=$RELAYER_RUN_SECONDS"); fi
  local key pair
  if [[ -n ${RELAYER_CONFIG:-} ]]; then pairs+=("RELAYER_CONFIG=$RELAYER_CONFIG"); fi
  for key in "${PASSTHROUGH[@]}"; do
    if [[ -n ${!key:-} ]]; then pairs+=("$key=${!key}"); fi
  done
  for pair in "${pairs[@]}"; do
    [[ $pair != *"|"* ]] || die "${pair%%=*} contains '|', which this script cannot pass"
  done
  RUNTIME_ENV="^|^$(IFS='|'; printf '%s' "${pairs[*]}")"
}

# The RPC URLs, from --rpc-url-file [VAR=]FILE or (on a terminal, when a secret must be
# created) a prompt. Kept in variables and piped to gcloud; never printed, never on a command
# line.
read_rpc_urls() {
  local var file value
  for var in "${!SECRET_FILES[@]}"; do
    file=${SECRET_FILES[$var]}
    if [[ $file == - ]]; then
      value=$(cat)
    else
      [[ -r $file ]] || die "--rpc-url-file $file: cannot read it"
      value=$(<"$file")
    fi
    SECRET_VALUES[$var]=$(checked_rpc_url "$var" "$value") || exit 2
  done
}

# The value trimmed, or exit 2 naming the variable (never the value).
checked_rpc_url() {
  local value=${2%$'\r'}
  value="${value#"${value%%[![:space:]]*}"}"
  value="${value%"${value##*[![:space:]]}"}"
  [[ -n $value ]] || die "the RPC URL for $1 is empty"
  if [[ $1 == *WS_URL ]]; then # RPC_WS_URL: the one websocket endpoint of follow mode
    [[ $value =~ ^wss?://[^,[:space:]]+$ ]] ||
      die "the RPC URL for $1 does not start with ws:// or wss:// (one URL: a websocket endpoint)"
  else
    [[ $value =~ ^https?:// ]] ||
      die "the RPC URL for $1 does not start with http:// or https:// (several URLs: comma-separated)"
  fi
  printf '%s' "$value"
}

prompt_rpc_url() {
  local var=$1 secret=$2 value
  if [[ -n ${SECRET_VALUES[$var]:-} ]]; then return 0; fi
  [[ -t 0 ]] || die "secret $secret does not exist: pass its value with --rpc-url-file $(file_arg "$var")"
  IFS= read -r -s -p "RPC URL for secret $secret ($var, not shown): " value
  printf '\n' >&2
  SECRET_VALUES[$var]=$(checked_rpc_url "$var" "$value") || exit 2
}

# How --rpc-url-file names a variable's file.
file_arg() {
  if [[ $1 == RPC_URL ]]; then printf 'FILE (or - for standard input)'; else printf '%s=FILE' "$1"; fi
}

# A new secret needs its value: find out before changing anything.
preflight_secrets() {
  if [[ -t 0 ]]; then return 0; fi
  local i var secret
  for i in "${!SECRET_VARS[@]}"; do
    var=${SECRET_VARS[i]}
    secret=${SECRET_IDS[i]}
    if [[ -n ${SECRET_VALUES[$var]:-} ]]; then continue; fi
    if ! check gcloud secrets describe "$secret" --project="$PROJECT_ID"; then
      die "secret $secret does not exist (or cannot be read): pass its value with --rpc-url-file $(file_arg "$var")"
    fi
  done
}

# with_secret VAR SECRET COMMAND...: pipes VAR's RPC URL to a gcloud command reading
# --data-file=-.
with_secret() {
  local var=$1 secret=$2
  shift 2
  if ((DRY_RUN)); then
    if [[ -n ${SECRET_FILES[$var]:-} ]]; then
      say "#   standard input: the RPC URL for $var from --rpc-url-file (not shown)"
    else
      say "#   standard input: the RPC URL for $var, asked for on the terminal (not shown)"
    fi
    show "$@"
    return 0
  fi
  prompt_rpc_url "$var" "$secret"
  show "$@"
  printf '%s' "${SECRET_VALUES[$var]}" | "$@"
}

# The image by digest: a tag is resolved through Artifact Registry, so that the job runs what
# was pushed even if the tag moves later.
resolve_image() {
  if [[ $IMAGE =~ @sha256:[0-9a-f]{64}$ ]]; then
    IMAGE_REF=$IMAGE
    return 0
  fi
  local digest="sha256:DIGEST"
  show gcloud artifacts docker images describe "$IMAGE" --project="$PROJECT_ID" \
    --format="value(image_summary.digest)"
  if ((!DRY_RUN)); then
    digest=$(gcloud artifacts docker images describe "$IMAGE" --project="$PROJECT_ID" \
      --format="value(image_summary.digest)")
    [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || {
      printf 'deploy.sh: %s\n' "no digest for $IMAGE (got '$digest')" >&2
      exit 1
    }
  fi
  IMAGE_REF="$IMAGE_REPO@$digest"
  say "#   $IMAGE is $IMAGE_REF"
}

# ---------------------------------------------------------------------------------------------
# Resources: KIND_describe / KIND_create / KIND_update for upsert
# ---------------------------------------------------------------------------------------------

sa_describe() { check gcloud iam service-accounts describe "$1@$PROJECT_ID.iam.gserviceaccount.com" --project="$PROJECT_ID"; }
sa_create() { run gcloud iam service-accounts create "$1" --project="$PROJECT_ID" --display-name="$2"; }

repo_describe() { check gcloud artifacts repositories describe "$ARTIFACT_REPO" --project="$PROJECT_ID" --location="$REGION"; }
repo_create() {
  run gcloud artifacts repositories create "$ARTIFACT_REPO" --project="$PROJECT_ID" \
    --location="$REGION" --repository-format=docker --description="Images of the EVM relayer job"
}

topic_describe() { check gcloud pubsub topics describe "$1" --project="$PROJECT_ID"; }
topic_create() { run gcloud pubsub topics create "$1" --project="$PROJECT_ID"; }

# Keeps what reaches the dead-letter topic: a topic without a subscription drops messages.
hold_describe() { check gcloud pubsub subscriptions describe "$DEADLETTER_TOPIC-sub" --project="$PROJECT_ID"; }
hold_create() {
  run gcloud pubsub subscriptions create "$DEADLETTER_TOPIC-sub" --project="$PROJECT_ID" \
    --topic="$DEADLETTER_TOPIC" --ack-deadline=60 --message-retention-duration=7d \
    --expiration-period=never
}

# Ordered delivery cannot be switched on later: an existing subscription keeps its ordering.
example_describe() { check gcloud pubsub subscriptions describe "$SUBSCRIPTION" --project="$PROJECT_ID"; }
example_create() {
  run gcloud pubsub subscriptions create "$SUBSCRIPTION" --project="$PROJECT_ID" \
    --topic="$PUBSUB_TOPIC" --enable-message-ordering --ack-deadline=60 \
    --message-retention-duration=7d --expiration-period=never --min-retry-delay=10s \
    --max-retry-delay=600s --dead-letter-topic="$DEADLETTER_TOPIC" \
    --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
}
example_update() {
  run gcloud pubsub subscriptions update "$SUBSCRIPTION" --project="$PROJECT_ID" \
    --ack-deadline=60 --message-retention-duration=7d --expiration-period=never \
    --min-retry-delay=10s --max-retry-delay=600s --dead-letter-topic="$DEADLETTER_TOPIC" \
    --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
}

database_describe() { check gcloud firestore databases describe --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID"; }
database_create() {
  local pitr=()
  if [[ $FIRESTORE_PITR == true ]]; then pitr=(--enable-pitr); fi
  run gcloud firestore databases create --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
    --location="$FIRESTORE_LOCATION" --type=firestore-native "${pitr[@]}"
}
# Point-in-time recovery: every version of the last 7 days stays readable, at any minute.
database_update() {
  local flag=--no-enable-pitr
  if [[ $FIRESTORE_PITR == true ]]; then flag=--enable-pitr; fi
  run gcloud firestore databases update --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" "$flag"
}

# The relayer's own database, as Terraform's (create_firestore_database): NAME-state, the one
# made by default (by this run or an earlier one), or one this run creates. Recovery and backups
# are set there only. A database that exists under another name ("(default)" is usually shared
# with other applications) is left as it is, and the commands are printed for its owner.
firestore_database() {
  if [[ $FIRESTORE_DATABASE == "$NAME-state" ]]; then
    upsert database
    database_backups
  elif ((DRY_RUN)); then
    database_describe
    say "#   if absent (created here: the relayer's own):"
    database_create
    database_backups
    say "#   if present:"
    recovery_advice
  elif database_describe; then
    recovery_advice
  else
    database_create
    database_backups
  fi
}

database_backups() {
  if ((FIRESTORE_BACKUP_RETENTION_DAYS > 0)); then
    backup_schedule_upsert
  else
    say "# FIRESTORE_BACKUP_RETENTION_DAYS=0: no daily backup (a schedule made before stays: gcloud firestore backups schedules list --database=$FIRESTORE_DATABASE)"
  fi
}

# What FIRESTORE_PITR and FIRESTORE_BACKUP_RETENTION_DAYS ask for, as commands to run by hand.
recovery_advice() {
  say "# FIRESTORE_DATABASE=$FIRESTORE_DATABASE is not the relayer's own (it exists, and deploy.sh makes $NAME-state): its point-in-time recovery and backups are left as they are."
  if [[ $FIRESTORE_PITR == false ]] && ((FIRESTORE_BACKUP_RETENTION_DAYS == 0)); then return 0; fi
  say "# Its owner can turn them on:"
  if [[ $FIRESTORE_PITR == true ]]; then
    say "#   $(quoted gcloud firestore databases update --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" --enable-pitr)"
  fi
  if ((FIRESTORE_BACKUP_RETENTION_DAYS > 0)); then
    say "#   $(quoted gcloud firestore backups schedules create --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
      --recurrence=daily --retention="${FIRESTORE_BACKUP_RETENTION_DAYS}d")"
  fi
}

# The daily backup schedule (one per database): found by listing, then updated or created.
backup_schedule_upsert() {
  local retention="${FIRESTORE_BACKUP_RETENTION_DAYS}d" found=""
  show gcloud firestore backups schedules list --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
    --filter="dailyRecurrence:*" --format="value(name)"
  if ((DRY_RUN)); then
    say "#   if absent:"
    show gcloud firestore backups schedules create --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
      --recurrence=daily --retention="$retention"
    say "#   if present (<schedule> is the one listed):"
    show gcloud firestore backups schedules update --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
      --backup-schedule="<schedule>" --retention="$retention"
    return 0
  fi
  found=$(gcloud firestore backups schedules list --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
    --filter="dailyRecurrence:*" --format="value(name)" | head -n 1)
  if [[ -n $found ]]; then
    run gcloud firestore backups schedules update --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
      --backup-schedule="${found##*/}" --retention="$retention"
  else
    run gcloud firestore backups schedules create --database="$FIRESTORE_DATABASE" --project="$PROJECT_ID" \
      --recurrence=daily --retention="$retention"
  fi
}

# BigQuery (BIGQUERY_SUBSCRIPTION) through bq, the BigQuery tool of the Google Cloud CLI: gcloud
# has no GA command for datasets and tables, and its alpha one cannot place a dataset or
# partition a table.
dataset_describe() { check bq --project_id="$PROJECT_ID" show --format=none "$PROJECT_ID:$BIGQUERY_DATASET"; }
dataset_create() {
  run bq --project_id="$PROJECT_ID" --location="$BIGQUERY_LOCATION" mk --dataset \
    --description="Events relayed by $NAME, written by the Pub/Sub subscription $PUBSUB_TOPIC-bigquery." \
    "$PROJECT_ID:$BIGQUERY_DATASET"
}
table_describe() { check bq --project_id="$PROJECT_ID" show --format=none "$BIGQUERY_TABLE"; }
# The schema Pub/Sub writes with --write-metadata (infra/bigquery_schema.json, Terraform's too),
# partitioned by day of publish_time.
table_create() {
  run bq --project_id="$PROJECT_ID" mk --table \
    --description="One row per message of the $PUBSUB_TOPIC topic." \
    --schema=infra/bigquery_schema.json --time_partitioning_field=publish_time \
    --time_partitioning_type=DAY "$BIGQUERY_TABLE"
}
bigquery_sub_describe() { check gcloud pubsub subscriptions describe "$PUBSUB_TOPIC-bigquery" --project="$PROJECT_ID"; }
# Without --use-table-schema: the message goes whole into `data`, Pub/Sub's metadata beside it.
bigquery_sub_create() {
  run gcloud pubsub subscriptions create "$PUBSUB_TOPIC-bigquery" --project="$PROJECT_ID" \
    --topic="$PUBSUB_TOPIC" --bigquery-table="$BIGQUERY_TABLE" --write-metadata \
    --message-retention-duration=7d --expiration-period=never
}

# The Cloud Build trigger (BUILD_TRIGGER_REPOSITORY): cloudbuild.yaml on every push to the
# branch, as the deployer account.
trigger_describe() { check gcloud builds triggers describe "$NAME-deploy" --project="$PROJECT_ID" --region="$REGION"; }
trigger_flags() {
  TRIGGER_FLAGS=(
    --project="$PROJECT_ID" --region="$REGION" --repo-owner="$TRIGGER_OWNER"
    --repo-name="$TRIGGER_REPO" --branch-pattern="$TRIGGER_BRANCH_PATTERN"
    --build-config=cloudbuild.yaml
    --service-account="projects/$PROJECT_ID/serviceAccounts/$DEPLOYER_SA"
    --description="Tests, builds and ships $NAME on every push to $BUILD_TRIGGER_BRANCH, as $NAME-deployer."
  )
}
trigger_create() {
  trigger_flags
  run gcloud builds triggers create github --name="$NAME-deploy" "${TRIGGER_FLAGS[@]}" \
    --substitutions="_REGION=$REGION,_REPO=$ARTIFACT_REPO"
}
trigger_update() {
  trigger_flags
  run gcloud builds triggers update github "$NAME-deploy" "${TRIGGER_FLAGS[@]}" \
    --update-substitutions="_REGION=$REGION,_REPO=$ARTIFACT_REPO"
}

# secret_* VAR SECRET: the secret mounted as VAR.
secret_describe() { check gcloud secrets describe "$2" --project="$PROJECT_ID"; }
secret_create() {
  with_secret "$1" "$2" gcloud secrets create "$2" --project="$PROJECT_ID" \
    --replication-policy=automatic --data-file=-
}
# An existing secret gets a new version only when a value was given.
secret_update() {
  if [[ -n ${SECRET_FILES[$1]:-} ]]; then
    with_secret "$1" "$2" gcloud secrets versions add "$2" --project="$PROJECT_ID" --data-file=-
  else
    say "#   keeps its current value (pass --rpc-url-file $(file_arg "$1") to add a new version)"
  fi
}

bucket_describe() { check gcloud storage buckets describe "gs://$ABI_BUCKET" --project="$PROJECT_ID"; }
bucket_create() {
  run gcloud storage buckets create "gs://$ABI_BUCKET" --project="$PROJECT_ID" \
    --location="$REGION" --uniform-bucket-level-access --public-access-prevention
}

scheduler_describe() { check gcloud scheduler jobs describe "$NAME-schedule" --project="$PROJECT_ID" --location="$REGION"; }
scheduler_flags() {
  SCHEDULER_FLAGS=(
    --project="$PROJECT_ID" --location="$REGION" --schedule="$SCHEDULE"
    --time-zone="$TIME_ZONE"
    --uri="https://run.googleapis.com/v2/projects/$PROJECT_ID/locations/$REGION/jobs/$NAME:run"
    --http-method=POST --oauth-service-account-email="$SCHEDULER_SA"
    --oauth-token-scope="$SCOPE" --attempt-deadline=60s --max-retry-attempts=0
    --description="$SCHEDULE_DESCRIPTION"
  )
}
scheduler_create() { scheduler_flags; run gcloud scheduler jobs create http "$NAME-schedule" "${SCHEDULER_FLAGS[@]}"; }
scheduler_update() { scheduler_flags; run gcloud scheduler jobs update http "$NAME-schedule" "${SCHEDULER_FLAGS[@]}"; }

# The relay function's schedule: a POST with an OIDC token of the scheduler's account, whose
# audience is the function's URL (RELAY_URL).
relay_schedule_describe() { check gcloud scheduler jobs describe "$NAME-relay-schedule" --project="$PROJECT_ID" --location="$REGION"; }
relay_schedule_flags() {
  SCHEDULER_FLAGS=(
    --project="$PROJECT_ID" --location="$REGION" --schedule="$SCHEDULE"
    --time-zone="$TIME_ZONE" --uri="$RELAY_URL" --http-method=POST
    --oidc-service-account-email="$SCHEDULER_SA" --oidc-token-audience="$RELAY_URL"
    --attempt-deadline="${TASK_TIMEOUT_S}s" --max-retry-attempts=0
    --description="Calls the $NAME relay function: one run per call"
  )
}
relay_schedule_create() { relay_schedule_flags; run gcloud scheduler jobs create http "$NAME-relay-schedule" "${SCHEDULER_FLAGS[@]}"; }
relay_schedule_update() { relay_schedule_flags; run gcloud scheduler jobs update http "$NAME-relay-schedule" "${SCHEDULER_FLAGS[@]}"; }

# function_deploy NAME ENTRY SA MEMORY TIMEOUT MAX_INSTANCES [KEY=VALUE]: a gen2 HTTP function
# from this folder, not public, with the runtime settings (and one more), and the secrets.
function_deploy() {
  local env=$RUNTIME_ENV
  [[ -z ${7:-} ]] || env="$env|$7"
  run gcloud functions deploy "$1" --project="$PROJECT_ID" --region="$REGION" --gen2 \
    --runtime=python311 --source=. --entry-point="$2" --trigger-http --no-allow-unauthenticated \
    --service-account="$3" --memory="$4" --timeout="$5" --max-instances="$6" \
    --set-env-vars="$env" --set-secrets="$SECRET_MOUNTS"
}

# The code of an existing function, from this folder; its settings stay as the set-up left them.
function_code() {
  run gcloud functions deploy "$1" --project="$PROJECT_ID" --region="$REGION" --gen2 \
    --runtime=python311 --source=. --entry-point="$2" --trigger-http
}

# metric_* NAME FILE: a log-based metric from its file.
metric_describe() { check gcloud logging metrics describe "$1" --project="$PROJECT_ID"; }
metric_create() { run gcloud logging metrics create "$1" --project="$PROJECT_ID" --config-from-file="$WORK/$2"; }
metric_update() { run gcloud logging metrics update "$1" --project="$PROJECT_ID" --config-from-file="$WORK/$2"; }

# The dashboard has a generated id too: found by display name; an update carries the etag
# listed with it, so that it cannot overwrite an edit made since.
dashboard_upsert() {
  local found="" etag=""
  show gcloud monitoring dashboards list --project="$PROJECT_ID" \
    --filter="displayName=\"$DASHBOARD\"" --format="value(name,etag)"
  if ((DRY_RUN)); then
    say "#   if absent:"
    show gcloud monitoring dashboards create --project="$PROJECT_ID" --config-from-file="$WORK/dashboard.json"
    say "#   if present (<dashboard> is the name listed; the file gains its etag):"
    show gcloud monitoring dashboards update "<dashboard>" --project="$PROJECT_ID" --config-from-file="$WORK/dashboard.json"
    return 0
  fi
  read -r found etag < <(gcloud monitoring dashboards list --project="$PROJECT_ID" \
    --filter="displayName=\"$DASHBOARD\"" --format="value(name,etag)" | head -n 1) || true
  if [[ -z $found ]]; then
    run gcloud monitoring dashboards create --project="$PROJECT_ID" --config-from-file="$WORK/dashboard.json"
    return 0
  fi
  if [[ -n $etag ]]; then
    { printf '{"etag": %s, ' "$(json_str "$etag")"; tail -c +2 "$WORK/dashboard.json"; } >"$WORK/dashboard-update.json"
    mv "$WORK/dashboard-update.json" "$WORK/dashboard.json"
  fi
  run gcloud monitoring dashboards update "$found" --project="$PROJECT_ID" --config-from-file="$WORK/dashboard.json"
}

# Alert policies have generated ids: they are found by display name.
policy_upsert() {
  local file=$1 display=$2 found=""
  show gcloud alpha monitoring policies list --project="$PROJECT_ID" \
    --filter="displayName=\"$display\"" --format="value(name)"
  if ((DRY_RUN)); then
    say "#   if absent:"
    show gcloud alpha monitoring policies create --project="$PROJECT_ID" --policy-from-file="$WORK/$file"
    say "#   if present (<policy> is the name listed):"
    show gcloud alpha monitoring policies update "<policy>" --project="$PROJECT_ID" --policy-from-file="$WORK/$file"
    return 0
  fi
  found=$(gcloud alpha monitoring policies list --project="$PROJECT_ID" \
    --filter="displayName=\"$display\"" --format="value(name)" | head -n 1)
  if [[ -n $found ]]; then
    run gcloud alpha monitoring policies update "$found" --project="$PROJECT_ID" --policy-from-file="$WORK/$file"
  else
    run gcloud alpha monitoring policies create --project="$PROJECT_ID" --policy-from-file="$WORK/$file"
  fi
}

# ---------------------------------------------------------------------------------------------
# Monitoring documents
# ---------------------------------------------------------------------------------------------

# The failed-runs and lag alerts' condition on resource type $1 ($2: what it is).
failed_condition() {
  cat <<EOF
{
    "displayName": $(json_str "Failed runs of a relayer ($2)"),
    "conditionThreshold": {
      "filter": $(json_str "resource.type = \"$1\" AND metric.type = \"logging.googleapis.com/user/$METRIC\" AND metric.label.outcome = \"failed\""),
      "comparison": "COMPARISON_GT",
      "thresholdValue": $FAILED_RUNS_THRESHOLD,
      "duration": "0s",
      "aggregations": $(per_relayer_sum "${ALERT_WINDOW}s"),
      "trigger": {"count": 1}
    }
  }
EOF
}
lag_condition() {
  cat <<EOF
{
    "displayName": $(json_str "Lag of a relayer above $LAG_ALERT_BLOCKS blocks for $LAG_ALERT_AFTER s ($2)"),
    "conditionThreshold": {
      "filter": $(json_str "resource.type = \"$1\" AND metric.type = \"logging.googleapis.com/user/$NAME-lag-blocks\""),
      "comparison": "COMPARISON_GT",
      "thresholdValue": $LAG_ALERT_BLOCKS,
      "duration": "${LAG_ALERT_AFTER}s",
      "aggregations": [{"alignmentPeriod": "${ALERT_WINDOW}s", "perSeriesAligner": "ALIGN_DELTA", "crossSeriesReducer": "REDUCE_MEAN", "groupByFields": ["metric.label.relayer_id"]}],
      "trigger": {"count": 1}
    }
  }
EOF
}

write_monitoring_files() {
  local summary_filter summary_lines runs_metric channels entry key field unit what who
  # Every summary, and the line a configuration error logs before any run (as derived.tf).
  summary_filter="$RUN_LINES AND (jsonPayload.run_summary=true OR jsonPayload.outcome=\"failed\")"
  summary_lines="$RUN_LINES AND jsonPayload.run_summary=true"
  runs_metric="logging.googleapis.com/user/$METRIC"
  who=${RUN_WHATS[0]}
  if ((${#RUN_WHATS[@]} > 1)); then who+=" or ${RUN_WHATS[1]}"; fi
  channels=$(json_list "${CHANNELS[@]}")
  write_file metric.json <<EOF
{
  "name": $(json_str "$METRIC"),
  "description": $(json_str "Relay runs of the $NAME relayer, by outcome and relayer (the run summary line)."),
  "filter": $(json_str "$summary_filter"),
  "metricDescriptor": {
    "metricKind": "DELTA",
    "valueType": "INT64",
    "unit": "1",
    "labels": [
      {"key": "outcome", "valueType": "STRING", "description": "ok, idle, skipped or failed"},
      {"key": "relayer_id", "valueType": "STRING", "description": "The relayer's RELAYER_ID"}
    ]
  },
  "labelExtractors": {
    "outcome": "EXTRACT(jsonPayload.outcome)",
    "relayer_id": "EXTRACT(jsonPayload.relayer_id)"
  }
}
EOF
  write_file alert-failed.json <<EOF
{
  "displayName": $(json_str "$NAME: relay runs failed"),
  "combiner": "OR",
  "notificationChannels": $channels,
  "conditions": $(per_run_resource failed_condition),
  "alertStrategy": {"autoClose": "1800s"},
  "documentation": {
    "mimeType": "text/markdown",
    "content": $(json_str "Runs of $NAME ($who) ended with outcome failed: the run summary's error says why. Logs: \`$RUN_LINES AND severity>=ERROR\`. Exit code 2 is a configuration or deployment error.")
  }
}
EOF
  write_file alert-stale.json <<EOF
{
  "displayName": $(json_str "$NAME: relayer not progressing"),
  "combiner": "OR",
  "notificationChannels": $channels,
  "conditions": [{
    "displayName": $(json_str "No successful run of a relayer for $STALE_AFTER s"),
    "conditionAbsent": {
      "filter": $(json_str "resource.type = \"$SCHEDULED_TYPE\" AND metric.type = \"$runs_metric\" AND metric.label.outcome = one_of(\"ok\", \"idle\")"),
      "duration": "${STALE_AFTER}s",
      "aggregations": $(per_relayer_sum 60s),
      "trigger": {"count": 1}
    }
  }],
  "alertStrategy": {"autoClose": "1800s"},
  "documentation": {
    "mimeType": "text/markdown",
    "content": $(json_str "No run of $NAME in $SCHEDULED_WHAT, where the schedule starts runs, has succeeded for a relayer in $STALE_AFTER s: its lag grows. Check the scheduler, the runs (a crashed run logs no summary), the lease and /status. The summaries: \`$summary_lines\`.")
  }
}
EOF
  # One value per summary line and relayer; a line without the field is not counted (no false 0).
  for entry in "${VALUE_METRICS[@]}"; do
    IFS='|' read -r key field unit what <<<"$entry"
    write_file "metric-$key.json" <<EOF
{
  "name": $(json_str "$NAME-$key"),
  "description": $(json_str "$what, by relayer (the run summary line's $field)."),
  "filter": $(json_str "$summary_lines AND jsonPayload.$field:*"),
  "metricDescriptor": {
    "metricKind": "DELTA",
    "valueType": "DISTRIBUTION",
    "unit": $(json_str "$unit"),
    "displayName": $(json_str "$NAME $key"),
    "labels": [
      {"key": "relayer_id", "valueType": "STRING", "description": "The relayer's RELAYER_ID"}
    ]
  },
  "valueExtractor": $(json_str "EXTRACT(jsonPayload.$field)"),
  "labelExtractors": {"relayer_id": "EXTRACT(jsonPayload.relayer_id)"},
  "bucketOptions": {"exponentialBuckets": {"numFiniteBuckets": 64, "growthFactor": 1.5, "scale": 1}}
}
EOF
  done
  write_file alert-lag.json <<EOF
{
  "displayName": $(json_str "$NAME: relayer lag"),
  "combiner": "OR",
  "notificationChannels": $channels,
  "conditions": $(per_run_resource lag_condition),
  "alertStrategy": {"autoClose": "1800s"},
  "documentation": {
    "mimeType": "text/markdown",
    "content": $(json_str "A relayer of $NAME has stayed more than $LAG_ALERT_BLOCKS blocks behind the head after its runs for $LAG_ALERT_AFTER s: it is not catching up. Check /status (lag_blocks, reasons, last_run, rpc_limits); then the run summaries: a run that relays a whole batch every time is outpaced by the chain (raise RELAYER_BATCH_SIZE or use follow mode); then failed or skipped runs (the other alerts) and an RPC endpoint that refuses wide eth_getLogs ranges. A backfill from an old START_BLOCK lags on purpose: raise LAG_ALERT_BLOCKS or snooze this alert meanwhile.")
  }
}
EOF
  # infra/dashboard.json is a Terraform template: its two placeholders, filled as templatefile
  # fills them.
  local dashboard
  dashboard=$(<"$ROOT/infra/dashboard.json")
  # shellcheck disable=SC2016 # the placeholders are literal text
  dashboard=${dashboard//'${name}'/$NAME}
  # shellcheck disable=SC2016
  dashboard=${dashboard//'${lag_blocks_limit}'/$LAG_ALERT_BLOCKS}
  write_file dashboard.json <<<"$dashboard"
}

# ---------------------------------------------------------------------------------------------
# The deployment
# ---------------------------------------------------------------------------------------------

# What Cloud Build does on every push, as the deployer account: new code, nothing else.
deploy_code() {
  step "Image: $IMAGE by digest"
  resolve_image

  step "Cloud Run Job: the new image (settings and secrets stay as set up)"
  run gcloud run jobs update "$NAME" --project="$PROJECT_ID" --region="$REGION" --image="$IMAGE_REF"

  step "Functions: the code of this commit"
  function_code "$STATUS_FUNCTION" status
  if [[ $RELAY_FUNCTION == true ]]; then function_code "$RELAY_FUNCTION_NAME" relay; fi
}

main() {
  parse_args "$@"
  load_env "$ENV_FILE"
  validate
  if ((!CODE_ONLY)); then read_rpc_urls; fi
  if ((!DRY_RUN)); then
    command -v gcloud >/dev/null || die "gcloud not found: install the Google Cloud CLI"
    export CLOUDSDK_CORE_DISABLE_PROMPTS=1
    if ((!CODE_ONLY)); then preflight_secrets; fi
  fi
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  cd "$ROOT"

  if ((DRY_RUN)); then
    say "# Dry run: the commands are printed, none is run."
  fi
  say "# Relayer $NAME: project $PROJECT_ID, region $REGION, chain $CHAIN_ID, topic $PUBSUB_TOPIC"
  if ((CODE_ONLY)); then
    deploy_code
    return 0
  fi
  if [[ -n $FOLLOW_PLAN ]]; then say "$FOLLOW_PLAN; stale alert after $STALE_AFTER s"; fi

  step "APIs"
  run gcloud services enable "${APIS[@]}" --project="$PROJECT_ID"

  step "Service accounts: the job, the scheduler, the status function, the deployer"
  upsert sa "$NAME-job" "EVM relayer job"
  upsert sa "$NAME-scheduler" "EVM relayer scheduler"
  upsert sa "$NAME-status" "EVM relayer status"
  upsert sa "$NAME-deployer" "EVM relayer deployer"

  step "Artifact Registry repository: the images the job runs"
  upsert repo
  # The deployer (Cloud Build's account) pushes images there.
  run_retry gcloud artifacts repositories add-iam-policy-binding "$ARTIFACT_REPO" --project="$PROJECT_ID" \
    --location="$REGION" --member="serviceAccount:$DEPLOYER_SA" --role=roles/artifactregistry.writer \
    --format=none

  step "Image"
  if [[ -z $IMAGE ]]; then
    IMAGE="$IMAGE_REPO:manual-$(date -u +%Y%m%d-%H%M%S)"
    run gcloud builds submit --project="$PROJECT_ID" --region="$REGION" --tag="$IMAGE" .
  fi
  resolve_image

  step "Pub/Sub: events topic, dead-letter topic, example subscription"
  upsert topic "$PUBSUB_TOPIC"
  upsert topic "$DEADLETTER_TOPIC"
  upsert hold
  local topic role
  for topic in "$PUBSUB_TOPIC" "$DEADLETTER_TOPIC"; do
    # viewer: the job checks at start that its topics exist.
    for role in roles/pubsub.publisher roles/pubsub.viewer; do
      run_retry gcloud pubsub topics add-iam-policy-binding "$topic" --project="$PROJECT_ID" \
        --member="serviceAccount:$JOB_SA" --role="$role" --format=none
    done
  done
  local agent=""
  if [[ $CREATE_EXAMPLE_SUBSCRIPTION == true || $BIGQUERY_SUBSCRIPTION == true ]]; then
    # Pub/Sub's service agent: it dead-letters for the example subscription and writes to
    # BigQuery for the BigQuery subscription.
    local number="<project-number>"
    show gcloud projects describe "$PROJECT_ID" --format="value(projectNumber)"
    if ((!DRY_RUN)); then number=$(gcloud projects describe "$PROJECT_ID" --format="value(projectNumber)"); fi
    agent="serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com"
  fi
  if [[ $CREATE_EXAMPLE_SUBSCRIPTION == true ]]; then
    upsert example
    # The agent moves undeliverable messages to the dead-letter topic.
    run_retry gcloud pubsub topics add-iam-policy-binding "$DEADLETTER_TOPIC" --project="$PROJECT_ID" \
      --member="$agent" --role=roles/pubsub.publisher --format=none
    run_retry gcloud pubsub subscriptions add-iam-policy-binding "$SUBSCRIPTION" --project="$PROJECT_ID" \
      --member="$agent" --role=roles/pubsub.subscriber --format=none
  fi

  if [[ $BIGQUERY_SUBSCRIPTION == true ]]; then
    step "BigQuery: every event in $BIGQUERY_TABLE, through a BigQuery subscription"
    upsert dataset
    upsert table
    # BigQuery Data Editor on this dataset only: what the agent needs to write the table.
    run_retry bq --project_id="$PROJECT_ID" add-iam-policy-binding --dataset --member="$agent" \
      --role=roles/bigquery.dataEditor "$PROJECT_ID:$BIGQUERY_DATASET"
    upsert bigquery_sub
  fi

  step "Firestore: the relayer's database (point-in-time recovery, daily backups), TTL of processed-event records, index exemptions"
  firestore_database
  run gcloud firestore fields ttls update expire_at --project="$PROJECT_ID" \
    --database="$FIRESTORE_DATABASE" --collection-group=blocks --enable-ttl
  # Never queried; indexing them would only cost writes (expire_at also grows with time).
  local exemption
  for exemption in blocks/expire_at blocks/events blocks/messages_zlib blocks/recorded_at relayers/recent_blocks relayers/last_run children/children; do
    run gcloud firestore indexes fields update "${exemption#*/}" --project="$PROJECT_ID" \
      --database="$FIRESTORE_DATABASE" --collection-group="${exemption%%/*}" --disable-indexes
  done
  # Firestore has no per-collection IAM: the grant is limited to the database by a condition.
  run_retry gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:$JOB_SA" \
    --role=roles/datastore.user --format=none \
    --condition="expression=resource.name == \"$DATABASE_NAME\",title=$NAME-firestore-database"
  run_retry gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:$STATUS_SA" \
    --role=roles/datastore.viewer --format=none \
    --condition="expression=resource.name == \"$DATABASE_NAME\",title=$NAME-firestore-database-read"

  step "Secret Manager: the RPC URLs"
  local i sa
  for i in "${!SECRET_VARS[@]}"; do
    upsert secret "${SECRET_VARS[i]}" "${SECRET_IDS[i]}"
    for sa in "$JOB_SA" "$STATUS_SA"; do
      run_retry gcloud secrets add-iam-policy-binding "${SECRET_IDS[i]}" --project="$PROJECT_ID" \
        --member="serviceAccount:$sa" --role=roles/secretmanager.secretAccessor --format=none
    done
  done

  step "ABI"
  if [[ -n ${ABI_FILE:-} ]]; then
    upsert bucket
    run gcloud storage cp "$ABI_FILE" "$ABI_URI" --project="$PROJECT_ID"
  fi
  local bucket=${ABI_URI#gs://}
  run_retry gcloud storage buckets add-iam-policy-binding "gs://${bucket%%/*}" --project="$PROJECT_ID" \
    --member="serviceAccount:$JOB_SA" --role=roles/storage.objectViewer --format=none
  if [[ -n ${RELAYER_CONFIG:-} ]]; then
    bucket=${RELAYER_CONFIG#gs://}
    for sa in "$JOB_SA" "$STATUS_SA"; do
      run_retry gcloud storage buckets add-iam-policy-binding "gs://${bucket%%/*}" --project="$PROJECT_ID" \
        --member="serviceAccount:$sa" --role=roles/storage.objectViewer --format=none
    done
  fi

  step "Cloud Run Job: $IMAGE_REF"
  run gcloud run jobs deploy "$NAME" --project="$PROJECT_ID" --region="$REGION" --image="$IMAGE_REF" \
    --service-account="$JOB_SA" --command=python --args=main.py --tasks="$TASKS" \
    --parallelism="$PARALLELISM" --task-timeout="$TASK_TIMEOUT" --max-retries="$MAX_RETRIES" \
    --cpu="$CPU" --memory="$MEMORY" --set-env-vars="$RUNTIME_ENV" --set-secrets="$SECRET_MOUNTS"
  # roles/run.invoker on the job allows running it, and nothing else.
  run_retry gcloud run jobs add-iam-policy-binding "$NAME" --project="$PROJECT_ID" --region="$REGION" \
    --member="serviceAccount:$SCHEDULER_SA" --role=roles/run.invoker --format=none

  step "Cloud Scheduler: $SCHEDULE_STEP ($SCHEDULE)"
  upsert scheduler

  step "Status function (not public)"
  function_deploy "$STATUS_FUNCTION" status "$STATUS_SA" 256Mi 30s 3
  local member
  for member in "${INVOKERS[@]}"; do
    run_retry gcloud functions add-invoker-policy-binding "$STATUS_FUNCTION" --project="$PROJECT_ID" \
      --region="$REGION" --member="$member"
  done

  if [[ $RELAY_FUNCTION == true ]]; then
    step "Relay function (POST only, not public): runs start through it, the job's schedule is paused"
    # The job's code, identity and settings; two instances, so a follower can hand over.
    # The code cannot see the platform's request timeout: it is told, so that a window that
    # cannot end inside it is refused and a one-batch run is stopped only near its end.
    function_deploy "$RELAY_FUNCTION_NAME" relay "$JOB_SA" "$MEMORY" "${TASK_TIMEOUT_S}s" 2 \
      "RELAYER_REQUEST_TIMEOUT=$TASK_TIMEOUT_S"
    run_retry gcloud functions add-invoker-policy-binding "$RELAY_FUNCTION_NAME" --project="$PROJECT_ID" \
      --region="$REGION" --member="serviceAccount:$SCHEDULER_SA"
    RELAY_URL="https://RELAY-FUNCTION-URL"
    show gcloud functions describe "$RELAY_FUNCTION_NAME" --project="$PROJECT_ID" --region="$REGION" \
      --gen2 --format="value(serviceConfig.uri)"
    if ((!DRY_RUN)); then
      RELAY_URL=$(gcloud functions describe "$RELAY_FUNCTION_NAME" --project="$PROJECT_ID" \
        --region="$REGION" --gen2 --format="value(serviceConfig.uri)")
    fi
    upsert relay_schedule
    run gcloud scheduler jobs pause "$NAME-schedule" --project="$PROJECT_ID" --location="$REGION"
  fi

  step "Deployer: what Cloud Build needs to ship new code (deploy.sh --code-only)"
  # run.developer on this job: get and update it, not its IAM policy.
  run_retry gcloud run jobs add-iam-policy-binding "$NAME" --project="$PROJECT_ID" --region="$REGION" \
    --member="serviceAccount:$DEPLOYER_SA" --role=roles/run.developer --format=none
  # Function deployments from source ask for an upload URL and poll operations, which exist at
  # the project's level only; a build under its own account writes its own logs.
  for role in roles/cloudfunctions.developer roles/logging.logWriter; do
    run_retry gcloud projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:$DEPLOYER_SA" \
      --role="$role" --condition=None --format=none
  done
  # Updating what runs as an account needs actAs on it.
  for sa in "$JOB_SA" "$STATUS_SA"; do
    run_retry gcloud iam service-accounts add-iam-policy-binding "$sa" --project="$PROJECT_ID" \
      --member="serviceAccount:$DEPLOYER_SA" --role=roles/iam.serviceAccountUser --format=none
  done
  if [[ -n ${BUILD_TRIGGER_REPOSITORY:-} ]]; then
    step "Cloud Build trigger: pushes to $BUILD_TRIGGER_BRANCH of $BUILD_TRIGGER_REPOSITORY run cloudbuild.yaml as the deployer"
    upsert trigger
  fi

  step "Monitoring: metrics of the run summary line; alerts on failed runs, no progress and lag; the dashboard"
  if ((!${#CHANNELS[@]})); then
    say "# NOTIFICATION_CHANNELS is empty: the alerts open incidents in the console and notify no one (README: creating a channel)"
  fi
  write_monitoring_files
  upsert metric "$METRIC" metric.json
  local entry
  for entry in "${VALUE_METRICS[@]}"; do
    upsert metric "$NAME-${entry%%|*}" "metric-${entry%%|*}.json"
  done
  policy_upsert alert-failed.json "$NAME: relay runs failed"
  policy_upsert alert-stale.json "$NAME: relayer not progressing"
  policy_upsert alert-lag.json "$NAME: relayer lag"
  dashboard_upsert

  step "Next"
  say "# Run once now:   gcloud run jobs execute $NAME --region=$REGION --project=$PROJECT_ID --wait"
  say "# Status URL:     gcloud functions describe $STATUS_FUNCTION --gen2 --region=$REGION --project=$PROJECT_ID --format='value(serviceConfig.uri)'"
  say "# Run summaries:  gcloud logging read '$RUN_LINES AND jsonPayload.run_summary=true' --project=$PROJECT_ID --limit=10"
  say "# Dashboard:      Monitoring, Dashboards, '$DASHBOARD' (gcloud monitoring dashboards list --project=$PROJECT_ID --filter='displayName=\"$DASHBOARD\"')"
  if [[ -n ${BUILD_TRIGGER_REPOSITORY:-} ]]; then
    say "# Cloud Build:    trigger $NAME-deploy ships every push to $BUILD_TRIGGER_BRANCH as $DEPLOYER_SA"
  else
    say "# Cloud Build:    BUILD_TRIGGER_REPOSITORY=owner/name makes a trigger running as $DEPLOYER_SA"
  fi
  if [[ $BIGQUERY_SUBSCRIPTION == true ]]; then
    say "# BigQuery:       bq query --use_legacy_sql=false 'SELECT COUNT(*) FROM \`${BIGQUERY_TABLE/:/.}\`'"
  fi
}

main "$@"
