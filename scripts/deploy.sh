#!/usr/bin/env bash
# make deploy: the whole shop, from nothing, in one ordered run that stops at the first failure
# and says how to roll back.
#
#   1. preflight   tools (installed project-locally), AWS and Cloudflare credentials, every
#                  secret present in Secrets Manager in every region, no placeholders left
#   2. checks      cfn-lint, the template expanded offline, the deploy rules (connection
#                  budget, timeouts, attempts, least privilege, alarms, rollout) — the same
#                  checks make test runs
#   3. build       cargo lambda build --profile deploy --arm64 --output-format zip (api and
#                  remove-bg, once, from the workspace root); the model layer, its SHA-256
#                  checked; the arm64 api smoke-run under qemu (/health/live)
#   4. migrate     the database migrations, over TLS, before any code that needs them
#                  (expand-first: the running code keeps working on the new schema)
#   5. aws         sam deploy per region (infra/samconfig.toml); each function's new version
#                  takes traffic 25 % at a time and rolls back on its alarms
#   6. edge        the Worker with wrangler: R2 bucket and its CORS/lifecycle, secrets, deploy
#                  (Durable Object migrations are part of it)
#   7. smoke       /health/ready of every region, /api/products through the edge
#   8. summary     URLs, versions, and the commands that roll this deploy back
#
# Modes:
#   DRY_RUN=1   no credentials needed, nothing changes: prints the resolved parameters per
#               region, the connection-budget table, the alarms, the resources, zip sizes and
#               digests if built, the Worker's bindings, and every command a deploy would run
#   PLAN=1      with credentials: steps 1-3, then a CloudFormation change set per region,
#               shown and not executed
# Environment: REGIONS="prod-eu-west ..." limits step 5 and 7 to those config environments;
#   CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID for wrangler; CF_ZONE_ID and CF_API_TOKEN
#   (Zone > Cache Purge only) for the Worker's purges; AWS credentials as the AWS CLI finds
#   them (AWS_PROFILE, environment, SSO).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

DRY_RUN="${DRY_RUN:-0}"
PLAN="${PLAN:-0}"
[[ "$DRY_RUN" == 1 && "$PLAN" == 1 ]] && die "DRY_RUN=1 and PLAN=1 are different modes; pick one"

SAMCONFIG=infra/samconfig.toml
TEMPLATE=infra/template.yaml
LAMBDA_DIR=target/lambda
LAYER_ZIP="$LAMBDA_DIR/model-layer.zip"
MODEL=models/u2netp.onnx

step() { printf '\n==> %s\n' "$*" >&2; }

# DEPLOY_PLAN: a built deploy-plan binary (make test passes the one its test build made).
deploy_plan() {
  if [[ -n "${DEPLOY_PLAN:-}" ]]; then "$DEPLOY_PLAN" --root "$ROOT" "$@"; else
    cargo run -q -p stolentee-infra --bin deploy-plan -- --root "$ROOT" "$@"
  fi
}

param() { deploy_plan param "$1" "$2"; } # the value a region resolves (override, else default)

model_sha() { param "$(first_env)" ModelSha256; }
first_env() { deploy_plan envs | awk 'NR == 1 {print $1}'; }

selected_envs() {
  local all
  all="$(deploy_plan envs | cut -d' ' -f1)"
  if [[ -z "${REGIONS:-}" ]]; then echo "$all"; return; fi
  for env in $REGIONS; do
    grep -qx "$env" <<<"$all" || die "REGIONS: no config environment '$env' in $SAMCONFIG (have: $(tr '\n' ' ' <<<"$all"))"
    echo "$env"
  done
}

region_of() { deploy_plan envs | awk -v e="$1" '$1 == e {print $2}'; }
stack_of() { deploy_plan envs | awk -v e="$1" '$1 == e {print $3}'; }

sam_command() { # the sam deploy command for ENV, one argument per line
  local env="$1"
  printf '%s\n' sam deploy --template-file "$TEMPLATE" --config-file "$ROOT/$SAMCONFIG" --config-env "$env" \
    --no-fail-on-empty-changeset --parameter-overrides
  deploy_plan overrides "$env" --set "ModelSha256=$(model_sha)"
}

# The edge's pinned tools (Node 22, wrangler) on PATH, WRANGLER set: scripts/edge-tools.sh.
edge_tools() {
  scripts/edge-tools.sh run >&2 || return 1
  eval "$(scripts/edge-tools.sh env)"
  [[ -x "${WRANGLER:-}" ]]
}

# --- 2. offline checks (also make test) ---------------------------------------------------
checks() {
  step "checks: cfn-lint, offline expansion, deploy rules"
  scripts/infra-check.sh
  local strict=()
  [[ "$DRY_RUN" == 1 ]] || strict=(--strict)
  deploy_plan "${strict[@]}" report >"$LAMBDA_DIR/plan.md" || {
    cat "$LAMBDA_DIR/plan.md"
    die "a deploy rule failed (above); nothing was built or changed"
  }
  say "deploy rules pass (full report: $LAMBDA_DIR/plan.md)"
}

# --- 3. build -------------------------------------------------------------------------------
artifacts() { # sizes and digests of whatever is built
  local f
  for f in "$LAMBDA_DIR/api/bootstrap.zip" "$LAMBDA_DIR/remove-bg/bootstrap.zip" "$LAYER_ZIP"; do
    if [[ -f "$f" ]]; then
      printf '| %s | %s | %s |\n' "$f" "$(du -k "$f" | cut -f1) KiB" "$(sha256sum "$f" | cut -d' ' -f1)"
    else
      printf '| %s | not built | – |\n' "$f"
    fi
  done
}

build() {
  step "build: arm64 zips (cargo lambda, profile deploy) and the model layer"
  local bin
  bin="$(scripts/deploy-tools.sh lambda)"
  PATH="$bin:$PATH" cargo lambda build --profile deploy --arm64 --output-format zip --bin api --bin remove-bg
  scripts/fetch-model.sh >&2
  local want have
  want="$(model_sha)"
  have="$(sha256sum "$MODEL" | cut -d' ' -f1)"
  [[ "$have" == "$want" ]] || die "$MODEL has SHA-256 $have but the template's ModelSha256 is $want"
  python3 - "$MODEL" "$LAYER_ZIP" <<'PY'
import sys, zipfile
# Fixed timestamp and mode: the same model gives the same zip, so SAM uploads it once.
info = zipfile.ZipInfo("models/u2netp.onnx", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = 0o644 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(sys.argv[1], "rb") as src, zipfile.ZipFile(sys.argv[2], "w") as z:
    z.writestr(info, src.read())
PY
  printf '\n| artifact | size | sha256 |\n|---|---:|---|\n' >&2
  artifacts >&2
  scripts/smoke-arm64.sh
}

# --- 1. preflight ---------------------------------------------------------------------------
SECRET_KEYS=(DATABASE_URL JWT_KEYS ORDER_TOKEN_SECRET STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET EDGE_PURGE_SECRET EDGE_ORIGIN_SECRETS)

preflight() {
  step "preflight: tools, credentials, secrets, placeholders"
  local missing=() aws sam
  command -v python3 >/dev/null || missing+=("python3: the deploy tools are Python packages")
  aws="$(scripts/deploy-tools.sh aws)" || missing+=("the AWS CLI (scripts/deploy-tools.sh aws failed)")
  sam="$(scripts/deploy-tools.sh sam)" || missing+=("the SAM CLI (scripts/deploy-tools.sh sam failed)")
  scripts/deploy-tools.sh lambda >/dev/null || missing+=("cargo-lambda (scripts/deploy-tools.sh lambda failed)")
  scripts/deploy-tools.sh qemu >/dev/null || missing+=("qemu-aarch64 for the arm64 smoke test")
  edge_tools || missing+=("wrangler: scripts/edge-tools.sh run could not install it")
  [[ "${CF_ZONE_ID:-}" =~ ^[0-9a-f]{32}$ ]] || missing+=("\$CF_ZONE_ID: the zone's id (32 hex digits; the Worker's purges need it)")
  [[ -n "${CF_API_TOKEN:-}" ]] || missing+=("\$CF_API_TOKEN: a token with only Zone > Cache Purge, for the Worker's purges")
  [[ -n "${CLOUDFLARE_API_TOKEN:-}" ]] || missing+=("\$CLOUDFLARE_API_TOKEN: a Cloudflare API token that may deploy Workers and edit R2")
  [[ -n "${CLOUDFLARE_ACCOUNT_ID:-}" ]] || missing+=("\$CLOUDFLARE_ACCOUNT_ID: the Cloudflare account")
  if ((${#missing[@]})); then
    printf 'deploy: cannot deploy; missing:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
  fi
  AWS="$aws" SAM="$sam"
  "$AWS" sts get-caller-identity --output text --query Arn >&2 || die "no AWS credentials (aws sts get-caller-identity failed)"

  # No placeholders: in the deploy's parameters (checked with the rules, --strict) and in the
  # Worker's configuration.
  if grep -nE '"<[^"]*>"|= *"REPLACE' edge/wrangler.toml >&2; then
    die "edge/wrangler.toml still holds placeholders (above); fill them in"
  fi

  # Every secret, in every region, present and not a placeholder; one database and one edge
  # secret for all regions.
  local env region secret_name json db_urls="" purge="" origin=""
  for env in $(selected_envs); do
    region="$(region_of "$env")"
    secret_name="$(param "$env" SecretName)"
    json="$("$AWS" secretsmanager get-secret-value --region "$region" --secret-id "$secret_name" \
      --query SecretString --output text)" || die "$env: cannot read secret $secret_name in $region"
    local keys=("${SECRET_KEYS[@]}")
    [[ "$(param "$env" ObjectStore)" == r2 ]] && keys+=(S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY)
    python3 - "$env" "$json" "${keys[@]}" <<'PY' || exit 1
import json, sys
env, raw, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    secret = json.loads(raw)
except ValueError:
    sys.exit(f"deploy: {env}: the secret is not a JSON object of KEY: value")
bad = []
for key in keys:
    value = str(secret.get(key, "")).strip()
    if not value:
        bad.append(f"{key} is missing")
    elif any(p in value for p in ("<", "changeme", "REPLACE", "example.com")):
        bad.append(f"{key} is a placeholder")
url = str(secret.get("DATABASE_URL", ""))
if url and "sslmode=require" not in url:
    bad.append("DATABASE_URL must say sslmode=require (the database is reached over the internet)")
if bad:
    sys.exit(f"deploy: {env}: secret problems: " + "; ".join(bad))
PY
    db_urls+="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["DATABASE_URL"])' "$json")"$'\n'
    purge+="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["EDGE_PURGE_SECRET"])' "$json")"$'\n'
    origin+="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["EDGE_ORIGIN_SECRETS"])' "$json")"$'\n'
  done
  [[ "$(sort -u <<<"$db_urls" | grep -c .)" == 1 ]] || die "the regions' DATABASE_URL secrets differ: every region must use the one primary"
  [[ "$(sort -u <<<"$purge" | grep -c .)" == 1 ]] || die "the regions' EDGE_PURGE_SECRET secrets differ: there is one edge"
  DATABASE_URL_FROM_SECRET="$(head -n1 <<<"$db_urls")"
  EDGE_PURGE_SECRET_VALUE="$(head -n1 <<<"$purge")"
  [[ "$(sort -u <<<"$origin" | grep -c .)" == 1 ]] || die "the regions' EDGE_ORIGIN_SECRETS differ: there is one edge"
  # The origins accept every listed secret (rotation); the edge sends the first.
  EDGE_ORIGIN_SECRET_VALUE="$(head -n1 <<<"$origin" | cut -d, -f1 | tr -d ' ')"
  say "preflight ok"
}

# --- 4..8 -----------------------------------------------------------------------------------
PREVIOUS=()     # "region function version" before this deploy, for the rollback commands
DONE_STEPS=()

rollback_help() {
  local rc=$?
  ((rc == 0)) && return
  printf '\ndeploy: FAILED (exit %d) after: %s\n' "$rc" "${DONE_STEPS[*]:-nothing}" >&2
  cat >&2 <<'EOF'
How to roll back what did finish:
  - functions: a failed or alarmed rollout has already returned the `live` alias to the
    previous version (CodeDeploy) and CloudFormation has rolled the stack back. To undo a
    completed region, point the alias back:
EOF
  local line
  for line in "${PREVIOUS[@]}"; do
    read -r region fn version <<<"$line"
    printf '      aws lambda update-alias --region %s --function-name %s --name live --function-version %s\n' \
      "$region" "$fn" "$version" >&2
  done
  cat >&2 <<'EOF'
    or deploy the previous git revision with `make deploy`.
  - database: migrations are expand-only, so the previous code runs on the new schema; nothing
    to undo. Never edit an applied migration; write a new one.
  - edge: `wrangler rollback` (from edge/) returns the Worker to its previous version.
EOF
}

remember_versions() { # the live versions before this deploy, if the stack exists
  local region="$1" stage fn v
  stage="$(param "$2" Stage)"
  for fn in "stolentee-$stage-api" "stolentee-$stage-remove-bg"; do
    v="$("$AWS" lambda get-alias --region "$region" --function-name "$fn" --name live \
      --query FunctionVersion --output text 2>/dev/null)" || continue
    PREVIOUS+=("$region $fn $v")
  done
}

migrate_db() {
  step "migrate: $(redact "$DATABASE_URL_FROM_SECRET")"
  DATABASE_URL="$DATABASE_URL_FROM_SECRET" cargo run -q --release -p stolentee-db --bin migrate
  DONE_STEPS+=(migrate)
}

aws_deploy() {
  local env region args
  for env in $(selected_envs); do
    region="$(region_of "$env")"
    step "aws: $env ($region)"
    remember_versions "$region" "$env"
    mapfile -t args < <(sam_command "$env")
    args=("$SAM" "${args[@]:1}")
    if [[ "$PLAN" == 1 ]]; then
      args+=(--no-execute-changeset)
    fi
    "${args[@]}"
    DONE_STEPS+=("aws:$env")
  done
}

edge_deploy() {
  step "edge: R2 bucket, secrets, Worker"
  local bucket
  bucket="$(param "$(first_env)" BucketName)"
  scripts/worker-build.sh
  (
    cd edge
    "$WRANGLER" r2 bucket create "$bucket" 2>&1 | grep -v "already exists" >&2 || true
    "$WRANGLER" r2 bucket cors set "$bucket" --file ../infra/r2-cors.json --force
    "$WRANGLER" r2 bucket lifecycle add "$bucket" abandoned-uploads incoming/ --expire-days 2 --abort-multipart-days 1 --force \
      2>&1 | grep -v "already exists" >&2 || true
    printf '%s' "$EDGE_PURGE_SECRET_VALUE" | "$WRANGLER" secret put EDGE_PURGE_SECRET
    printf '%s' "$EDGE_ORIGIN_SECRET_VALUE" | "$WRANGLER" secret put EDGE_ORIGIN_SECRET
    printf '%s' "$CF_API_TOKEN" | "$WRANGLER" secret put CF_API_TOKEN
    "$WRANGLER" deploy --var "CF_ZONE_ID:$CF_ZONE_ID"
  )
  DONE_STEPS+=(edge)
}

smoke() {
  step "smoke: every region's /health/ready, the catalog through the edge"
  local env region stack url host code
  for env in $(selected_envs); do
    region="$(region_of "$env")"
    stack="$(stack_of "$env")"
    url="$("$AWS" cloudformation describe-stacks --region "$region" --stack-name "$stack" \
      --query "Stacks[0].Outputs[?OutputKey=='ApiUrl'].OutputValue" --output text)"
    curl -fsS --max-time 10 -H "x-edge-auth: $EDGE_ORIGIN_SECRET_VALUE" "$url/health/ready" >/dev/null \
      || die "$env: $url/health/ready did not answer 200"
    # The origin must refuse anyone but the edge.
    code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$url/api/products")" || true
    [[ "$code" == 403 ]] || die "$env: $url/api/products answered $code without the edge's secret (want 403)"
    say "$env: $url/health/ready ok; closed to direct callers"
    SUMMARY+=("| $env | $region | $url |")
  done
  host="$(sed -n 's/^EDGE_PUBLIC_HOST *= *"\(.*\)"/\1/p' edge/wrangler.toml)"
  curl -fsS --max-time 10 "https://$host/api/products" >/dev/null || die "https://$host/api/products did not answer 200"
  say "edge: https://$host/api/products ok"
  SUMMARY+=("| edge | Cloudflare | https://$host |")
}

dry_run() {
  step "dry run: nothing is deployed and no credentials are used"
  mkdir -p "$LAMBDA_DIR"
  checks
  cat "$LAMBDA_DIR/plan.md"
  printf '## Artifacts\n\n| artifact | size | sha256 |\n|---|---:|---|\n'
  artifacts
  printf '\n(`make deploy-build` builds them.)\n\n## The Worker\n\n'
  local out
  if [[ -f edge/worker/build/worker/shim.mjs ]] && (edge_tools); then
    out="$(mktemp -d)"
    (edge_tools && cd edge && CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false \
      "$WRANGLER" deploy --dry-run --outdir "$out") 2>&1 | sed 's/^/    /'
    rm -rf "$out"
  else
    printf 'Not built yet (scripts/worker-build.sh builds it; make test does); its bindings are in edge/wrangler.toml.\n'
  fi
  printf '\n## Commands a deploy runs, in order\n\n```\n'
  printf '%s\n' "# 1. preflight" "aws sts get-caller-identity"
  local env region
  for env in $(selected_envs); do
    region="$(region_of "$env")"
    printf 'aws secretsmanager get-secret-value --region %s --secret-id %s\n' "$region" "$(param "$env" SecretName)"
  done
  printf '%s\n' "# 2. checks" "scripts/infra-check.sh" "deploy-plan --strict report" \
    "# 3. build" "cargo lambda build --profile deploy --arm64 --output-format zip --bin api --bin remove-bg" \
    "zip $LAYER_ZIP $MODEL   # sha256 must be $(model_sha)" "scripts/smoke-arm64.sh" \
    "# 4. migrate (DATABASE_URL from the secret, sslmode=require)" \
    "cargo run --release -p stolentee-db --bin migrate" "# 5. aws, region by region"
  for env in $(selected_envs); do
    sam_command "$env" | tr '\n' ' '
    printf '\n'
  done
  printf '%s\n' "# 6. edge (from edge/)" "scripts/worker-build.sh" \
    "wrangler r2 bucket create $(param "$(first_env)" BucketName)" \
    "wrangler r2 bucket cors set $(param "$(first_env)" BucketName) --file ../infra/r2-cors.json" \
    "wrangler r2 bucket lifecycle add $(param "$(first_env)" BucketName) abandoned-uploads incoming/ --expire-days 2 --abort-multipart-days 1" \
    "wrangler secret put EDGE_PURGE_SECRET" "wrangler secret put EDGE_ORIGIN_SECRET" "wrangler secret put CF_API_TOKEN" \
    "wrangler deploy --var CF_ZONE_ID:\$CF_ZONE_ID" \
    "# 7. smoke" "curl <ApiUrl of each region>/health/ready" "curl https://<EDGE_PUBLIC_HOST>/api/products"
  printf '```\n'
  say "dry run done: the rules pass; see above for what a deploy would do"
}

mkdir -p "$LAMBDA_DIR"
if [[ "${1:-}" == build ]]; then # make deploy-build: step 3 alone
  build
  exit 0
fi
if [[ "$DRY_RUN" == 1 ]]; then
  dry_run
  exit 0
fi

SUMMARY=()
trap rollback_help EXIT
preflight
checks
build
DONE_STEPS+=(build)
if [[ "$PLAN" == 1 ]]; then
  aws_deploy
  say "plan: change sets created and not executed (see above); nothing else changed"
  exit 0
fi
migrate_db
aws_deploy
edge_deploy
smoke
step "summary"
printf '| where | region | URL |\n|---|---|---|\n'
printf '%s\n' "${SUMMARY[@]}"
printf '\nRoll back: wrangler rollback (edge/); per function:\n'
for line in "${PREVIOUS[@]}"; do
  read -r region fn version <<<"$line"
  printf '  aws lambda update-alias --region %s --function-name %s --name live --function-version %s\n' "$region" "$fn" "$version"
done
say "deployed"
