#!/usr/bin/env bash
# Runs the arm64 api that `make deploy` ships (target/lambda/api/bootstrap.zip) on this machine
# under qemu's user-mode emulator, against a freshly migrated local database, and asks it
# /health/live and /health/ready: proof that the cross-built binary starts, reads its
# configuration, connects and answers, before it is uploaded.
#
#   scripts/smoke-arm64.sh          (make smoke-arm64 builds the zip first)
#
# Environment: SMOKE_PORT (default 39300), DATABASE_URL (a server to create the database
# stolentee_smoke_arm64 on; default: whatever scripts/pg.sh ensures).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

zip="$(cargo_target_dir)/lambda/api/bootstrap.zip"
[[ -f "$zip" ]] || die "$zip is not built (make deploy-build builds it)"
read -r -a qemu <<<"$(scripts/deploy-tools.sh qemu)"

work="$(mktemp -d)"
cleanup_on_exit
on_exit "rm -rf '$work'"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("bootstrap", sys.argv[2])' "$zip" "$work"
chmod +x "$work/bootstrap"
file_type="$(od -An -tx1 -j18 -N2 "$work/bootstrap" | tr -d ' ')"
[[ "$file_type" == "b700" ]] || die "$zip's bootstrap is not an arm64 ELF (e_machine $file_type)"

base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/stolentee}"
DATABASE_URL="$("$ROOT/scripts/pg.sh" url-for stolentee_smoke_arm64 "$base")" pg_ensure
((PG_STARTED)) && on_exit pg_stop
url="$PG_URL"
say "migrating $(redact "$url")"
DATABASE_URL="$url" cargo run -q -p stolentee-db --bin migrate >&2

port="${SMOKE_PORT:-39300}"
require_free_port "127.0.0.1:$port" "set SMOKE_PORT"
start_bg "arm64 api under qemu" "$work/api.log" env -i PATH="$PATH" HOME="$HOME" \
  DATABASE_URL="$url" API_BIND="127.0.0.1:$port" RUST_LOG=info "${qemu[@]}" "$work/bootstrap"
wait_http "arm64 api" "http://127.0.0.1:$port/health/live" "$BG_PID" 120 "$work/api.log"
curl -fsS --max-time 5 "http://127.0.0.1:$port/health/ready" >/dev/null \
  || { tail -n 20 "$work/api.log" >&2; die "/health/ready did not answer 200"; }
say "ok: the arm64 api answers /health/live and /health/ready under ${qemu[0]}"
