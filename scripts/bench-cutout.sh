#!/usr/bin/env bash
# Benchmark the cut-out engine against rembg (onnxruntime) on the same model (u2netp), the
# same photos and the same cores, in one run. Prints a Markdown report (for
# docs/BENCHMARKS.md) on stdout, or writes it to OUT if given.
#
#   scripts/bench-cutout.sh [OUT]
#
# This script prepares (model, rembg virtualenv, photos, release builds); `cargo xtask bench
# cutout` runs both engines' probes and times a whole-process cut-out with each
# (xtask/src/bench/cutout.rs), `cargo xtask report cutout` writes the report.
#
# Env: RUNS (default 5) runs per image after one warm-up; THREADS (default: all cores)
# for both engines; PHOTOS (names in skimage/data) to override the photo set.
# Results are only comparable on a quiet machine: the load average is recorded.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="${1:-}"
models="${MODELS_DIR:-$ROOT/models}"

"$ROOT/scripts/fetch-model.sh" "$models" >&2
python="$("$ROOT/scripts/rembg-venv.sh")"
data_dir="$("$python" -c 'import os, skimage.data; print(os.path.dirname(skimage.data.__file__))')"
read -r -a photos <<<"${PHOTOS:-astronaut chelsea coffee rocket motorcycle_left retina}"
files=()
for p in "${photos[@]}"; do
  for ext in png jpg; do
    if [[ -f "$data_dir/$p.$ext" ]]; then files+=("$data_dir/$p.$ext"); break; fi
  done
done
((${#files[@]})) || die "none of the photos (${photos[*]}) is in $data_dir"

say "building (release): the engine's probe, the cutout CLI, xtask"
cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p stolentee-cutout -p stolentee-cutout-cli -p xtask \
  --example bench --bin cutout --bin xtask >&2
BIN="$(cargo_target_dir)/release"

"$BIN/xtask" bench cutout --python "$python" --rembg-probe "$ROOT/functions/cutout/tests/rembg_bench.py" \
  --tract-probe "$BIN/examples/bench" --cli "$BIN/cutout" --models "$models" "${files[@]}"
"$BIN/xtask" report cutout ${out:+--out "$out"}
