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

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MOTO_PORT:-5005}"
VENV="${MOTO_VENV:-$ROOT/.venv-moto}"
DIR="${MOTO_DIR:-$ROOT/.dev/moto}"
PID_FILE="$DIR/moto.pid"
LOG_FILE="$DIR/moto.log"
PYTHON="${PYTHON:-python3}"
ENDPOINT="http://127.0.0.1:$PORT"
READY_TIMEOUT_SECS=30

# Pinned so a fresh machine (CI) gets the server the tests were written against.
REQS=("moto[server]==5.2.5")

say() { printf 'moto.sh: %s\n' "$*" >&2; }
die() { printf 'moto.sh: error: %s\n' "$*" >&2; exit 1; }

ensure_venv() {
  local stamp="$VENV/.stolentee-reqs" want
  want="$(printf '%s\n' "${REQS[@]}")"
  if [[ -x "$VENV/bin/moto_server" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (install python3 and python3-venv)"
  if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV" || die "could not create a virtualenv at $VENV (install python3-venv?)"
  fi
  say "installing ${REQS[*]} (about a minute the first time)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQS[@]}" >&2 \
    || die "pip install ${REQS[*]} failed"
  [[ -x "$VENV/bin/moto_server" ]] || die "moto_server missing from $VENV/bin after install"
  echo "$want" >"$stamp"
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
  command -v curl >/dev/null 2>&1 || die "curl not found (apt-get install -y curl)"
  if our_pid >/dev/null && answers; then
    say "already running at $ENDPOINT (pid $(our_pid))"
    echo "$ENDPOINT"
    return 0
  fi
  if answers; then
    die "something else already answers on $ENDPOINT; stop it or set MOTO_PORT"
  fi
  ensure_venv
  mkdir -p "$DIR"
  rm -f "$PID_FILE"
  say "starting moto_server on $ENDPOINT (log: $LOG_FILE)"
  # setsid: the server outlives this script and is not hit by the caller's Ctrl-C.
  setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG_FILE" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PID_FILE"
  local deadline=$((SECONDS + READY_TIMEOUT_SECS))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "moto_server exited before it answered (log above)"
    fi
    if ((SECONDS >= deadline)); then
      stop
      die "moto_server did not answer on $ENDPOINT within ${READY_TIMEOUT_SECS}s"
    fi
    sleep 0.2
  done
  say "ready (pid $pid)"
  echo "$ENDPOINT"
}

stop() {
  local pid i
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping moto_server (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after 5 s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
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
