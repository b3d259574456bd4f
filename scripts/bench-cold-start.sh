#!/usr/bin/env bash
# make bench-cold-start: each Lambda function's cold start, measured on this machine against a
# local Lambda Runtime API (`cargo xtask bench cold-start`, xtask/src/bench/cold_start.rs):
# the release binary starts with a Lambda environment, the clock runs to its first poll for an
# event (init) and to its first answer. Postgres is real (a freshly migrated database); S3 and
# SQS are configured but not contacted before the first event.
#
#   api        event: API Gateway HTTP GET /health/live
#   remove-bg  event: one SQS message for a job that does not exist (the handler looks it up
#              and acknowledges it), so the figure is init + one database round trip, not a
#              cut-out (those are in the cut-out benchmark)
#
# Each runs RUNS times (default 7) as is, and again with its CPU share in Lambda: a function
# gets memory/1769 of a vCPU (api at 512 MB: 29 %; remove-bg at 3538 MB: 2 vCPUs, i.e. all of
# this machine), applied with a cgroup CPU quota when this machine allows one (root; cgroup v2
# or v1's cpu controller).
# Results: target/bench/cold-start.md and raw/cold-start-*.json.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
cleanup_on_exit

RUNS="${RUNS:-7}"
OUT="$ROOT/target/bench"
mkdir -p "$OUT/raw"

say "cargo build --release -p stolentee-api -p stolentee-remove-bg -p stolentee-db -p stolentee-cutout-cli -p xtask"
cargo build --release -p stolentee-api -p stolentee-remove-bg -p stolentee-db -p stolentee-cutout-cli -p xtask --bins
BIN="$(cargo_target_dir)/release"

pg_ensure
((PG_STARTED)) && on_exit pg_stop
url="$("$ROOT/scripts/pg.sh" url-for stolentee_cold_start "$PG_URL")"
DATABASE_URL="$url" "$ROOT/scripts/pg.sh" ensure >/dev/null
DATABASE_URL="$url" "$BIN/migrate" >&2

scripts/fetch-model.sh >&2
model="$ROOT/models/u2netp.onnx"

secret() { head -c 36 /dev/urandom | base64 | tr -d '/+=' | head -c 48; }
# APP_ENV=development: the local database has no TLS and nothing here is the edge; every
# production requirement that costs start-up time (secrets, clients) is still configured.
common=(
  --env "APP_ENV=development" --env "DATABASE_URL=$url" --env "MAX_CONCURRENCY=4" --env "DB_MAX_CONNECTIONS=8" --env "STAGE=bench"
  --env "OBJECT_STORE=s3" --env "S3_BUCKET=cold-start" --env "S3_ENDPOINT=http://127.0.0.1:9"
  --env "S3_ACCESS_KEY_ID=cold" --env "S3_SECRET_ACCESS_KEY=start" --env "LOG_FORMAT=json"
)
api_env=(
  "${common[@]}" --env "QUEUE=sqs" --env "SQS_QUEUE_URL=http://127.0.0.1:9/123456789012/cold-start"
  --env "SQS_ACCESS_KEY_ID=cold" --env "SQS_SECRET_ACCESS_KEY=start"
  --env "JWT_KEYS=k1:$(secret)" --env "ORDER_TOKEN_SECRET=$(secret)"
  --env "STRIPE_SECRET_KEY=sk_test_$(secret)" --env "STRIPE_WEBHOOK_SECRET=whsec_$(secret)"
)
bg_env=(
  "${common[@]}" --env "MODEL_PATH=$model" --env "MODEL_SHA256=$(sha256sum "$model" | cut -d' ' -f1)"
)

events="$(mktemp -d)"
on_exit "rm -rf '$events'"
cat >"$events/api.json" <<'JSON'
{"version":"2.0","routeKey":"$default","rawPath":"/health/live","rawQueryString":"","headers":{"host":"cold-start.local","user-agent":"cold-start"},"requestContext":{"accountId":"123456789012","apiId":"cold","domainName":"cold-start.local","domainPrefix":"cold","http":{"method":"GET","path":"/health/live","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"cold-start"},"requestId":"r1","routeKey":"$default","stage":"$default","time":"01/Jan/2026:00:00:00 +0000","timeEpoch":1767225600000},"isBase64Encoded":false}
JSON
job="$(cat /proc/sys/kernel/random/uuid)"
cat >"$events/remove-bg.json" <<JSON
{"Records":[{"messageId":"m1","receiptHandle":"r1","body":"{\"job_id\":\"$job\"}","attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1767225600000","SenderId":"cold","ApproximateFirstReceiveTimestamp":"1767225600000"},"messageAttributes":{},"md5OfBody":"0","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:123456789012:cold-start","awsRegion":"us-east-1"}]}
JSON

# A CPU quota for the Lambda share, when a cgroup (v2, or v1's cpu controller) is writable.
quota_wrapper() { # quota_wrapper PERCENT: prints a wrapper command, or nothing
  local name="stolentee-cold-start-$1" cg
  if [[ -w /sys/fs/cgroup/cgroup.subtree_control ]] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    cg="/sys/fs/cgroup/$name"
    mkdir -p "$cg" && echo "$(($1 * 1000)) 100000" >"$cg/cpu.max" || return 0
  elif [[ -w /sys/fs/cgroup/cpu ]]; then
    cg="/sys/fs/cgroup/cpu/$name"
    mkdir -p "$cg" && echo 100000 >"$cg/cpu.cfs_period_us" && echo "$(($1 * 1000))" >"$cg/cpu.cfs_quota_us" || return 0
  else
    return 0
  fi
  on_exit "rmdir '$cg' 2>/dev/null || true"
  echo "$ROOT/scripts/in-cgroup.sh $cg"
}

run() { # run NAME SUFFIX WRAPPER ENV...
  local name="$1" suffix="$2" wrapper="$3"
  shift 3
  local wrap=()
  [[ -n "$wrapper" ]] && wrap=(--wrapper "$wrapper")
  "$BIN/xtask" bench cold-start --name "$name" --binary "$BIN/$name" --event "$events/$name.json" \
    --runs "$RUNS" --out "$OUT/raw/cold-start-$name$suffix.json" "${wrap[@]}" "$@"
}

say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
run api "" "" "${api_env[@]}"
run remove-bg "" "" "${bg_env[@]}"
wrapper="$(quota_wrapper 29)"
if [[ -n "$wrapper" ]]; then
  run api "-29pct" "$wrapper" "${api_env[@]}"
else
  say "no writable cgroup v2 here: the api's 29 % CPU share is not emulated"
fi
"$BIN/xtask" report cold-start --out "$OUT"
