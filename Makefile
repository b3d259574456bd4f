# Stolen Tee backend. Every target is a plain, visible sequence of commands; the scripts it
# calls live in scripts/ and say what they do, and the benchmarks measure with `cargo xtask`
# (xtask/README.md).
#
#   make dev        Postgres (DATABASE_URL or a project-local cluster) + migrate + seed + API
#                   on http://127.0.0.1:3000; Ctrl-C stops what it started
#   make test       fmt --check, clippy -D warnings, unit + integration tests on real Postgres
#   make migrate    apply migrations to DATABASE_URL (ensuring Postgres first)
#   make seed       apply migrations and load the seed catalog (idempotent)
#   make fmt        format the workspace
#   make lint       fmt --check + clippy -D warnings (no database needed)
#   make bench-api  wrk load test of the release API; writes target/bench/api.md
#   make bench-edge the release edge: hit/miss throughput, miss overhead, Artillery hit ratio
#   make load-edge  the seed's load test through make dev's stack (Worker in workerd -> API ->
#                   Postgres): Artillery phases + uploads/cut-outs; LOAD_SCALE=0.1 shortens it
#   make bench-cutout  this engine vs rembg (onnxruntime) on the same photos and cores
#   make model      fetch the cut-out model weights (checksummed) into models/
#   make deploy     the whole shop on AWS + Cloudflare: preflight, checks, arm64 build, migrate,
#                   sam deploy per region (gradual rollout), the Worker, smoke test
#                   DRY_RUN=1: no credentials, prints the plan; PLAN=1: change sets only
#   make deploy-build  the arm64 Lambda zips and the model layer, smoke-run under qemu
#   make smoke-arm64   run the built arm64 api under qemu against a local database
#   make bench-cold-start  each function's Lambda cold start against a local Runtime API
#   make drill-jobs the worker chaos drills at full size: SIGKILL mid-job, a Postgres outage,
#                   a poison message in a batch of ten (shortened in make test)
#   make clean-dev  stop the project-local Postgres cluster and delete .dev/

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# Each recipe runs in one shell, so a recipe's lines can be its steps: what an early line
# starts (make test's services), a trap on that shell stops however a later line ends.
.ONESHELL:
.DEFAULT_GOAL := help

CARGO ?= cargo
PG := scripts/pg.sh
MOTO := scripts/moto.sh
FMT_CHECK := $(CARGO) fmt --all -- --check
CLIPPY := $(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: help dev test migrate seed fmt lint bench-api bench-edge load-edge bench-cutout model deploy clean-dev \
        deploy-build smoke-arm64 bench-cold-start drill-jobs \
        check-cargo check-rustfmt check-clippy

help:
	@sed -n 's/^#   make /  make /p' $(firstword $(MAKEFILE_LIST))

# --- tool checks ---------------------------------------------------------------------------
check-cargo:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "error: cargo not found. Install Rust with rustup: https://rustup.rs" >&2; exit 1; }

check-rustfmt: check-cargo
	@if ! $(CARGO) fmt --version >/dev/null 2>&1; then \
	  if command -v rustup >/dev/null 2>&1; then \
	    echo "==> rustfmt missing: rustup component add rustfmt" >&2; rustup component add rustfmt; \
	  else \
	    echo "error: rustfmt not found (cargo fmt). Install the rustfmt component of your Rust toolchain" >&2; exit 1; \
	  fi; \
	fi

check-clippy: check-cargo
	@if ! $(CARGO) clippy --version >/dev/null 2>&1; then \
	  if command -v rustup >/dev/null 2>&1; then \
	    echo "==> clippy missing: rustup component add clippy" >&2; rustup component add clippy; \
	  else \
	    echo "error: clippy not found (cargo clippy). Install the clippy component of your Rust toolchain" >&2; exit 1; \
	  fi; \
	fi

# --- development ---------------------------------------------------------------------------
dev: check-cargo
	scripts/dev.sh

migrate: check-cargo
	DATABASE_URL="$$($(PG) ensure)" $(CARGO) run -p stolentee-db --bin migrate

seed: check-cargo
	DATABASE_URL="$$($(PG) ensure)" $(CARGO) run -p stolentee-db --bin migrate -- --seed

fmt: check-rustfmt
	$(CARGO) fmt --all

lint: check-rustfmt check-clippy
	$(FMT_CHECK)
	$(CLIPPY)

# make test (and exactly what .ci/run runs), in eight steps:
#  1. services (scripts/services.sh): Postgres, TEST_DATABASE_URL = the ensured server with
#     database `postgres` (tests create their own databases there); moto, the S3 + SQS
#     stand-in on 127.0.0.1:5005, MOTO_ENDPOINT. Whatever this step started is stopped when
#     the recipe ends, passing or failing (the trap); what was already running is left alone.
#  2. the u2netp model (md5-checked) and the rembg virtualenv: the parity test runs rembg
#     itself (CUTOUT_PARITY=1 makes a missing model or virtualenv a failure, not a skip)
#     then the edge Worker (scripts/worker-build.sh: wasm32 target, wasm-bindgen-cli,
#     worker-build, Node 22, wrangler/workerd, esbuild — pinned, into .tools/ — and the
#     release wasm build): edge/worker/tests/workerd.rs runs it in workerd and fails, never
#     skips, when it cannot
#  3. format check  4. link rules  5. clippy
#  6. the deploy's offline checks: cfn-lint, the SAM template expanded per region and linted
#  7. unit + integration tests of the whole workspace (the deploy rules, the workerd suite)
#  8. `make deploy DRY_RUN=1` in an empty environment (no credentials): the plan it prints
test: check-rustfmt check-clippy
	@echo "==> 1/8 services: Postgres + moto"
	services="$$(scripts/services.sh up)"
	eval "$$services"
	trap 'scripts/services.sh down' EXIT
	echo "==> 2/8 cut-out model + rembg reference virtualenv"
	scripts/fetch-model.sh
	scripts/rembg-venv.sh
	echo "==> 2/8 the edge Worker for the workerd suite: pinned tools into .tools/, wasm32 build"
	scripts/worker-build.sh
	export CUTOUT_PARITY=1 MODELS_DIR="$$PWD/models"
	echo "==> 3/8 $(FMT_CHECK)"
	$(FMT_CHECK)
	echo "==> 4/8 scripts/check-links.sh: each binary links only what it uses"
	scripts/check-links.sh
	echo "==> 5/8 $(CLIPPY)"
	$(CLIPPY)
	echo "==> 6/8 scripts/infra-check.sh: the deploy's template, linted and expanded offline"
	scripts/infra-check.sh
	echo "==> 7/8 $(CARGO) test --workspace"
	$(CARGO) test --workspace
	echo "==> 8/8 make deploy DRY_RUN=1 with no credentials in the environment"
	env -i PATH="$$PATH" HOME="$$HOME" $${CARGO_HOME:+CARGO_HOME="$$CARGO_HOME"} \
	  $${RUSTUP_HOME:+RUSTUP_HOME="$$RUSTUP_HOME"} $${CARGO_TARGET_DIR:+CARGO_TARGET_DIR="$$CARGO_TARGET_DIR"} \
	  DEPLOY_PLAN="$$(source scripts/lib.sh && cargo_target_dir)/debug/deploy-plan" \
	  make --no-print-directory deploy DRY_RUN=1 >"$$(mkdir -p target && echo target/deploy-dry-run.md)"
	echo "    the plan: target/deploy-dry-run.md"
	echo "==> make test: all green"

# --- benchmarks, assets, deploy ------------------------------------------------------------
bench-api: check-cargo
	scripts/bench-api.sh

bench-edge: check-cargo
	scripts/bench-edge.sh

load-edge: check-cargo
	scripts/load-edge.sh

bench-cutout: check-cargo
	scripts/fetch-model.sh
	scripts/rembg-venv.sh
	scripts/bench-cutout.sh

model:
	test -x scripts/fetch-model.sh || { echo "error: scripts/fetch-model.sh is missing or not executable" >&2; exit 1; }
	scripts/fetch-model.sh

deploy: check-cargo
	DRY_RUN="$(DRY_RUN)" PLAN="$(PLAN)" scripts/deploy.sh

deploy-build: check-cargo
	scripts/deploy.sh build

smoke-arm64: check-cargo
	test -f target/lambda/api/bootstrap.zip || scripts/deploy.sh build
	scripts/smoke-arm64.sh

bench-cold-start: check-cargo
	scripts/bench-cold-start.sh

clean-dev:
	$(MOTO) stop
	$(PG) stop
	rm -rf .dev

# The worker chaos drills (functions/remove-bg/tests/chaos.rs, docs/MEDIA.md) at full size:
# Postgres and moto as for make test, the model, then DRILL_FULL=1 (more jobs and kills, a
# 30-second outage). A few minutes.
drill-jobs: check-cargo
	services="$$(scripts/services.sh up)"
	eval "$$services"
	trap 'scripts/services.sh down' EXIT
	scripts/fetch-model.sh
	export MODELS_DIR="$$PWD/models" DRILL_FULL=1
	$(CARGO) test --workspace --test chaos -- --test-threads=1 --nocapture
