#!/usr/bin/env bash
# `make test` step: each deployed binary links only what it uses. A Lambda package pays for
# every crate it links (zip size, cold start, attack surface), and a dependency that creeps in
# through a shared crate is easy to miss in review, so the rules are checked with `cargo tree`:
#
#   api        no tract (model runtime), no image decoders, no mozjpeg
#   migrate    no AWS SDK or smithy runtime at all
#   remove-bg  no SQS SDK (it only reads messages), no web framework (axum, lambda_http)
#   cutout     (the engine library) no CLI crates (clap, indicatif)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

failed=0
# deny PACKAGE PATTERN WHY: fail when the normal (non-dev) dependency tree of PACKAGE, which
# is what its binaries link, holds a crate matching PATTERN.
deny() {
  local package="$1" pattern="$2" why="$3" tree found
  tree="$(cargo tree -p "$package" -e normal --prefix none)" || die "cargo tree -p $package failed"
  [[ -n "$tree" ]] || die "cargo tree -p $package printed nothing"
  found="$(awk '{print $1}' <<<"$tree" | grep -E "^($pattern)\$" | sort -u | tr '\n' ' ')" || true
  if [[ -n "$found" ]]; then
    printf 'check-links: %s links %s— %s\n' "$package" "$found" "$why" >&2
    failed=1
  else
    say "ok: $package links no ${pattern//|/, }"
  fi
}

deny stolentee-api 'tract-[a-z-]+|image|mozjpeg|stolentee-cutout' "the API must not carry the model runtime"
deny stolentee-db 'aws-[a-z-]+' "migrate needs Postgres only"
deny stolentee-remove-bg 'aws-sdk-sqs|axum|lambda_http' "the worker reads messages from its event and serves no HTTP"
deny stolentee-cutout 'clap|indicatif' "the engine library must not carry the CLI's dependencies"
((failed == 0)) || die "a binary links a crate it must not (see above)"
