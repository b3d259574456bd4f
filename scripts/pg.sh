#!/usr/bin/env bash
# Postgres for local development, tests and benchmarks.
#
#   scripts/pg.sh ensure          make sure a Postgres answers and the target database exists;
#                                 prints the database URL on stdout (everything else: stderr)
#   scripts/pg.sh stop            stop the project-local cluster (never the system server)
#   scripts/pg.sh status          exit 0 if the project-local cluster is running
#   scripts/pg.sh url-for DB [URL]
#                                 print URL (default: $DATABASE_URL) with its database
#                                 replaced by DB (e.g. `postgres` for an admin URL)
#
# `ensure` uses the server of DATABASE_URL (default postgres://postgres@127.0.0.1:5432/stolentee)
# when it answers. Otherwise it starts a project-local cluster in .dev/pg (port 54329, trust
# auth, superuser `postgres`, unix socket inside .dev/pg) from the system's PostgreSQL binaries,
# installing them with apt-get when running as root on Debian/Ubuntu, and prints
# postgres://postgres@127.0.0.1:54329/<database of DATABASE_URL>.
#
# Environment:
#   DATABASE_URL   preferred server + database           (default above)
#   PG_LOCAL_DIR   where the local cluster lives         (default <repo>/.dev/pg)
#   PG_LOCAL_PORT  port of the local cluster             (default 54329)
#   PG_BINDIR      directory with initdb/pg_ctl/postgres (default: newest /usr/lib/postgresql/*/bin)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DEFAULT_URL="postgres://postgres@127.0.0.1:5432/stolentee"
LOCAL_DIR="${PG_LOCAL_DIR:-$ROOT/.dev/pg}"
LOCAL_PORT="${PG_LOCAL_PORT:-54329}"
DATA_DIR="$LOCAL_DIR/data"
SOCK_DIR="$LOCAL_DIR/run"
LOG_FILE="$LOCAL_DIR/postgres.log"

# url_for DB URL -> URL with the database path replaced by DB (query string kept).
url_for() {
  local db="$1" url="$2"
  local re='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$'
  [[ "$url" =~ $re ]] || die "not a postgres:// URL: $(redact "$url")"
  printf '%s/%s%s\n' "${BASH_REMATCH[1]}" "$db" "${BASH_REMATCH[4]}"
}

# db_of URL -> database name in URL (default: the user name, as libpq does; here: stolentee).
db_of() {
  local url="$1"
  local re='^postgres(ql)?://[^/?]*/([^?]+)'
  if [[ "$url" =~ $re ]]; then printf '%s\n' "${BASH_REMATCH[2]}"; else printf 'stolentee\n'; fi
}

# Locate initdb/pg_ctl/postgres. Versioned Debian directories first (a pg_ctl on PATH may be
# a wrapper), then PG_BINDIR, then pg_config --bindir, then PATH.
find_bindir() {
  local d
  if [[ -n "${PG_BINDIR:-}" ]]; then
    [[ -x "$PG_BINDIR/initdb" && -x "$PG_BINDIR/pg_ctl" && -x "$PG_BINDIR/postgres" ]] \
      || die "PG_BINDIR=$PG_BINDIR has no initdb/pg_ctl/postgres"
    printf '%s\n' "$PG_BINDIR"; return 0
  fi
  local dirs=()
  mapfile -t dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
  for d in "${dirs[@]}"; do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
      printf '%s\n' "$d"; return 0
    fi
  done
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
      printf '%s\n' "$d"; return 0
    fi
  fi
  if command -v initdb >/dev/null 2>&1; then
    d="$(dirname "$(command -v initdb)")"
    if [[ -x "$d/pg_ctl" && -x "$d/postgres" ]]; then printf '%s\n' "$d"; return 0; fi
  fi
  return 1
}

need_postgres_install() {
  if is_root && is_debian; then
    apt_install postgresql
    return 0
  fi
  die "PostgreSQL is not installed and no server answers at $(redact "$URL").
  Install the PostgreSQL server and client, e.g.
    Debian/Ubuntu:  sudo apt-get install -y postgresql
    Fedora/RHEL:    sudo dnf install -y postgresql-server postgresql
    macOS:          brew install postgresql@15
  or point DATABASE_URL at a running server."
}

ensure_client() {
  if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    if is_root && is_debian; then
      apt_install postgresql-client
    else
      die "psql/pg_isready not found. Install the PostgreSQL client
    (Debian/Ubuntu: sudo apt-get install -y postgresql-client; macOS: brew install libpq)."
    fi
  fi
}

# Run a command as the owner of the local cluster (the `postgres` user when we are root:
# initdb and postgres refuse to run as root).
as_owner() {
  if is_root; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

local_running() {
  [[ -f "$DATA_DIR/PG_VERSION" ]] || return 1
  local bindir
  bindir="$(find_bindir)" || return 1
  as_owner "$bindir/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

local_url() { printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$LOCAL_PORT" "$1"; }

start_local() {
  local bindir
  if ! bindir="$(find_bindir)"; then
    need_postgres_install
    bindir="$(find_bindir)" || die "PostgreSQL was installed but initdb/pg_ctl/postgres were not found under /usr/lib/postgresql/*/bin"
  fi

  if local_running; then
    say "project-local cluster already running ($DATA_DIR, port $LOCAL_PORT)"
    return 0
  fi

  if pg_isready -q -h 127.0.0.1 -p "$LOCAL_PORT" -t 2; then
    die "port $LOCAL_PORT is taken by another server (not the cluster in $DATA_DIR); set PG_LOCAL_PORT"
  fi

  if is_root; then
    getent passwd postgres >/dev/null || die "running as root but there is no 'postgres' user to own the cluster (install the postgresql package, or run as a normal user)"
  fi

  mkdir -p "$LOCAL_DIR"
  if is_root; then
    chown postgres: "$LOCAL_DIR"
    as_owner test -w "$LOCAL_DIR" \
      || die "user 'postgres' cannot write $LOCAL_DIR (a parent directory is not traversable?); set PG_LOCAL_DIR to a directory it can use"
  fi
  as_owner mkdir -p "$SOCK_DIR"

  # Unix socket paths are limited to ~107 bytes; fall back to TCP only when too long.
  local sockdirs="$SOCK_DIR"
  if (( ${#SOCK_DIR} + 20 > 100 )); then
    say "socket path too long, the local cluster will listen on TCP only"
    sockdirs=""
  fi

  if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
    say "initialising project-local cluster in $DATA_DIR ($("$bindir/postgres" --version))"
    as_owner "$bindir/initdb" -D "$DATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$LOCAL_DIR/initdb.log" 2>&1 \
      || as_owner "$bindir/initdb" -D "$DATA_DIR" -U postgres --auth=trust -E UTF8 --no-locale \
        >"$LOCAL_DIR/initdb.log" 2>&1 \
      || { cat "$LOCAL_DIR/initdb.log" >&2; die "initdb failed (log: $LOCAL_DIR/initdb.log)"; }
    as_owner sh -c "cat >> '$DATA_DIR/postgresql.conf'" <<EOF

# --- added by scripts/pg.sh (project-local development cluster) ---
listen_addresses = '127.0.0.1'
port = $LOCAL_PORT
unix_socket_directories = '$sockdirs'
max_connections = 200
EOF
  fi

  say "starting project-local cluster on 127.0.0.1:$LOCAL_PORT (log: $LOG_FILE)"
  if ! as_owner "$bindir/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 \
      -o "-p $LOCAL_PORT -c listen_addresses=127.0.0.1" start >&2; then
    tail -n 30 "$LOG_FILE" >&2 || true
    die "could not start the project-local cluster (log: $LOG_FILE)"
  fi
}

# ensure_db ADMIN_URL DB: create DB on the server if missing (tolerates a concurrent create).
ensure_db() {
  local admin="$1" db="$2" exists
  [[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || die "unsupported database name '$db' (use letters, digits, _)"
  exists="$(psql "$admin" -X -q -At -v ON_ERROR_STOP=1 \
    -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" \
    || die "cannot query $(redact "$admin") (wrong user/password?)"
  if [[ "$exists" != 1 ]]; then
    say "creating database $db"
    if ! psql "$admin" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >&2; then
      exists="$(psql "$admin" -X -q -At -c "SELECT 1 FROM pg_database WHERE datname = '$db'")"
      [[ "$exists" == 1 ]] || die "could not create database $db on $(redact "$admin")"
    fi
  fi
}

cmd_ensure() {
  URL="${DATABASE_URL:-$DEFAULT_URL}"
  local db admin
  db="$(db_of "$URL")"
  ensure_client
  admin="$(url_for postgres "$URL")"
  if pg_isready -q -d "$admin" -t 3; then
    say "using the server at $(redact "$URL")"
    ensure_db "$admin" "$db"
    printf '%s\n' "$URL"
    return 0
  fi
  say "no server answers at $(redact "$URL"); using a project-local cluster"
  start_local
  local lurl
  lurl="$(local_url "$db")"
  ensure_db "$(url_for postgres "$lurl")" "$db"
  printf '%s\n' "$lurl"
}

cmd_stop() {
  if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
    say "no project-local cluster in $DATA_DIR; nothing to stop"
    return 0
  fi
  if ! local_running; then
    say "project-local cluster is not running"
    return 0
  fi
  local bindir
  bindir="$(find_bindir)"
  say "stopping project-local cluster ($DATA_DIR)"
  as_owner "$bindir/pg_ctl" -D "$DATA_DIR" -m fast -w -t 60 stop >&2
}

cmd_status() {
  if local_running; then
    say "project-local cluster running: $(local_url "$(db_of "${DATABASE_URL:-$DEFAULT_URL}")")"
    return 0
  fi
  say "project-local cluster not running"
  return 1
}

case "${1:-}" in
  ensure) cmd_ensure ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url-for)
    [[ -n "${2:-}" ]] || die "usage: $0 url-for DB [URL]"
    url_for "$2" "${3:-${DATABASE_URL:-$DEFAULT_URL}}" ;;
  *)
    echo "usage: $0 ensure|stop|status|url-for DB [URL]" >&2
    exit 2 ;;
esac
