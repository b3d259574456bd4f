#!/usr/bin/env bash
# `make bench-api`: load-test the release API with wrk and report req/s, p50/p95/p99, errors.
#
# This script starts what the benchmark needs; `cargo xtask` (xtask/) does the measuring.
# Steps (all visible below):
#   1. wrk (apt-get install when root on Debian), curl
#   2. cargo build --release: the API, migrate and xtask; `xtask bench api --check` validates
#      the knobs before anything is started
#   3. Postgres via scripts/pg.sh, database `stolentee_bench` on that server, migrated +
#      seeded with the release `migrate --seed`
#   4. release `api` on BENCH_BIND (127.0.0.1:3100), RUST_LOG=info, logs to target/bench/api.log
#   5. `xtask bench api` (xtask/src/bench/api.rs): a pre-flight request per scenario (each
#      must answer 2xx); per scenario a short warm-up (not recorded), then RUNS wrk runs; then
#      the order path at a fixed rate: `xtask load paced` (open loop, latency from each
#      request's scheduled time) POSTs orders at PACED_RATE req/s for PACED_DURATION, RUNS
#      times. Results in target/bench/raw/api.json, raw wrk output beside it.
#   6. `xtask report api`: the run with the median req/s per scenario and the paced run with
#      the median p95, as a markdown table on stdout and in target/bench/api.md
#
# Scenarios: products, product, quote (catalog and pricing); tax (POST /api/orders/calculate-tax)
# and order (POST /api/orders: price from the primary, tax, one checkout transaction, a
# PaymentIntent). Payments use the API's built-in local provider (no STRIPE_SECRET_KEY): an
# in-process stand-in for Stripe, so the figures exclude Stripe's own network latency.
# Everything this script started (API; project-local Postgres if it started it) is stopped
# on exit.
#
# Knobs (read by xtask; `cargo xtask bench api --help`): BENCH_DURATION (30s), RUNS (3),
#        BENCH_THREADS (2), BENCH_CONNECTIONS (64), BENCH_WARMUP (3s; 0 to skip),
#        BENCH_TIMEOUT (2s, wrk's per-request timeout), BENCH_SCENARIOS
#        ("products product quote tax order"), PACED_RATE (200; 0 to skip the paced run),
#        PACED_DURATION (30, seconds).
# Read here: BENCH_BIND (127.0.0.1:3100), DATABASE_URL (server to use; the database name is
#        replaced by stolentee_bench), DB_MAX_CONNECTIONS, MAX_CONCURRENCY (passed to the API
#        unchanged when set).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

BIND="${BENCH_BIND:-127.0.0.1:3100}"
OUT_DIR="$ROOT/target/bench"
API_LOG="$OUT_DIR/api.log"

# --- 1. tools ------------------------------------------------------------------------------
ensure_tool wrk "macOS: brew install wrk; or build https://github.com/wg/wrk"
need_cmd curl "Debian/Ubuntu: sudo apt-get install -y curl"
need_cmd cargo "install Rust from https://rustup.rs"
cleanup_on_exit

# --- 2. build ------------------------------------------------------------------------------
say "cargo build --release -p stolentee-api -p stolentee-db -p xtask"
cargo build --release -p stolentee-api -p stolentee-db -p xtask --bins
BIN="$(cargo_target_dir)/release"
XTASK="$BIN/xtask"
"$XTASK" bench api --bind "$BIND" --api-log "$API_LOG" --check

# --- 3. database ---------------------------------------------------------------------------
DATABASE_URL="$(scripts/pg.sh url-for stolentee_bench)"
export DATABASE_URL
pg_ensure
if ((PG_STARTED)); then on_exit pg_stop; fi
BENCH_DB_URL="$PG_URL"
say "migrating + seeding $(redact "$BENCH_DB_URL")"
DATABASE_URL="$BENCH_DB_URL" "$BIN/migrate" --seed
PG_VERSION="$(psql "$BENCH_DB_URL" -X -At -c 'SHOW server_version' 2>/dev/null || echo '?')"

# --- 4. API --------------------------------------------------------------------------------
require_free_port "$BIND" "set BENCH_BIND"
mkdir -p "$OUT_DIR"
: >"$API_LOG"
# The bench database only (a replica URL from the shell would point elsewhere). The log is
# appended to, so xtask can truncate it between scenarios.
start_bg api "$API_LOG" env -u DATABASE_READ_URL DATABASE_URL="$BENCH_DB_URL" API_BIND="$BIND" \
  RUST_LOG=info LOG_FORMAT=text "$BIN/api"
wait_http api "http://$BIND/health/ready" "$BG_PID" 60 "$API_LOG"

# --- 5. measure ----------------------------------------------------------------------------
"$XTASK" bench api --bind "$BIND" --api-log "$API_LOG" \
  --postgres-version "$PG_VERSION" --database "$(redact "$BENCH_DB_URL")"

# --- 6. report -----------------------------------------------------------------------------
"$XTASK" report api
