# shellcheck shell=bash
# The helpers every script in scripts/ shares. Source it, do not run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It sets ROOT (the repository) and LIB_NAME (the prefix of messages: the script's name
# without .sh; set LIB_NAME after sourcing to change it), and defines:
#
#   say MSG... / die MSG...        progress / a fatal error on stderr, prefixed with LIB_NAME
#   redact URL                     URL with its password replaced by ***
#   is_root / is_debian            running as root / on Debian or Ubuntu with apt-get
#   apt_install PKG...             apt-get install, with one apt-get update and retry on failure
#   need_cmd CMD HINT              die with HINT unless CMD is on PATH
#   ensure_tool CMD [PKG] HINT     install PKG (default CMD) with apt-get when root on Debian,
#                                  else die with HINT (how to install it elsewhere)
#   ensure_venv [--upgrade-pip] [--check CODE] VENV REQ...
#                                  a virtualenv with exactly the pinned REQs (a stamp file
#                                  makes an unchanged list free); PYTHON picks the interpreter
#   cargo_target_dir               where cargo puts build output (honours config and env)
#   port_taken HOST:PORT           something accepts connections there
#   require_free_port HOST:PORT HINT
#   wait_until PID TIMEOUT CMD...  run CMD every 0.2 s until it succeeds (0), PID exits (1)
#                                  or TIMEOUT seconds pass (2)
#   wait_http NAME URL PID [TIMEOUT [LOG]]
#                                  wait for a 2xx from URL; die (with LOG's tail) otherwise
#   start_bg NAME LOG CMD...       run CMD in the background, output appended to LOG ("-":
#                                  inherit), remembered in BG_PIDS; its pid is in BG_PID
#   stop_pid PID NAME              TERM, up to 10 s, then KILL
#   on_exit CMD                    run CMD (a string) when the script exits
#   cleanup_on_exit                install the EXIT/INT/TERM traps: stop every start_bg process
#                                  (newest first), then the on_exit commands
#   pg_ensure                      scripts/pg.sh ensure: sets PG_URL, and PG_STARTED=1 when it
#                                  had to start the project-local cluster
#   pg_stop                        scripts/pg.sh stop (e.g. `((PG_STARTED)) && on_exit pg_stop`)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB_NAME="$(basename "${BASH_SOURCE[1]:-$0}" .sh)"

say() {
  if [[ -t 2 ]]; then printf '\033[1m%s:\033[0m %s\n' "$LIB_NAME" "$*" >&2; else printf '%s: %s\n' "$LIB_NAME" "$*" >&2; fi
}
die() { printf '%s: error: %s\n' "$LIB_NAME" "$*" >&2; exit 1; }

redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

is_root() { [[ "$(id -u)" == 0 ]]; }
is_debian() { [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  say "installing with apt-get: $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@" >&2; then
    say "apt-get install failed; running apt-get update and retrying"
    apt-get update >&2 && apt-get install -y --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
  fi
}

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }

ensure_tool() { # ensure_tool CMD [PKG] HINT
  local cmd="$1" pkg="$1" hint
  if (($# == 3)); then pkg="$2"; fi
  hint="${!#}"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if is_root && is_debian; then
    apt_install "$pkg"
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still not found after apt-get install $pkg"
  else
    die "$cmd not found. Install it (Debian/Ubuntu: sudo apt-get install -y $pkg; $hint)"
  fi
}

ensure_venv() { # ensure_venv [--upgrade-pip] [--check CODE] VENV REQ...
  local upgrade=0 check=""
  while [[ "${1:-}" == --* ]]; do
    case "$1" in
      --upgrade-pip) upgrade=1; shift ;;
      --check) check="$2"; shift 2 ;;
      *) die "ensure_venv: unknown option $1" ;;
    esac
  done
  local venv="$1"; shift
  local python="${PYTHON:-python3}" stamp="$venv/.stolentee-reqs" want
  want="$(printf '%s\n' "$@")"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v "$python" >/dev/null 2>&1 || die "$python not found (install python3 and python3-venv)"
  if [[ ! -x "$venv/bin/python" ]]; then
    say "creating $venv"
    "$python" -m venv "$venv" || die "could not create a virtualenv at $venv (install python3-venv?)"
  fi
  say "installing $*"
  if ((upgrade)); then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || die "pip upgrade failed"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2 || die "pip install $* failed"
  if [[ -n "$check" ]]; then
    "$venv/bin/python" -c "$check" >&2 || die "$venv: the check after installing failed"
  fi
  echo "$want" >"$stamp"
}

cargo_target_dir() {
  local dir
  dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  [[ -n "$dir" ]] || die "could not read target_directory from cargo metadata"
  printf '%s\n' "$dir"
}

port_taken() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

require_free_port() { # require_free_port HOST:PORT HINT
  if port_taken "$1"; then die "something already listens on $1; stop it or $2"; fi
}

wait_until() { # wait_until PID TIMEOUT CMD...
  local pid="$1" deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    kill -0 "$pid" 2>/dev/null || return 1
    ((SECONDS < deadline)) || return 2
    sleep 0.2
  done
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

wait_http() { # wait_http NAME URL PID [TIMEOUT [LOG]]
  local name="$1" url="$2" pid="$3" timeout="${4:-60}" log="${5:-}" rc=0
  wait_until "$pid" "$timeout" http_ok "$url" || rc=$?
  if ((rc != 0)); then
    [[ -n "$log" && -f "$log" ]] && tail -n 30 "$log" >&2
    if ((rc == 1)); then die "$name exited before it was ready${log:+ (log: $log)}"; fi
    die "$name not ready at $url after ${timeout}s${log:+ (log: $log)}"
  fi
  say "$name ready: $url"
}

BG_PIDS=()
BG_NAMES=()
LIB_ON_EXIT=()

start_bg() { # start_bg NAME LOG CMD...
  local name="$1" log="$2"
  shift 2
  if [[ "$log" == - ]]; then "$@" & else "$@" >>"$log" 2>&1 & fi
  BG_PID=$!
  BG_PIDS+=("$BG_PID")
  BG_NAMES+=("$name")
  if [[ "$log" == - ]]; then say "started $name (pid $BG_PID)"; else say "started $name (pid $BG_PID, log: ${log#"$ROOT"/})"; fi
}

stop_pid() { # stop_pid PID NAME
  local pid="$1" name="$2" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
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

on_exit() { LIB_ON_EXIT+=("$1"); }

lib_cleanup() {
  local rc=$? i
  trap - INT TERM EXIT
  for ((i = ${#BG_PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${BG_PIDS[$i]}" "${BG_NAMES[$i]}"
  done
  for i in "${LIB_ON_EXIT[@]}"; do
    eval "$i" || true
  done
  exit "$rc"
}

cleanup_on_exit() {
  trap lib_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# shellcheck disable=SC2034  # PG_URL and PG_STARTED are for the caller
pg_ensure() {
  local was_running=0
  if "$ROOT/scripts/pg.sh" status >/dev/null 2>&1; then was_running=1; fi
  PG_URL="$("$ROOT/scripts/pg.sh" ensure)" || die "scripts/pg.sh ensure failed"
  PG_STARTED=0
  if ((was_running == 0)) && "$ROOT/scripts/pg.sh" status >/dev/null 2>&1; then PG_STARTED=1; fi
}

pg_stop() { "$ROOT/scripts/pg.sh" stop; }
