#!/usr/bin/env bash
# `make bench-api`: load-test the release API with wrk and report req/s, p50/p95/p99, errors.
#
# Steps (all visible below):
#   1. wrk (apt-get install when root on Debian), curl, jq or python3
#   2. cargo build --release -p stolentee-api -p stolentee-db
#   3. Postgres via scripts/pg.sh, database `stolentee_bench` on that server, migrated +
#      seeded with the release `migrate --seed`
#   4. release `api` on BENCH_BIND (127.0.0.1:3100), RUST_LOG=info, logs to target/bench/api.log
#   5. per scenario: a short warm-up (not recorded), then RUNS wrk runs; the run with the
#      median req/s is reported
#   6. the order path at a fixed rate: examples/paced_load.rs (open loop, latency from each
#      request's scheduled time) POSTs orders at PACED_RATE req/s for PACED_DURATION, RUNS
#      times; the run with the median p95 is reported
#   7. markdown table on stdout and in target/bench/api.md (raw wrk output in target/bench/raw/)
#
# Scenarios: products, product, quote (catalog and pricing); tax (POST /api/orders/calculate-tax)
# and order (POST /api/orders: price from the primary, tax, one checkout transaction, a
# PaymentIntent). Payments use the API's built-in local provider (no STRIPE_SECRET_KEY): an
# in-process stand-in for Stripe, so the figures exclude Stripe's own network latency.
# Everything this script started (API; project-local Postgres if it started it) is stopped
# on exit.
#
# Knobs: BENCH_DURATION (30s), RUNS (3), BENCH_THREADS (2), BENCH_CONNECTIONS (64),
#        BENCH_WARMUP (3s; 0 to skip), BENCH_TIMEOUT (2s, wrk's per-request timeout),
#        BENCH_BIND (127.0.0.1:3100), BENCH_SCENARIOS ("products product quote tax order"),
#        PACED_RATE (200; 0 to skip the paced run), PACED_DURATION (30, seconds),
#        DATABASE_URL (server to use; the database name is replaced by stolentee_bench),
#        DB_MAX_CONNECTIONS, MAX_CONCURRENCY (passed to the API unchanged when set).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${BENCH_DURATION:-30s}"
RUNS="${RUNS:-3}"
THREADS="${BENCH_THREADS:-2}"
CONNS="${BENCH_CONNECTIONS:-64}"
WARMUP="${BENCH_WARMUP:-3s}"
TIMEOUT="${BENCH_TIMEOUT:-2s}"
BIND="${BENCH_BIND:-127.0.0.1:3100}"
SCENARIOS="${BENCH_SCENARIOS:-products product quote tax order}"
PACED_RATE="${PACED_RATE:-200}"
PACED_DURATION="${PACED_DURATION:-30}"
BASE="http://$BIND"
OUT_DIR="$ROOT/target/bench"
RAW_DIR="$OUT_DIR/raw"
REPORT="$OUT_DIR/api.md"
API_LOG="$OUT_DIR/api.log"
LUA="$ROOT/scripts/bench-api.lua"

say() { printf '\033[1mbench:\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ "$PACED_RATE" =~ ^[0-9]+$ ]] || die "PACED_RATE must be a non-negative integer (got '$PACED_RATE')"
[[ "$PACED_DURATION" =~ ^[1-9][0-9]*$ ]] || die "PACED_DURATION must be a positive integer (got '$PACED_DURATION')"
for s in $SCENARIOS; do
  case "$s" in products | product | quote | tax | order) ;; *) die "unknown scenario '$s' in BENCH_SCENARIOS (known: products product quote tax order)" ;; esac
done

# --- 1. tools ------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing wrk with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends wrk >&2 \
      || { apt-get update >&2 && apt-get install -y --no-install-recommends wrk >&2; } \
      || die "apt-get install wrk failed"
  else
    die "wrk not found. Install it (Debian/Ubuntu: sudo apt-get install -y wrk; macOS: brew install wrk; or build https://github.com/wg/wrk)"
  fi
fi
command -v curl >/dev/null 2>&1 || die "curl not found (Debian/Ubuntu: sudo apt-get install -y curl)"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs"
if command -v jq >/dev/null 2>&1; then
  json() { jq -r "$1 // empty"; }  # json FILTER  (stdin: JSON)
elif command -v python3 >/dev/null 2>&1; then
  json() {
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].lstrip(".").split("."):
    name, _, idx = k.partition("[")
    v = v.get(name) if isinstance(v, dict) else None
    if v is not None and idx:
        i = int(idx.rstrip("]"))
        v = v[i] if isinstance(v, list) and len(v) > i else None
    if v is None:
        sys.exit(0)
print(v)' "$1"
  }
else
  die "need jq or python3 to read JSON (Debian/Ubuntu: sudo apt-get install -y jq)"
fi

# --- cleanup -------------------------------------------------------------------------------
API_PID=""
PG_STARTED=0
cleanup() {
  local rc=$? i
  trap - INT TERM EXIT
  if [[ -n "$API_PID" ]] && kill -0 "$API_PID" 2>/dev/null; then
    say "stopping api (pid $API_PID)"
    kill -TERM "$API_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$API_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
  fi
  if ((PG_STARTED)); then scripts/pg.sh stop || true; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 2. build ------------------------------------------------------------------------------
say "cargo build --release -p stolentee-api -p stolentee-db (+ example paced_load)"
cargo build --release -p stolentee-api -p stolentee-db --bins --example paced_load
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | json .target_directory)"
[[ -n "$TARGET_DIR" ]] || die "could not read target_directory from cargo metadata"
API_BIN="$TARGET_DIR/release/api"
MIGRATE_BIN="$TARGET_DIR/release/migrate"
PACED_BIN="$TARGET_DIR/release/examples/paced_load"
[[ -x "$API_BIN" && -x "$MIGRATE_BIN" && -x "$PACED_BIN" ]] || die "release binaries not found: $API_BIN, $MIGRATE_BIN, $PACED_BIN"

# --- 3. database ---------------------------------------------------------------------------
if scripts/pg.sh status >/dev/null 2>&1; then pg_was_running=1; else pg_was_running=0; fi
wanted="$(scripts/pg.sh url-for stolentee_bench)"
BENCH_DB_URL="$(DATABASE_URL="$wanted" scripts/pg.sh ensure)"
if ((pg_was_running == 0)) && scripts/pg.sh status >/dev/null 2>&1; then PG_STARTED=1; fi
say "migrating + seeding $(redact "$BENCH_DB_URL")"
DATABASE_URL="$BENCH_DB_URL" "$MIGRATE_BIN" --seed
PG_VERSION="$(psql "$BENCH_DB_URL" -X -At -c 'SHOW server_version' 2>/dev/null || echo '?')"

# --- 4. API --------------------------------------------------------------------------------
host="${BIND%:*}" port="${BIND##*:}"
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  die "something already listens on $BIND; stop it or set BENCH_BIND"
fi
mkdir -p "$OUT_DIR" "$RAW_DIR"
: >"$API_LOG"
say "starting release api on $BASE (log: $API_LOG)"
(
  unset DATABASE_READ_URL  # the bench database only; a replica URL from the shell would point elsewhere
  export DATABASE_URL="$BENCH_DB_URL" API_BIND="$BIND" RUST_LOG=info LOG_FORMAT=text
  exec "$API_BIN"
) >>"$API_LOG" 2>&1 &  # O_APPEND, so the log can be truncated between scenarios
API_PID=$!
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null --max-time 2 "$BASE/health/ready" 2>/dev/null; do
  if ! kill -0 "$API_PID" 2>/dev/null; then
    tail -n 30 "$API_LOG" >&2 || true
    die "api exited before it was ready (log: $API_LOG)"
  fi
  ((SECONDS < deadline)) || die "api not ready at $BASE/health/ready after 60 s (log: $API_LOG)"
  sleep 0.25
done
say "api ready"

# Variant id for the quote: first variant of classic-tee.
product_json="$(curl -fsS --max-time 5 "$BASE/api/products/classic-tee")" \
  || die "GET /api/products/classic-tee failed"
VARIANT_ID="$(json '.product.variants[0].id' <<<"$product_json")"
[[ -n "$VARIANT_ID" ]] || VARIANT_ID="$(json '.variants[0].id' <<<"$product_json")"
[[ -n "$VARIANT_ID" ]] || die "no variant id in GET /api/products/classic-tee: ${product_json:0:300}"
QUOTE_BODY="{\"variant_id\":\"$VARIANT_ID\",\"method\":\"screen_print\",\"placements\":[{\"location\":\"front\",\"colors\":2}],\"quantity\":24}"
# A guest checkout of the same line, shipped to Austin. No Idempotency-Key: every request is a
# new order (the worst case: a full checkout transaction and a new PaymentIntent each time).
CART_BODY="{\"email\":\"bench@example.com\",\"items\":[{\"variant_id\":\"$VARIANT_ID\",\"quantity\":24,\"decoration\":{\"method\":\"screen_print\",\"placements\":[{\"location\":\"front\",\"colors\":2}]}}],\"shipping_address\":{\"name\":\"Bench\",\"line1\":\"1 Congress Ave\",\"city\":\"Austin\",\"state\":\"TX\",\"postal_code\":\"78701\",\"country\":\"US\"}}"

# --- 5. scenarios --------------------------------------------------------------------------
# scenario NAME -> "LABEL|METHOD|PATH|BODY"
scenario() {
  case "$1" in
    products) echo "GET /api/products|GET|/api/products|" ;;
    product) echo "GET /api/products/classic-tee|GET|/api/products/classic-tee|" ;;
    quote) echo "POST /api/price/quote|POST|/api/price/quote|$QUOTE_BODY" ;;
    tax) echo "POST /api/orders/calculate-tax|POST|/api/orders/calculate-tax|$CART_BODY" ;;
    order) echo "POST /api/orders (new order + intent each)|POST|/api/orders|$CART_BODY" ;;
    *) die "unknown scenario '$1' (known: products product quote tax order)" ;;
  esac
}

# Pre-flight: each scenario must answer 2xx, otherwise its numbers would be meaningless.
for s in $SCENARIOS; do
  IFS='|' read -r label method path body <<<"$(scenario "$s")"
  args=(-sS -o "$RAW_DIR/$s.preflight.json" -w '%{http_code}' --max-time 5 -X "$method")
  [[ -n "$body" ]] && args+=(-H 'content-type: application/json' --data "$body")
  code="$(curl "${args[@]}" "$BASE$path")" || die "$label: request failed"
  [[ "$code" == 2* ]] || die "$label answered $code: $(head -c 300 "$RAW_DIR/$s.preflight.json")"
done

# run_wrk NAME DURATION OUTFILE -> prints the BENCH_RESULT line
run_wrk() {
  local s="$1" dur="$2" out="$3" label method path body
  IFS='|' read -r label method path body <<<"$(scenario "$s")"
  BENCH_METHOD="$method" BENCH_BODY="$body" \
    wrk -t"$THREADS" -c"$CONNS" -d"$dur" --timeout "$TIMEOUT" -s "$LUA" "$BASE$path" >"$out" 2>&1 \
    || { cat "$out" >&2; die "wrk failed for $label"; }
  grep '^BENCH_RESULT ' "$out" | tail -n 1 || die "no BENCH_RESULT line in $out"
}

field() { sed -E -n "s/.* $1=([^ ]+).*/\\1/p" <<<" $2"; }  # field KEY LINE
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }

# The API logs every request at info (about 300 bytes each): keep its start-up lines, count
# what each scenario wrote, keep a tail of it in raw/, then truncate to bound disk use.
cp "$API_LOG" "$OUT_DIR/api.startup.log"
: >"$API_LOG"

declare -A RESULT ALLRUNS LOGLINES
for s in $SCENARIOS; do
  label="$(scenario "$s" | cut -d'|' -f1)"
  if [[ "$WARMUP" != 0 && "$WARMUP" != 0s ]]; then
    say "$label: warm-up $WARMUP (not recorded)"
    run_wrk "$s" "$WARMUP" "$RAW_DIR/$s.warmup.txt" >/dev/null
  fi
  lines=()
  for ((r = 1; r <= RUNS; r++)); do
    say "$label: run $r/$RUNS, wrk -t$THREADS -c$CONNS -d$DURATION"
    line="$(run_wrk "$s" "$DURATION" "$RAW_DIR/$s.run$r.txt")"
    say "  $(field rps "$line") req/s, p99 $(ms "$(field p99_us "$line")"), errors $(field errors "$line")"
    lines+=("$line")
  done
  # Median by req/s (for an even RUNS, the lower of the two middle runs).
  median="$(for l in "${lines[@]}"; do printf '%s\t%s\n' "$(field rps "$l")" "$l"; done \
    | sort -t$'\t' -k1,1g | sed -n "$(((RUNS + 1) / 2))p" | cut -f2-)"
  RESULT[$s]="$median"
  all=""
  for l in "${lines[@]}"; do
    all+="${all:+, }$(printf '%.0f' "$(field rps "$l")") ($(field errors "$l") err)"
  done
  ALLRUNS[$s]="$all"
  LOGLINES[$s]="$(wc -l <"$API_LOG")"
  tail -n 50 "$API_LOG" >"$RAW_DIR/$s.api-log-tail.txt"
  : >"$API_LOG"
done

# --- 6. the order path at a fixed rate ----------------------------------------------------------
PACED_LINE=""
PACED_ALL=""
if ((PACED_RATE > 0)); then
  printf '%s' "$CART_BODY" >"$RAW_DIR/order-body.json"
  paced=()
  : >"$API_LOG"
  for ((r = 1; r <= RUNS; r++)); do
    say "POST /api/orders at $PACED_RATE req/s (open loop): run $r/$RUNS, ${PACED_DURATION}s"
    line="$("$PACED_BIN" "$BASE/api/orders" "$PACED_RATE" "$PACED_DURATION" "$RAW_DIR/order-body.json" | grep '^PACED_RESULT ' | tail -n 1)" \
      || die "paced_load failed"
    echo "$line" >"$RAW_DIR/order-paced.run$r.txt"
    # Keep what the API said about failed requests (status and warnings) for this run.
    grep -E 'status=[45][0-9][0-9]|WARN|ERROR' "$API_LOG" | tail -n 50 >>"$RAW_DIR/order-paced.run$r.txt" || true
    : >"$API_LOG"
    say "  p95 $(ms "$(field p95_us "$line")"), achieved $(field achieved_rps "$line") req/s, errors $(field errors "$line")"
    paced+=("$line")
    PACED_ALL+="${PACED_ALL:+, }p95 $(ms "$(field p95_us "$line")")"
  done
  PACED_LINE="$(for l in "${paced[@]}"; do printf '%s\t%s\n' "$(field p95_us "$l")" "$l"; done \
    | sort -t$'\t' -k1,1g | sed -n "$(((RUNS + 1) / 2))p" | cut -f2-)"
  : >"$API_LOG"
fi

# --- 7. report -----------------------------------------------------------------------------
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
rev="$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
if [[ "$rev" != "no commit" ]] && [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then rev+=" (dirty)"; fi
wrk_version="$(wrk -v 2>&1 | head -n 1 | awk '{print $2}' || true)"
rustc_version="$(rustc --version 2>/dev/null || echo '?')"
db_shown="$(redact "$BENCH_DB_URL")"
if [[ "$WARMUP" == 0 || "$WARMUP" == 0s ]]; then warm="no warm-up"; else warm="a $WARMUP warm-up (not recorded)"; fi

{
  echo "## API benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "- machine: \`nproc\` = $(nproc), ${cpu:-unknown CPU}; load generator (wrk) on the same machine"
  echo "- git rev: $rev; $rustc_version; release build"
  echo "- load: wrk ${wrk_version:-?}, \`-t$THREADS -c$CONNS -d$DURATION --timeout $TIMEOUT\`, $RUNS run(s) per scenario after $warm; the run with the median req/s is shown"
  echo "- API: \`$BIND\`, RUST_LOG=info, LOG_FORMAT=text (logs written to a file), DB_MAX_CONNECTIONS=${DB_MAX_CONNECTIONS:-default}, MAX_CONCURRENCY=${MAX_CONCURRENCY:-default}"
  echo "- Postgres $PG_VERSION at \`$db_shown\`"
  logs=""
  for s in $SCENARIOS; do logs+="${logs:+, }$s ${LOGLINES[$s]}"; done
  echo "- API log lines written per scenario (warm-up + runs): $logs"
  echo "- errors = HTTP status >= 400 + socket errors (connect/read/write/timeout); every scenario answered 2xx in a pre-flight request"
  echo
  echo "| scenario | req/s | p50 | p95 | p99 | errors | all runs: req/s (errors) |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  for s in $SCENARIOS; do
    l="${RESULT[$s]}"
    label="$(scenario "$s" | cut -d'|' -f1)"
    errs="$(field errors "$l")"
    if [[ "$errs" != 0 ]]; then
      errs+=" (status $(field errors_status "$l"), connect $(field errors_connect "$l"), read $(field errors_read "$l"), write $(field errors_write "$l"), timeout $(field errors_timeout "$l"))"
    fi
    printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "$label" "$(field rps "$l")" \
      "$(ms "$(field p50_us "$l")")" "$(ms "$(field p95_us "$l")")" "$(ms "$(field p99_us "$l")")" \
      "$errs" "${ALLRUNS[$s]}"
  done
  if [[ -n "$PACED_LINE" ]]; then
    echo
    echo "Order path at a fixed rate (examples/paced_load.rs, open loop, latency from the scheduled send time; $RUNS run(s) of ${PACED_DURATION}s, the run with the median p95 shown):"
    echo
    echo "| scenario | target req/s | achieved req/s | p50 | p95 | p99 | max | errors | all runs |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '| POST /api/orders | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$PACED_RATE" "$(field achieved_rps "$PACED_LINE")" \
      "$(ms "$(field p50_us "$PACED_LINE")")" "$(ms "$(field p95_us "$PACED_LINE")")" "$(ms "$(field p99_us "$PACED_LINE")")" \
      "$(ms "$(field max_us "$PACED_LINE")")" "$(field errors "$PACED_LINE")" "$PACED_ALL"
  fi
} >"$REPORT"

echo >&2
cat "$REPORT"
say "report written to ${REPORT#"$ROOT"/} (raw wrk output in ${RAW_DIR#"$ROOT"/}/, api start-up log in target/bench/api.startup.log)"
