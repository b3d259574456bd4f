#!/usr/bin/env bash
# `make bench-edge`: throughput and latency through the release edge, its overhead on a
# cache miss, and the hit ratio under the seed's Artillery phases.
#
# This script starts what the benchmark needs; `cargo xtask` (xtask/) does the measuring.
# Steps (all visible below):
#   1. wrk (apt-get install when root on Debian), curl
#   2. cargo build --release -p stolentee-edge -p xtask; the knobs are validated
#   3. a stub origin (`xtask load origin`, BENCH_ORIGIN_BIND 127.0.0.1:3900) standing in
#      for the API, so the figures are the edge's and not Postgres's: ~2 KB catalog JSON
#      with the API's catalog Cache-Control on /api/products*, the same body with
#      `no-store` on /api/nocache
#   4. the release edge on BENCH_EDGE_BIND (127.0.0.1:8788) with one pool = the stub;
#      RUST_LOG=info, logs to target/bench/edge.log; the /api/ rate limit raised out of the
#      way (its bucket is still charged on every request)
#   5. `xtask bench edge-throughput`: pre-flight (HIT on /api/products, MISS on /api/nocache),
#      then wrk, RUNS runs each after a warm-up:
#        hit     GET /api/products through the edge (X-Cache: HIT)
#        miss    GET /api/nocache through the edge (forwarded every time)
#        direct  GET /api/nocache on the stub origin (the baseline for the miss)
#      then the miss overhead at low load: wrk -t1 -c1 on miss and direct
#   6. the edge restarted (cold cache), then `xtask bench edge-phases`: the Artillery phases
#      (warm-up 10/s, ramp 50/s, sustained 100/s; durations and think time x PHASE_SCALE),
#      open loop
#   7. `xtask report edge`: markdown on stdout and in target/bench/edge.md (raw output in
#      target/bench/raw/)
# Everything this script started is stopped on exit.
#
# Knobs (read by xtask): BENCH_DURATION (20s), RUNS (3), BENCH_THREADS (2),
#        BENCH_CONNECTIONS (64), BENCH_WARMUP (3s), LATENCY_DURATION (10s),
#        PHASE_SCALE (0.1 = 48 s of phases).
# Read here: BENCH_EDGE_BIND (127.0.0.1:8788), BENCH_ORIGIN_BIND (127.0.0.1:3900).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

EDGE_BIND_ADDR="${BENCH_EDGE_BIND:-127.0.0.1:8788}"
ORIGIN_BIND_ADDR="${BENCH_ORIGIN_BIND:-127.0.0.1:3900}"
OUT_DIR="$ROOT/target/bench"
EDGE_LOG="$OUT_DIR/edge.log"

# --- 1. tools ------------------------------------------------------------------------------
ensure_tool wrk "macOS: brew install wrk"
need_cmd curl "Debian/Ubuntu: sudo apt-get install -y curl"
need_cmd cargo "install Rust from https://rustup.rs"
cleanup_on_exit

# --- 2. build ------------------------------------------------------------------------------
say "cargo build --release -p stolentee-edge -p xtask"
cargo build --release -p stolentee-edge -p xtask --bins
BIN="$(cargo_target_dir)/release"
XTASK="$BIN/xtask"
"$XTASK" bench edge-throughput --edge-bind "$EDGE_BIND_ADDR" --origin-bind "$ORIGIN_BIND_ADDR" --check
"$XTASK" bench edge-phases --edge-bind "$EDGE_BIND_ADDR" --check

# --- 3, 4. stub origin and edge ------------------------------------------------------------
require_free_port "$EDGE_BIND_ADDR" "set BENCH_EDGE_BIND"
require_free_port "$ORIGIN_BIND_ADDR" "set BENCH_ORIGIN_BIND"
mkdir -p "$OUT_DIR"

: >"$OUT_DIR/origin.log"
start_bg "stub origin" "$OUT_DIR/origin.log" "$XTASK" load origin "$ORIGIN_BIND_ADDR"
wait_http "stub origin" "http://$ORIGIN_BIND_ADDR/health" "$BG_PID" 30 "$OUT_DIR/origin.log"

start_edge() {
  : >"$EDGE_LOG"
  start_bg edge "$EDGE_LOG" env -u EDGE_COUNTRY_POOLS -u EDGE_CONTINENT_POOLS -u EDGE_FALLBACK_POOL \
    -u EDGE_HEALTH_PROBE_SECS EDGE_BIND="$EDGE_BIND_ADDR" EDGE_POOLS="bench=http://$ORIGIN_BIND_ADDR" \
    EDGE_RATE_API="1000000000/1m" RUST_LOG=info LOG_FORMAT=text "$BIN/stolentee-edge"
  EDGE_PID="$BG_PID"
  wait_http edge "http://$EDGE_BIND_ADDR/__edge/health" "$EDGE_PID" 30 "$EDGE_LOG"
}
start_edge

# --- 5. throughput and miss overhead -------------------------------------------------------
"$XTASK" bench edge-throughput --edge-bind "$EDGE_BIND_ADDR" --origin-bind "$ORIGIN_BIND_ADDR"

# --- 6. Artillery phases on a cold cache ---------------------------------------------------
say "restarting the edge (cold cache) for the Artillery phases"
stop_pid "$EDGE_PID" edge
start_edge
"$XTASK" bench edge-phases --edge-bind "$EDGE_BIND_ADDR"

# --- 7. report -----------------------------------------------------------------------------
"$XTASK" report edge
