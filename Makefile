# Stolen Tee backend. Every target is a plain, visible sequence of commands; the scripts it
# calls live in scripts/ and say what they do.
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
#   make bench-cutout  this engine vs rembg (onnxruntime) on the same photos and cores
#   make model      fetch the cut-out model weights (checksummed) into models/
#   make deploy     migrations, Lambda functions (cargo-lambda), edge (wrangler); checks first
#   make clean-dev  stop the project-local Postgres cluster and delete .dev/

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
PG := scripts/pg.sh
MOTO := scripts/moto.sh

.PHONY: help dev test migrate seed fmt lint bench-api bench-edge bench-cutout model deploy clean-dev \
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
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# make test: the services and files tests need first, then the checks, then the tests.
#  - Postgres: TEST_DATABASE_URL = the ensured server with database `postgres`; tests create
#    their own databases there. A project-local cluster started here is stopped at the end.
#  - moto (S3 + SQS stand-in) on 127.0.0.1:5005: MOTO_ENDPOINT; stopped at the end if
#    started here.
#  - The u2netp model (md5-checked) and a rembg virtualenv: the parity test runs rembg
#    itself (CUTOUT_PARITY=1).
test: check-rustfmt check-clippy
	@cleanup=':'; \
	if $(PG) status >/dev/null 2>&1; then pg_was_running=1; else pg_was_running=0; fi; \
	url="$$($(PG) ensure)"; \
	if [ "$$pg_was_running" = 0 ] && $(PG) status >/dev/null 2>&1; then cleanup="$$cleanup; $(PG) stop"; trap "$$cleanup" EXIT; fi; \
	if $(MOTO) status >/dev/null 2>&1; then moto_was_running=1; else moto_was_running=0; fi; \
	export MOTO_ENDPOINT="$$($(MOTO) start)"; \
	if [ "$$moto_was_running" = 0 ]; then cleanup="$$cleanup; $(MOTO) stop"; trap "$$cleanup" EXIT; fi; \
	echo "==> MOTO_ENDPOINT=$$MOTO_ENDPOINT (S3 + SQS stand-in)"; \
	echo "==> model and rembg reference"; \
	scripts/fetch-model.sh; \
	scripts/rembg-venv.sh; \
	export CUTOUT_PARITY=1 MODELS_DIR="$$PWD/models"; \
	export TEST_DATABASE_URL="$$($(PG) url-for postgres "$$url")"; \
	echo "==> TEST_DATABASE_URL=$$(sed -E 's|(://[^:/@]*):[^@/]*@|\1:***@|' <<<"$$TEST_DATABASE_URL")"; \
	echo "==> cargo fmt --all -- --check"; \
	$(CARGO) fmt --all -- --check; \
	echo "==> cargo clippy --workspace --all-targets -- -D warnings"; \
	$(CARGO) clippy --workspace --all-targets -- -D warnings; \
	echo "==> cargo test --workspace"; \
	$(CARGO) test --workspace; \
	echo "==> make test: all green"

# --- benchmarks, assets, deploy ------------------------------------------------------------
bench-api: check-cargo
	scripts/bench-api.sh

bench-edge: check-cargo
	scripts/bench-edge.sh

bench-cutout: check-cargo
	scripts/fetch-model.sh
	scripts/rembg-venv.sh
	scripts/bench-cutout.sh

model:
	@test -x scripts/fetch-model.sh || { echo "error: scripts/fetch-model.sh is missing or not executable" >&2; exit 1; }
	scripts/fetch-model.sh

deploy: check-cargo
	scripts/deploy.sh

clean-dev:
	$(MOTO) stop
	$(PG) stop
	rm -rf .dev
