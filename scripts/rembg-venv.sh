#!/usr/bin/env bash
# Create (idempotently) the virtualenv the parity test and the benchmark use to run rembg
# itself: <repo>/.venv-rembg with rembg + onnxruntime (CPU) + scikit-image (for its sample
# photos: astronaut, chelsea, coffee, rocket, ...).
#
#   scripts/rembg-venv.sh          # prints the venv's python path on stdout when ready
#
# Env: REMBG_VENV overrides the location; PYTHON picks the interpreter that creates it.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${REMBG_VENV:-${repo_root}/.venv-rembg}"
python="${PYTHON:-python3}"

# Pinned so parity figures are reproducible.
REQS=(
  "rembg==2.0.86"
  "onnxruntime==1.24.4"
  "scikit-image==0.26.0"
)
stamp="${venv}/.stolentee-reqs"
want="$(printf '%s\n' "${REQS[@]}")"

say() { echo "rembg-venv: $*" >&2; }

if [ -x "${venv}/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "${venv} up to date"
  echo "${venv}/bin/python"
  exit 0
fi

command -v "$python" >/dev/null 2>&1 || { say "error: $python not found"; exit 1; }
if [ ! -x "${venv}/bin/python" ]; then
  say "creating ${venv}"
  "$python" -m venv "$venv" || { say "error: could not create a virtualenv (install python3-venv?)"; exit 1; }
fi
say "installing ${REQS[*]}"
"${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${REQS[@]}" >&2
# Smoke check: importing rembg must not try to download anything.
"${venv}/bin/python" -c 'import rembg, onnxruntime, skimage.data' >&2
echo "$want" >"$stamp"
say "ready"
echo "${venv}/bin/python"
