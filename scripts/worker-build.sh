#!/usr/bin/env bash
# Builds the Cloudflare Worker (edge/worker) for wasm32 into edge/worker/build/:
#
#   scripts/worker-build.sh            release build (what `make dev`, `make test` and
#                                      `wrangler deploy` use); prints the bundle's sizes
#
# Steps: the pinned tools (scripts/edge-tools.sh build: wasm32 target, wasm-bindgen-cli =
# the lock's wasm-bindgen, worker-build = the lock's worker, esbuild), then
# `worker-build --release --no-opt` in edge/worker with WASM_BINDGEN_BIN and ESBUILD_BIN
# pointing at them (so worker-build downloads nothing), then a size check against
# Cloudflare's limit for the compressed Worker.
#
# --no-opt: wasm-opt (binaryen) is not in a package registry the project's machines reach
# in a version that reads current wasm-bindgen output; the release profile's opt-level and
# LTO already apply, and the size check below keeps the bundle honest.
#
# Env: WORKER_MAX_GZIP_KB (default 3072: Cloudflare's free-plan limit, 3 MB compressed; the
# paid plan's is 10 MB) fails the build above it. CARGO_TARGET_DIR is honoured.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

MAX_GZIP_KB="${WORKER_MAX_GZIP_KB:-3072}"

"$ROOT/scripts/edge-tools.sh" build
eval "$("$ROOT/scripts/edge-tools.sh" env)"

say "worker-build --release --no-opt (edge/worker)"
(cd edge/worker && worker-build --release --no-opt >&2) || die "worker-build failed (see above)"

build="$ROOT/edge/worker/build"
[[ -f "$build/index.js" && -f "$build/worker/shim.mjs" ]] \
  || die "worker-build finished but $build has no index.js or worker/shim.mjs"
wasm="$(find "$build" -name '*.wasm' -print -quit)"
[[ -n "$wasm" ]] || die "worker-build finished but $build has no .wasm"

# What Cloudflare counts: the Worker's files, compressed.
raw_bytes=0
gzip_bytes=0
while IFS= read -r -d '' f; do
  raw_bytes=$((raw_bytes + $(stat -c %s "$f")))
  gzip_bytes=$((gzip_bytes + $(gzip -9 -c "$f" | wc -c)))
done < <(find "$build" -type f \( -name '*.js' -o -name '*.mjs' -o -name '*.wasm' \) -print0)
say "bundle: $((raw_bytes / 1024)) KiB, $((gzip_bytes / 1024)) KiB gzipped (limit ${MAX_GZIP_KB} KiB gzipped)"
if ((gzip_bytes / 1024 > MAX_GZIP_KB)); then
  die "the Worker is $((gzip_bytes / 1024)) KiB gzipped, over the ${MAX_GZIP_KB} KiB limit"
fi
