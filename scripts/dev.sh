#!/usr/bin/env bash
# `make dev`: the whole local stack on 127.0.0.1, stopped again with Ctrl-C.
#
#   1. Postgres: the server at DATABASE_URL if it answers, else a project-local cluster
#      (scripts/pg.sh ensure)
#   2. migrations + seed catalog (stolentee-store `migrate --seed`, idempotent)
#   3. the API function as a local HTTP server on API_BIND (default 127.0.0.1:3000)
#   4. (later) edge on 127.0.0.1:8787, remove-bg worker: see "Later processes" below
#
# On Ctrl-C / TERM / exit it stops every process it started, in reverse order, and the
# project-local Postgres cluster only if this script started it.
#
# Environment: DATABASE_URL, API_BIND, RUST_LOG (default info), LOG_FORMAT (default text),
# DB_MAX_CONNECTIONS, MAX_CONCURRENCY, DATABASE_READ_URL (passed through to the API).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export API_BIND="${API_BIND:-127.0.0.1:3000}"
export RUST_LOG="${RUST_LOG:-info}"
export LOG_FORMAT="${LOG_FORMAT:-text}"
API_URL="http://$API_BIND"
READY_TIMEOUT="${READY_TIMEOUT:-60}"

say() { printf '\033[1mdev:\033[0m %s\n' "$*" >&2; }
die() { printf 'dev: error: %s\n' "$*" >&2; exit 1; }

for tool in cargo curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (cargo: install Rust from https://rustup.rs; curl: apt-get install -y curl)"
done

# ---------------------------------------------------------------------------------------
# Process bookkeeping: everything started with start_bg is stopped by cleanup().
PIDS=()
NAMES=()
PG_STARTED=0
CLEANED=0

start_bg() { # start_bg NAME CMD... (runs in the background, remembered for cleanup)
  local name="$1"; shift
  "$@" &
  PIDS+=("$!")
  NAMES+=("$name")
  say "started $name (pid $!)"
}

stop_pid() { # stop_pid PID NAME: TERM, wait up to 10 s, then KILL
  local pid="$1" name="$2" i
  kill -0 "$pid" 2>/dev/null || return 0
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  ((CLEANED)) && return 0
  CLEANED=1
  trap - INT TERM EXIT
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${PIDS[$i]}" "${NAMES[$i]}"
  done
  if ((PG_STARTED)); then
    scripts/pg.sh stop || true
  fi
  say "stopped"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_ready NAME URL PID: poll URL until it answers 2xx; fail if PID dies or on timeout.
wait_ready() {
  local name="$1" url="$2" pid="$3" deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "$name exited before it was ready (see its output above)"
    ((SECONDS < deadline)) || die "$name not ready at $url after ${READY_TIMEOUT}s"
    sleep 0.25
  done
  say "$name ready: $url"
}

# ---------------------------------------------------------------------------------------
# 0. Ports we will serve on must be free.
if (exec 3<>"/dev/tcp/${API_BIND%:*}/${API_BIND##*:}") 2>/dev/null; then
  die "something already listens on $API_BIND; stop it or set API_BIND"
fi

# 1. Postgres
if scripts/pg.sh status >/dev/null 2>&1; then pg_was_running=1; else pg_was_running=0; fi
DATABASE_URL="$(scripts/pg.sh ensure)"
export DATABASE_URL
if ((pg_was_running == 0)) && scripts/pg.sh status >/dev/null 2>&1; then PG_STARTED=1; fi

# 2. Migrations + seed
say "migrating and seeding"
cargo run -p stolentee-store --bin migrate -- --seed

# 3. The cut-out model (md5-checked; fetched once)
say "checking the cut-out model"
scripts/fetch-model.sh
export MODELS_DIR="${MODELS_DIR:-$PWD/models}"

# 4. API + remove-bg worker in one process (stolentee-dev): local object store under
#    .dev/objects served with expiring signed URLs, in-process queue feeding the worker
#    real SqsEvent batches.
export OBJECT_STORE="${OBJECT_STORE:-local}" QUEUE="${QUEUE:-memory}"
export LOCAL_OBJECTS_DIR="${LOCAL_OBJECTS_DIR:-$PWD/.dev/objects}" LOCAL_OBJECTS_PUBLIC_URL="${LOCAL_OBJECTS_PUBLIC_URL:-$API_URL}"
say "building the API and the worker"
cargo build -p stolentee-dev-stack --bin stolentee-dev
start_bg api+worker cargo run -p stolentee-dev-stack --bin stolentee-dev
API_PID="${PIDS[-1]}"
wait_ready api "$API_URL/health/ready" "$API_PID"

# 5. Later processes: start them here with start_bg and wait_ready, e.g.
#   start_bg edge   <edge dev server, 127.0.0.1:8787>
#   wait_ready edge http://127.0.0.1:8787/health "${PIDS[-1]}"

# ---------------------------------------------------------------------------------------
redacted_db="$(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$DATABASE_URL")"
cat >&2 <<EOF

  Stolen Tee dev stack is up.

    API        $API_URL        (edge will be on http://127.0.0.1:8787 later)
    Postgres   $redacted_db

  Try:
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
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      wait "${PIDS[$i]}" && rc=0 || rc=$?
      say "${NAMES[$i]} exited (status $rc); shutting down"
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
