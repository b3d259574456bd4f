#!/usr/bin/env bash
# `make dev`: the whole local stack on 127.0.0.1, stopped again with Ctrl-C.
#
#   1. Postgres: the server at DATABASE_URL if it answers, else a project-local cluster
#      (scripts/pg.sh ensure)
#   2. migrations + seed catalog (stolentee-db `migrate --seed`, idempotent)
#   3. the API function + remove-bg worker (stolentee-dev) on API_BIND (default
#      127.0.0.1:3000) and, as a second origin pool, on API_BIND_SECOND (127.0.0.1:3001)
#   4. the edge — the shipping Cloudflare Worker, built for wasm32 (scripts/worker-build.sh)
#      and run in workerd (edge/worker/local.mjs on the pinned Node, scripts/edge-tools.sh)
#      — on EDGE_BIND (127.0.0.1:8787) in front of both: pool us-west = :3000 (the
#      Americas, Oceania, fallback), eu-west = :3001 (Europe, Africa, Asia). Local R2 (the
#      object store mirrored into it: assets, media, cut-out results), the RateLimiter and
#      HealthBoard Durable Objects and the Cache API live under .dev/workerd; the Cron
#      Trigger fires every EDGE_WORKERD_CRON_SECS (15). `request.cf` comes from the
#      `MF-CF-Blob` header locally, e.g. -H 'mf-cf-blob: {"country":"GB","continent":"EU"}'
#
# On Ctrl-C / TERM / exit it stops every process it started, in reverse order, and the
# project-local Postgres cluster only if this script started it.
#
# Environment: DATABASE_URL, API_BIND, RUST_LOG (default info), LOG_FORMAT (default text),
# DEV_PROFILE (debug, or release for optimised binaries),
# DB_MAX_CONNECTIONS, MAX_CONCURRENCY, DATABASE_READ_URL (passed through to the API),
# API_BIND_SECOND, EDGE_BIND, EDGE_* (the edge's keys: see edge/README.md).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export API_BIND="${API_BIND:-127.0.0.1:3000}"
export API_BIND_SECOND="${API_BIND_SECOND:-127.0.0.1:3001}"
export EDGE_BIND="${EDGE_BIND:-127.0.0.1:8787}"
export RUST_LOG="${RUST_LOG:-info}"
export LOG_FORMAT="${LOG_FORMAT:-text}"
API_URL="http://$API_BIND"
API2_URL="http://$API_BIND_SECOND"
EDGE_URL="http://$EDGE_BIND"
READY_TIMEOUT="${READY_TIMEOUT:-60}"

need_cmd cargo "install Rust from https://rustup.rs"
need_cmd curl "apt-get install -y curl"
# The edge's pinned toolchain (wasm32 target, wasm-bindgen-cli, worker-build, Node 22,
# wrangler/workerd, esbuild) into .tools/; a no-op once installed.
scripts/edge-tools.sh all
eval "$(scripts/edge-tools.sh env)"

# Everything started with start_bg is stopped on exit (newest first), then Postgres if this
# script started it.
cleanup_on_exit

# ---------------------------------------------------------------------------------------
# 0. Ports we will serve on must be free.
require_free_port "$API_BIND" "set API_BIND"
require_free_port "$API_BIND_SECOND" "set API_BIND_SECOND"
require_free_port "$EDGE_BIND" "set EDGE_BIND"

# 1. Postgres
pg_ensure
export DATABASE_URL="$PG_URL"
if ((PG_STARTED)); then on_exit pg_stop; fi
on_exit 'say stopped'

# 2. Build every binary in one cargo invocation, then run them from the target directory:
#    separate `cargo run -p …` calls unify features per package set and rebuilt the shared
#    dependencies up to three times (measured: +8 min on 2 cores).
# DEV_PROFILE=release builds optimised binaries (make load-edge measures with them).
case "${DEV_PROFILE:-debug}" in
  debug) profile_flag=() BIN="$(cargo_target_dir)/debug" ;;
  release) profile_flag=(--release) BIN="$(cargo_target_dir)/release" ;;
  *) die "DEV_PROFILE must be debug or release" ;;
esac
say "building migrate and the API + worker (${DEV_PROFILE:-debug})"
cargo build "${profile_flag[@]}" -p stolentee-db --bin migrate -p stolentee-dev-stack --bin stolentee-dev
say "building the edge Worker (wasm32)"
scripts/worker-build.sh

# Migrations + seed
say "migrating and seeding"
"$BIN/migrate" --seed

# 3. The cut-out model (md5-checked; fetched once)
say "checking the cut-out model"
scripts/fetch-model.sh
export MODELS_DIR="${MODELS_DIR:-$PWD/models}"

# 4. API + remove-bg worker in one process (stolentee-dev): local object store under
#    .dev/objects served with expiring signed URLs, in-process queue feeding the worker
#    real SqsEvent batches.
export OBJECT_STORE="${OBJECT_STORE:-local}" QUEUE="${QUEUE:-memory}"
# Admin catalog writes purge the edge's cache (the API and the edge share this secret).
export EDGE_PURGE_SECRET="${EDGE_PURGE_SECRET:-dev-only-purge-secret-0123456789abcdef}"
export EDGE_PURGE_URL="${EDGE_PURGE_URL:-$EDGE_URL/__edge/purge}"
# The edge proves itself to the origins with this secret; the API then believes the edge's
# X-Client-IP (direct callers stay possible in development, but their IP header is ignored).
export EDGE_ORIGIN_SECRET="${EDGE_ORIGIN_SECRET:-dev-only-origin-secret-0123456789abcdef}"
export EDGE_ORIGIN_SECRETS="${EDGE_ORIGIN_SECRETS:-$EDGE_ORIGIN_SECRET}"
export LOCAL_OBJECTS_DIR="${LOCAL_OBJECTS_DIR:-$PWD/.dev/objects}" LOCAL_OBJECTS_PUBLIC_URL="${LOCAL_OBJECTS_PUBLIC_URL:-$API_URL}"
start_bg api+worker - "$BIN/stolentee-dev"
API_PID="$BG_PID"
wait_http api "$API_URL/health/ready" "$API_PID" "$READY_TIMEOUT"
wait_http api-second "$API2_URL/health/ready" "$API_PID" "$READY_TIMEOUT"

# 5. The edge in front of both origins — the Worker in workerd: catalog cache, geo pools
#    with failover and cron probes, assets from R2, rate limits in a Durable Object,
#    security headers, CORS. Every EDGE_*/CF_* variable overrides wrangler.toml's [vars].
export EDGE_PUBLIC_HOST="${EDGE_PUBLIC_HOST:-localhost}"
export EDGE_POOLS="${EDGE_POOLS:-us-west=$API_URL;eu-west=$API2_URL}"
export EDGE_CONTINENT_POOLS="${EDGE_CONTINENT_POOLS:-NA=us-west,SA=us-west,OC=us-west,EU=eu-west,AF=eu-west,AS=eu-west}"
export EDGE_COUNTRY_POOLS="${EDGE_COUNTRY_POOLS:-}"
export EDGE_FALLBACK_POOL="${EDGE_FALLBACK_POOL:-us-west}"
export EDGE_CORS_ORIGINS="${EDGE_CORS_ORIGINS:-http://localhost:5173,http://127.0.0.1:5173}"
# Cut-out results are stored under cutouts/: served at /cutouts/<job>/… from the local R2.
export EDGE_ASSET_PREFIXES="${EDGE_ASSET_PREFIXES:-assets/,media/,cutouts/}"
# One location locally: purges clear the local Cache API; no zone purge API to call.
export EDGE_PURGE_SCOPE="${EDGE_PURGE_SCOPE:-colo}"
export EDGE_HEALTH_COOLDOWN_SECS="${EDGE_HEALTH_COOLDOWN_SECS:-15}"
export EDGE_WORKERD_BIND="$EDGE_BIND"
export EDGE_WORKERD_STATE="${EDGE_WORKERD_STATE:-$PWD/.dev/workerd}"
export EDGE_WORKERD_OBJECTS="$LOCAL_OBJECTS_DIR"
export EDGE_WORKERD_CRON_SECS="${EDGE_WORKERD_CRON_SECS:-15}"
mkdir -p "$LOCAL_OBJECTS_DIR/data"
start_bg edge - node edge/worker/local.mjs
wait_http edge "$EDGE_URL/__edge/health" "$BG_PID" "$READY_TIMEOUT"

# ---------------------------------------------------------------------------------------
redacted_db="$(redact "$DATABASE_URL")"
cat >&2 <<EOF

  Stolen Tee dev stack is up.

    Edge       $EDGE_URL        (what the storefront talks to)
    API        $API_URL (pool us-west), $API2_URL (pool eu-west)
    Postgres   $redacted_db

  Try (through the edge — the Worker in workerd; mf-cf-blob sets request.cf locally):
    curl -si $EDGE_URL/api/products | grep -iE '^(x-cache|x-edge-pool)'
    curl -si $EDGE_URL/api/jobs/00000000-0000-4000-8000-000000000000 \
      -H 'mf-cf-blob: {"country":"GB","continent":"EU"}' | grep -iE '^x-edge-pool'
    curl -s  $EDGE_URL/__edge/health
    curl -s -X POST $EDGE_URL/__edge/purge -H "authorization: Bearer $EDGE_PURGE_SECRET" -d '{"keys":["/api/products"]}'

  Or the API directly:
    curl -s $API_URL/health/ready
    curl -s $API_URL/api/products
    curl -s $API_URL/api/products/classic-tee
    curl -s -X POST $API_URL/api/price/quote -H 'content-type: application/json' \\
      -d '{"variant_id":"<id from /api/products/classic-tee>","method":"screen_print","placements":[{"location":"front","colors":2}],"quantity":24}'

  Remove a background (upload, PUT, complete, job, poll, download):
    scripts/try-cutout.sh path/to/photo.jpg      # writes photo.cutout.png

  Ctrl-C stops everything started here.

EOF

# Wait until a process exits (that is an error) or a signal arrives (the trap cleans up).
while true; do
  for i in "${!BG_PIDS[@]}"; do
    if ! kill -0 "${BG_PIDS[$i]}" 2>/dev/null; then
      wait "${BG_PIDS[$i]}" && rc=0 || rc=$?
      say "${BG_NAMES[$i]} exited (status $rc); shutting down"
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
