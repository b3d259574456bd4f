#!/usr/bin/env bash
# The services `make test` needs, started only when not already running, and stopped again
# only if started here:
#   - Postgres (scripts/pg.sh ensure): TEST_DATABASE_URL = that server with database
#     `postgres`; tests create their own databases there
#   - moto, the S3 + SQS stand-in (scripts/moto.sh start): MOTO_ENDPOINT
#
#   services="$(scripts/services.sh up)" && eval "$services"
#                               prints `export` lines for TEST_DATABASE_URL, MOTO_ENDPOINT
#                               and TEST_SERVICES_STARTED (what `down` will stop); if a
#                               service fails to start, what was started is stopped again
#   scripts/services.sh down    stops what TEST_SERVICES_STARTED lists (newest first)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG="$ROOT/scripts/pg.sh"
MOTO="$ROOT/scripts/moto.sh"

started=()

up() {
  local url endpoint moto_running=0
  # Until the exports are printed, a failure stops what this call started.
  trap 'down_list "${started[@]}"' EXIT
  pg_ensure
  if ((PG_STARTED)); then started+=(postgres); fi
  url="$("$PG" url-for postgres "$PG_URL")"
  if "$MOTO" status >/dev/null 2>&1; then moto_running=1; fi
  endpoint="$("$MOTO" start)"
  if ((moto_running == 0)); then started+=(moto); fi
  say "MOTO_ENDPOINT=$endpoint (S3 + SQS stand-in)"
  say "TEST_DATABASE_URL=$(redact "$url")"
  printf 'export TEST_DATABASE_URL=%q\n' "$url"
  printf 'export MOTO_ENDPOINT=%q\n' "$endpoint"
  printf 'export TEST_SERVICES_STARTED=%q\n' "${started[*]}"
  trap - EXIT
}

down_list() {
  local i names=("$@")
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    case "${names[$i]}" in
      postgres) "$PG" stop || true ;;
      moto) "$MOTO" stop || true ;;
    esac
  done
}

case "${1:-}" in
  up) up ;;
  down) read -r -a started <<<"${TEST_SERVICES_STARTED:-}" && down_list "${started[@]}" ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
