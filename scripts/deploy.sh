#!/usr/bin/env bash
# make deploy: ship what this repository can ship today, in dependency order, and say
# exactly what is missing instead of half-deploying.
#
#   1. migrations  `migrate` against DATABASE_URL (the production primary; refuses edited
#                  migrations and takes an advisory lock, so a concurrent deploy waits)
#   2. functions   `cargo lambda build --release` of `api` and `remove-bg`, then
#                  `cargo lambda deploy` of each to the functions named by API_FUNCTION_NAME
#                  and REMOVE_BG_FUNCTION_NAME (they must exist: the SAM template that creates
#                  them, the HTTP API and the SQS trigger is not written yet — infra/README.md)
#   3. edge        `wrangler deploy` in edge/ (its [build] runs worker-build for wasm32)
#
# DEPLOY_ONLY=edge|functions|migrations runs one step. Nothing is deployed until every
# prerequisite of the chosen steps has been checked.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

only="${DEPLOY_ONLY:-all}"
case "$only" in all | edge | functions | migrations) ;; *)
  say "error: DEPLOY_ONLY must be edge, functions or migrations (got '$only')"
  exit 2
  ;;
esac
wants() { [[ "$only" == all || "$only" == "$1" ]]; }

missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$1: $2"); }
need_env() { [[ -n "${!1:-}" ]] || missing+=("\$$1: $2"); }

if wants migrations; then
  need_env DATABASE_URL "the production database (postgres://…?sslmode=require)"
fi
if wants functions; then
  need_cmd cargo-lambda "pip install cargo-lambda (or see https://www.cargo-lambda.info)"
  need_env API_FUNCTION_NAME "the API Lambda function to update"
  need_env REMOVE_BG_FUNCTION_NAME "the remove-bg Lambda function to update"
  need_env AWS_REGION "the AWS region of those functions"
fi
if wants edge; then
  need_cmd wrangler "npm install -g wrangler, then wrangler login (or CLOUDFLARE_API_TOKEN)"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    missing+=("wasm32-unknown-unknown: rustup target add wasm32-unknown-unknown (the Worker is wasm)")
  fi
fi
if ((${#missing[@]})); then
  echo "deploy: cannot deploy '$only'; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

if wants migrations; then
  echo "==> migrations"
  cargo run --release -p stolentee-db --bin migrate
fi
if wants functions; then
  echo "==> functions: build"
  cargo lambda build --release -p stolentee-api --bin api
  cargo lambda build --release -p stolentee-remove-bg --bin remove-bg
  echo "==> functions: deploy"
  cargo lambda deploy --binary-name api "$API_FUNCTION_NAME"
  cargo lambda deploy --binary-name remove-bg "$REMOVE_BG_FUNCTION_NAME"
fi
if wants edge; then
  echo "==> edge"
  (cd edge && wrangler deploy)
fi
echo "deploy: done ($only)"
