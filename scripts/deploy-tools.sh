#!/usr/bin/env bash
# The deploy's tools, pinned and installed into project-local directories (idempotent: an
# unchanged pin list costs nothing). Each name prints, on stdout, the path of what it
# installed; progress goes to stderr.
#
#   scripts/deploy-tools.sh lint     <repo>/.venv-infra: cfn-lint + the SAM translator (offline
#                                    checks in make test; prints the venv's bin directory)
#   scripts/deploy-tools.sh sam      <repo>/.venv-sam: the AWS SAM CLI (its own venv: it pins
#                                    its own boto3 and cfn-lint)
#   scripts/deploy-tools.sh aws      <repo>/.venv-aws: the AWS CLI (credentials, secrets,
#                                    smoke-test lookups)
#   scripts/deploy-tools.sh lambda   <repo>/.venv-lambda: cargo-lambda + zig (the arm64 cross
#                                    build), and the aarch64-unknown-linux-gnu Rust target
#   scripts/deploy-tools.sh qemu     qemu-aarch64 and an arm64 sysroot, to run the arm64 api
#                                    binary here (Debian packages; root installs them)
#
# Environment: PYTHON picks the interpreter that creates the virtualenvs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LINT_REQS=("cfn-lint==1.58.0" "aws-sam-translator==1.115.0")
SAM_REQS=("aws-sam-cli==1.170.0")
AWS_REQS=("awscli==1.46.3")
LAMBDA_REQS=("cargo-lambda==1.9.2" "ziglang==0.16.0")
ARM64_TARGET=aarch64-unknown-linux-gnu
ARM64_SYSROOT=/usr/aarch64-linux-gnu

tool() {
  case "$1" in
    lint)
      ensure_venv --check 'import cfnlint, samtranslator' "$ROOT/.venv-infra" "${LINT_REQS[@]}"
      echo "$ROOT/.venv-infra/bin"
      ;;
    sam)
      ensure_venv --check 'import samcli' "$ROOT/.venv-sam" "${SAM_REQS[@]}"
      echo "$ROOT/.venv-sam/bin/sam"
      ;;
    aws)
      ensure_venv --check 'import awscli' "$ROOT/.venv-aws" "${AWS_REQS[@]}"
      echo "$ROOT/.venv-aws/bin/aws"
      ;;
    lambda)
      ensure_venv "$ROOT/.venv-lambda" "${LAMBDA_REQS[@]}"
      [[ -x "$ROOT/.venv-lambda/bin/cargo-lambda" ]] || die "cargo-lambda missing from .venv-lambda after install"
      if ! rustup target list --installed 2>/dev/null | grep -qx "$ARM64_TARGET"; then
        need_cmd rustup "install Rust with rustup (https://rustup.rs) to add the $ARM64_TARGET target"
        say "adding the Rust target $ARM64_TARGET"
        rustup target add "$ARM64_TARGET" >&2
      fi
      echo "$ROOT/.venv-lambda/bin"
      ;;
    qemu)
      ensure_tool qemu-aarch64 qemu-user "install QEMU's user-mode emulator (qemu-user)"
      if [[ ! -e "$ARM64_SYSROOT/lib/ld-linux-aarch64.so.1" ]]; then
        if is_root && is_debian; then apt_install libc6-arm64-cross; else
          die "no arm64 sysroot at $ARM64_SYSROOT (Debian/Ubuntu: sudo apt-get install -y libc6-arm64-cross)"
        fi
      fi
      echo "qemu-aarch64 -L $ARM64_SYSROOT"
      ;;
    *) die "unknown tool '$1' (lint, sam, aws, lambda, qemu)" ;;
  esac
}

(($#)) || die "usage: scripts/deploy-tools.sh lint|sam|aws|lambda|qemu ..."
for name in "$@"; do tool "$name"; done
