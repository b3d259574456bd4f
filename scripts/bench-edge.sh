#!/usr/bin/env bash
# `make bench-edge`: throughput and latency through the release edge, its overhead on a
# cache miss, and the hit ratio under the seed's Artillery phases.
#
# Steps (all visible below):
#   1. wrk (apt-get install when root on Debian), curl
#   2. cargo build --release -p stolentee-edge (bins `stolentee-edge`, `edge-loadgen`)
#   3. a stub origin (`edge-loadgen origin`, BENCH_ORIGIN_BIND 127.0.0.1:3900) standing in
#      for the API, so the figures are the edge's and not Postgres's: ~2 KB catalog JSON
#      with the API's catalog Cache-Control on /api/products*, the same body with
#      `no-store` on /api/nocache
#   4. the release edge on BENCH_EDGE_BIND (127.0.0.1:8788) with one pool = the stub;
#      RUST_LOG=info, logs to target/bench/edge.log; the /api/ rate limit raised out of the
#      way (its bucket is still charged on every request)
#   5. wrk scenarios, RUNS each after a warm-up, median by req/s:
#        hit     GET /api/products through the edge (X-Cache: HIT)
#        miss    GET /api/nocache through the edge (forwarded every time)
#        direct  GET /api/nocache on the stub origin (the baseline for the miss)
#      then the miss overhead at low load: wrk -t1 -c1 on miss and direct, median p50s
#   6. the Artillery phases (warm-up 10/s, ramp 50/s, sustained 100/s; durations and think
#      time x PHASE_SCALE) against a freshly started edge (cold cache), open loop
#   7. markdown on stdout and in target/bench/edge.md (raw output in target/bench/raw/)
# Everything this script started is stopped on exit.
#
# Knobs: BENCH_DURATION (20s), RUNS (3), BENCH_THREADS (2), BENCH_CONNECTIONS (64),
#        BENCH_WARMUP (3s), LATENCY_DURATION (10s), PHASE_SCALE (0.1 = 48 s of phases),
#        BENCH_EDGE_BIND (127.0.0.1:8788), BENCH_ORIGIN_BIND (127.0.0.1:3900).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${BENCH_DURATION:-20s}"
RUNS="${RUNS:-3}"
THREADS="${BENCH_THREADS:-2}"
CONNS="${BENCH_CONNECTIONS:-64}"
WARMUP="${BENCH_WARMUP:-3s}"
LAT_DURATION="${LATENCY_DURATION:-10s}"
PHASE_SCALE="${PHASE_SCALE:-0.1}"
EDGE_BIND_ADDR="${BENCH_EDGE_BIND:-127.0.0.1:8788}"
ORIGIN_BIND_ADDR="${BENCH_ORIGIN_BIND:-127.0.0.1:3900}"
EDGE="http://$EDGE_BIND_ADDR"
ORIGIN="http://$ORIGIN_BIND_ADDR"
OUT_DIR="$ROOT/target/bench"
RAW_DIR="$OUT_DIR/raw"
REPORT="$OUT_DIR/edge.md"
EDGE_LOG="$OUT_DIR/edge.log"
LUA="$ROOT/scripts/bench-api.lua"

say() { printf '\033[1mbench-edge:\033[0m %s\n' "$*" >&2; }
die() { printf 'bench-edge: error: %s\n' "$*" >&2; exit 1; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"

# --- 1. tools ------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing wrk with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends wrk >&2 \
      || { apt-get update >&2 && apt-get install -y --no-install-recommends wrk >&2; } \
      || die "apt-get install wrk failed"
  else
    die "wrk not found. Install it (Debian/Ubuntu: sudo apt-get install -y wrk; macOS: brew install wrk)"
  fi
fi
command -v curl >/dev/null 2>&1 || die "curl not found (Debian/Ubuntu: sudo apt-get install -y curl)"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs"

# --- cleanup -------------------------------------------------------------------------------
EDGE_PID=""
ORIGIN_PID=""
stop() { # stop PID NAME
  local pid="$1" name="$2" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  stop "$EDGE_PID" edge
  stop "$ORIGIN_PID" "stub origin"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 2. build ------------------------------------------------------------------------------
say "cargo build --release -p stolentee-edge"
cargo build --release -p stolentee-edge
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -n "$TARGET_DIR" ]] || die "could not read target_directory from cargo metadata"
EDGE_BIN="$TARGET_DIR/release/stolentee-edge"
LOADGEN_BIN="$TARGET_DIR/release/edge-loadgen"
[[ -x "$EDGE_BIN" && -x "$LOADGEN_BIN" ]] || die "release binaries not found: $EDGE_BIN, $LOADGEN_BIN"

# --- 3, 4. stub origin and edge ------------------------------------------------------------
for addr in "$EDGE_BIND_ADDR" "$ORIGIN_BIND_ADDR"; do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
    die "something already listens on $addr; stop it or set BENCH_EDGE_BIND / BENCH_ORIGIN_BIND"
  fi
done
mkdir -p "$OUT_DIR" "$RAW_DIR"

wait_up() { # wait_up URL PID NAME
  local deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || die "$3 exited before it was ready"
    ((SECONDS < deadline)) || die "$3 not ready at $1 after 30 s"
    sleep 0.1
  done
}

"$LOADGEN_BIN" origin "$ORIGIN_BIND_ADDR" >"$OUT_DIR/origin.log" 2>&1 &
ORIGIN_PID=$!
wait_up "$ORIGIN/health" "$ORIGIN_PID" "stub origin"

start_edge() {
  : >"$EDGE_LOG"
  (
    export EDGE_BIND="$EDGE_BIND_ADDR" EDGE_POOLS="bench=$ORIGIN" EDGE_RATE_API="1000000000/1m"
    export RUST_LOG=info LOG_FORMAT=text
    unset EDGE_COUNTRY_POOLS EDGE_CONTINENT_POOLS EDGE_FALLBACK_POOL EDGE_HEALTH_PROBE_SECS
    exec "$EDGE_BIN"
  ) >>"$EDGE_LOG" 2>&1 &
  EDGE_PID=$!
  wait_up "$EDGE/__edge/health" "$EDGE_PID" edge
}
say "starting the release edge on $EDGE (log: ${EDGE_LOG#"$ROOT"/})"
start_edge

# Pre-flight: the hit scenario must hit, the miss scenario must miss.
curl -fsS -o /dev/null "$EDGE/api/products"
xc_hit="$(curl -fsS -D - -o /dev/null "$EDGE/api/products" | tr -d '\r' | sed -n 's/^x-cache: //Ip')"
xc_miss="$(curl -fsS -D - -o /dev/null "$EDGE/api/nocache" | tr -d '\r' | sed -n 's/^x-cache: //Ip')"
[[ "$xc_hit" == HIT && "$xc_miss" == MISS ]] || die "pre-flight: expected HIT/MISS, got '$xc_hit'/'$xc_miss'"

LOAD_BEFORE="$(cut -d" " -f1-3 /proc/loadavg)"

# --- 5. wrk --------------------------------------------------------------------------------
field() { sed -E -n "s/.* $1=([^ ]+).*/\\1/p" <<<" $2"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
run_wrk() { # run_wrk URL THREADS CONNS DURATION OUTFILE -> BENCH_RESULT line
  wrk -t"$2" -c"$3" -d"$4" --timeout 2s -s "$LUA" "$1" >"$5" 2>&1 || { cat "$5" >&2; die "wrk failed for $1"; }
  grep '^BENCH_RESULT ' "$5" | tail -n 1 || die "no BENCH_RESULT line in $5"
}
median_by() { # median_by KEY LINES... (for an even count, the lower middle)
  local key="$1"; shift
  for l in "$@"; do printf '%s\t%s\n' "$(field "$key" "$l")" "$l"; done | sort -t$'\t' -k1,1g | sed -n "$((($# + 1) / 2))p" | cut -f2-
}

declare -A URL=([hit]="$EDGE/api/products" [miss]="$EDGE/api/nocache" [direct]="$ORIGIN/api/nocache")
declare -A LABEL=([hit]="cache hit: GET /api/products via edge" [miss]="cache miss: GET /api/nocache via edge" [direct]="direct: GET /api/nocache on the origin")
declare -A RESULT ALLRUNS
for s in hit miss direct; do
  if [[ "$WARMUP" != 0 && "$WARMUP" != 0s ]]; then
    run_wrk "${URL[$s]}" "$THREADS" "$CONNS" "$WARMUP" "$RAW_DIR/edge-$s.warmup.txt" >/dev/null
  fi
  lines=()
  for ((r = 1; r <= RUNS; r++)); do
    say "${LABEL[$s]}: run $r/$RUNS, wrk -t$THREADS -c$CONNS -d$DURATION"
    line="$(run_wrk "${URL[$s]}" "$THREADS" "$CONNS" "$DURATION" "$RAW_DIR/edge-$s.run$r.txt")"
    say "  $(field rps "$line") req/s, p99 $(ms "$(field p99_us "$line")"), errors $(field errors "$line")"
    lines+=("$line")
  done
  RESULT[$s]="$(median_by rps "${lines[@]}")"
  all=""
  for l in "${lines[@]}"; do all+="${all:+, }$(printf '%.0f' "$(field rps "$l")") ($(field errors "$l") err)"; done
  ALLRUNS[$s]="$all"
done

declare -A P50
for s in miss direct; do
  lines=()
  for ((r = 1; r <= RUNS; r++)); do
    say "low-load latency, ${LABEL[$s]}: run $r/$RUNS, wrk -t1 -c1 -d$LAT_DURATION"
    lines+=("$(run_wrk "${URL[$s]}" 1 1 "$LAT_DURATION" "$RAW_DIR/edge-latency-$s.run$r.txt")")
  done
  P50[$s]="$(field p50_us "$(median_by p50_us "${lines[@]}")")"
  say "  median p50 $(ms "${P50[$s]}")"
done
overhead_us=$((P50[miss] - P50[direct]))

# --- 6. Artillery phases -------------------------------------------------------------------
say "restarting the edge (cold cache) for the Artillery phases"
stop "$EDGE_PID" edge
start_edge
say "phases x$PHASE_SCALE: warm-up 10/s, ramp 50/s, sustained 100/s (open loop)"
"$LOADGEN_BIN" phases "$EDGE" "$PHASE_SCALE" | tee "$RAW_DIR/edge-phases.txt" >&2

# --- 7. report -----------------------------------------------------------------------------
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
rev="$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
if [[ "$rev" != "no commit" ]] && [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then rev+=" (dirty)"; fi
{
  echo "## Edge benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "- machine: \`nproc\` = $(nproc), ${cpu:-unknown CPU}; wrk, the edge and the stub origin share it; load average before: $LOAD_BEFORE"
  echo "- git rev: $rev; $(rustc --version 2>/dev/null || echo '?'); release build"
  echo "- load: wrk \`-t$THREADS -c$CONNS -d$DURATION\`, $RUNS runs per scenario after a $WARMUP warm-up; the run with the median req/s is shown; low-load latency \`-t1 -c1 -d$LAT_DURATION\`, median of $RUNS p50s"
  echo "- edge: \`$EDGE_BIND_ADDR\`, RUST_LOG=info, one pool = the stub origin \`$ORIGIN_BIND_ADDR\` (~2 KB JSON; catalog Cache-Control on /api/products, no-store on /api/nocache)"
  echo
  echo "| scenario | req/s | p50 | p95 | p99 | errors | all runs: req/s (errors) |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  for s in hit miss direct; do
    l="${RESULT[$s]}"
    printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "${LABEL[$s]}" "$(field rps "$l")" \
      "$(ms "$(field p50_us "$l")")" "$(ms "$(field p95_us "$l")")" "$(ms "$(field p99_us "$l")")" \
      "$(field errors "$l")" "${ALLRUNS[$s]}"
  done
  echo
  echo "Miss overhead at low load (one connection): edge p50 $(ms "${P50[miss]}") − direct p50 $(ms "${P50[direct]}") = **$(ms "$overhead_us")**."
  echo
  echo "Artillery phases x$PHASE_SCALE (cold cache; each visitor: GET /api/products?utm_source=<unique>, think $(awk -v s="$PHASE_SCALE" 'BEGIN{printf "%.1f", 3*s}') s, GET /api/products/{classic-tee|hoodie}):"
  echo
  echo "| phase | visitors | requests | req/s | HIT | MISS | STALE | errors | hit ratio | p50 | p95 | p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  while read -r line; do
    name="$(field name "$line")"; [[ -n "$name" ]] || name="total"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s ms | %s ms | %s ms |\n' "$name" \
      "$(field visitors "$line")" "$(field requests "$line")" "$(field rps "$line")" "$(field hit "$line")" \
      "$(field miss "$line")" "$(field stale "$line")" "$(field errors "$line")" "$(field hit_ratio "$line")" \
      "$(field p50_ms "$line")" "$(field p95_ms "$line")" "$(field p99_ms "$line")"
  done <"$RAW_DIR/edge-phases.txt"
} >"$REPORT"

echo >&2
cat "$REPORT"
say "report written to ${REPORT#"$ROOT"/} (raw output in ${RAW_DIR#"$ROOT"/}/)"
