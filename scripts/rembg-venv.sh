#!/usr/bin/env bash
# Create (idempotently) the virtualenv the parity test and the benchmark use to run rembg
# itself: <repo>/.venv-rembg with rembg + onnxruntime (CPU) + scikit-image (for its sample
# photos: astronaut, chelsea, coffee, rocket, ...).
#
#   scripts/rembg-venv.sh          # prints the venv's python path on stdout when ready
#
# Env: REMBG_VENV overrides the location; PYTHON picks the interpreter that creates it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

venv="${REMBG_VENV:-$ROOT/.venv-rembg}"

# Pinned so parity figures are reproducible.
REQS=(
  "rembg==2.0.86"
  "onnxruntime==1.24.4"
  "scikit-image==0.26.0"
)

# Smoke check before the stamp is written: importing rembg must not try to download anything.
ensure_venv --upgrade-pip --check 'import rembg, onnxruntime, skimage.data' "$venv" "${REQS[@]}"
say "$venv ready"
echo "$venv/bin/python"
