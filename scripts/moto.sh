#!/usr/bin/env bash
# moto's server: a real S3 + SQS API on 127.0.0.1 for the store crate's integration tests
# (functions/objects/tests and functions/queue/tests) and for trying the S3/SQS adapters locally.
#
#   scripts/moto.sh start    create (idempotently) the virtualenv <repo>/.venv-moto with
#                            moto[server], start moto_server in the background unless it already
#                            answers, wait until it does and print its endpoint on stdout
#                            (e.g. http://127.0.0.1:5005); everything else goes to stderr
#   scripts/moto.sh stop     stop the server this script started (pid file), if any
#   scripts/moto.sh status   exit 0 if the server this script started is running and answers
#   scripts/moto.sh endpoint print the endpoint URL
#
# moto keeps everything in memory: a restart forgets every bucket and queue. It does not check
# signatures (a tampered presigned URL still works), so tests against it prove requests are
# well-formed, not that they are authorised.
#
# Environment:
#   MOTO_PORT    port on 127.0.0.1              (default 5005)
#   MOTO_VENV    virtualenv location            (default <repo>/.venv-moto)
#   MOTO_DIR     pid file and log               (default <repo>/.dev/moto)
#   PYTHON       interpreter creating the venv  (default python3)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PORT="${MOTO_PORT:-5005}"
VENV="${MOTO_VENV:-$ROOT/.venv-moto}"
DIR="${MOTO_DIR:-$ROOT/.dev/moto}"
PID_FILE="$DIR/moto.pid"
LOG_FILE="$DIR/moto.log"
ENDPOINT="http://127.0.0.1:$PORT"
READY_TIMEOUT_SECS=30

# Pinned so a fresh machine (CI) gets the server the tests were written against.
REQS=("moto[server]==5.2.5")

ensure_moto() {
  [[ -x "$VENV/bin/moto_server" ]] || rm -f "$VENV/.stolentee-reqs"  # reinstall if it went missing
  ensure_venv "$VENV" "${REQS[@]}"
  [[ -x "$VENV/bin/moto_server" ]] || die "moto_server missing from $VENV/bin after install"
}

# Any HTTP answer on the endpoint counts (moto answers GET / with S3's ListBuckets).
answers() { curl --silent --max-time 2 --output /dev/null "$ENDPOINT/" 2>/dev/null; }

our_pid() { # prints the pid of the server we started, if it is still alive
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

start() {
  need_cmd curl "apt-get install -y curl"
  if our_pid >/dev/null && answers; then
    say "already running at $ENDPOINT (pid $(our_pid))"
    echo "$ENDPOINT"
    return 0
  fi
  if answers; then
    die "something else already answers on $ENDPOINT; stop it or set MOTO_PORT"
  fi
  ensure_moto
  mkdir -p "$DIR"
  rm -f "$PID_FILE"
  say "starting moto_server on $ENDPOINT (log: $LOG_FILE)"
  # setsid: the server outlives this script and is not hit by the caller's Ctrl-C.
  setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG_FILE" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PID_FILE"
  local rc=0
  wait_until "$pid" "$READY_TIMEOUT_SECS" answers || rc=$?
  if ((rc == 1)); then
    tail -n 20 "$LOG_FILE" >&2 || true
    rm -f "$PID_FILE"
    die "moto_server exited before it answered (log above)"
  elif ((rc == 2)); then
    stop
    die "moto_server did not answer on $ENDPOINT within ${READY_TIMEOUT_SECS}s"
  fi
  say "ready (pid $pid)"
  echo "$ENDPOINT"
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  stop_pid "$pid" moto_server
  rm -f "$PID_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) our_pid >/dev/null && answers ;;
  endpoint) echo "$ENDPOINT" ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
