#!/usr/bin/env bash
# Benchmark the cut-out engine against rembg (onnxruntime) on the same model (u2netp), the
# same photos and the same cores, in one run. Prints a Markdown report (for
# docs/BENCHMARKS.md) on stdout, or writes it to OUT if given.
#
#   scripts/bench-cutout.sh [OUT]
#
# Env: RUNS (default 5) runs per image after one warm-up; THREADS (default: all cores)
# for both engines; PHOTOS (names in skimage/data) to override the photo set.
# Needs: scripts/fetch-model.sh and scripts/rembg-venv.sh (both run here, idempotently).
# Results are only comparable on a quiet machine: the load average is recorded.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="${repo_root}/functions/cutout"
out="${1:-}"
runs="${RUNS:-5}"
threads="${THREADS:-$(nproc 2>/dev/null || echo 2)}"
models="${MODELS_DIR:-${repo_root}/models}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${repo_root}/target}"

"${repo_root}/scripts/fetch-model.sh" "$models" >&2
python="$("${repo_root}/scripts/rembg-venv.sh")"
data_dir="$("$python" -c 'import os, skimage.data; print(os.path.dirname(skimage.data.__file__))')"
photos=(${PHOTOS:-astronaut chelsea coffee rocket motorcycle_left retina})
files=()
for p in "${photos[@]}"; do
  for ext in png jpg; do
    [ -f "${data_dir}/${p}.${ext}" ] && files+=("${data_dir}/${p}.${ext}") && break
  done
done

echo "bench-cutout: building (release)..." >&2
cargo build --quiet --release --manifest-path "${repo_root}/Cargo.toml" -p stolentee-cutout -p stolentee-cutout-cli \
  --example bench --bin cutout >&2
bench_bin="${CARGO_TARGET_DIR}/release/examples/bench"
cli_bin="${CARGO_TARGET_DIR}/release/cutout"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

echo "bench-cutout: rembg ($threads threads, $runs runs)..." >&2
"$python" "${crate}/tests/rembg_bench.py" "$models" "$runs" "$threads" "${files[@]}" >"$tmp/rembg.json"
echo "bench-cutout: tract 1 thread..." >&2
"$bench_bin" --model "${models}/u2netp.onnx" --runs "$runs" --threads 1 "${files[@]}" >"$tmp/tract1.json"
echo "bench-cutout: tract $threads threads..." >&2
"$bench_bin" --model "${models}/u2netp.onnx" --runs "$runs" --threads "$threads" "${files[@]}" >"$tmp/tractn.json"

# One image, whole process (cold start as a Lambda would see it, minus the runtime).
one="${files[0]}"
t0=$(date +%s%N)
CUTOUT_THREADS="$threads" "$cli_bin" i --model "${models}/u2netp.onnx" "$one" "$tmp/one.png"
t1=$(date +%s%N)
U2NET_HOME="$models" OMP_NUM_THREADS="$threads" "$python" -c '
import sys
from rembg import new_session, remove
open(sys.argv[2], "wb").write(remove(open(sys.argv[1], "rb").read(), session=new_session("u2netp")))
' "$one" "$tmp/one-rembg.png"
t2=$(date +%s%N)
load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

"$python" - "$tmp" "$threads" "$runs" "$(( (t1 - t0) / 1000000 ))" "$(( (t2 - t1) / 1000000 ))" \
  "$load_before" "$load_after" "$(nproc)" >"$tmp/report.md" <<'PY'
import json, sys, platform, datetime
tmp, threads, runs, cold_tract, cold_rembg, load_before, load_after, cores = sys.argv[1:]
r = json.load(open(f"{tmp}/rembg.json"))
t1 = json.load(open(f"{tmp}/tract1.json"))
tn = json.load(open(f"{tmp}/tractn.json"))
def ratio(a, b):
    return f"{a / b:.2f}×" if b else "-"
print(f"## Cut-out engine vs rembg (u2netp) — {datetime.date.today()}")
print()
print(f"{cores} cores ({platform.processor() or platform.machine()}), {runs} runs per image after a warm-up, "
      f"medians. rembg {threads} threads (onnxruntime intra-op), tract 1 and {threads} threads "
      f"(`multithread-mm`). Load average before/after: {load_before} / {load_after}.")
print()
print(f"| image | size | model ms rembg | tract 1T | tract {threads}T | ratio | end-to-end ms rembg | tract 1T | tract {threads}T | ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
by = lambda d: {i["image"]: i for i in d["images"]}
R, T1, TN = by(r), by(t1), by(tn)
for name, ri in R.items():
    a, b = T1[name], TN[name]
    print(f"| {name} | {ri['width']}×{ri['height']} | {ri['model_ms']} | {a['model_ms']} | {b['model_ms']} | "
          f"{ratio(b['model_ms'], ri['model_ms'])} | {ri['e2e_ms']} | {a['e2e_ms']} | {b['e2e_ms']} | "
          f"{ratio(b['e2e_ms'], ri['e2e_ms'])} |")
print()
print(f"| | rembg | tract 1T | tract {threads}T |")
print("|---|---|---|---|")
print(f"| model load (cold start, ms) | {r['load_ms']} | {t1['load_ms']} | {tn['load_ms']} |")
print(f"| batch throughput (images/s) | {r['batch_ips']} | {t1['batch_ips']} | {tn['batch_ips']} |")
print(f"| peak RSS (MB) | {r['peak_rss_mb']} | {t1['peak_rss_mb']} | {tn['peak_rss_mb']} |")
print(f"| one image, whole process (ms) | {cold_rembg} | | {cold_tract} |")
print()
print("Model time: the network alone on a prepared 1×3×320×320 input. End to end: encoded bytes "
      "in → decode → mask → transparent PNG bytes out (rembg: `remove()`, Pillow PNG; tract: "
      "`Engine::cut_out` + `transparent_png(Fast)`).")
PY
if [ -n "$out" ]; then
  cp "$tmp/report.md" "$out"
  echo "bench-cutout: wrote $out" >&2
else
  cat "$tmp/report.md"
fi
