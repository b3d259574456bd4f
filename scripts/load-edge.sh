#!/usr/bin/env bash
# `make load-edge`: the seed's load test through the real edge — `make dev`'s whole stack,
# the Worker in workerd in front of the API and Postgres — not a stub.
#
#   LOAD_SCALE=1 make load-edge     full scale: 60 s + 120 s + 300 s (about 8 min per scenario)
#   make load-edge                  LOAD_SCALE=0.1 (48 s per scenario)
#
# Steps (all visible below):
#   1. tools (wrk, python3, curl) and release builds: xtask; the stack itself is built by
#      scripts/dev.sh with DEV_PROFILE=release
#   2. the stack: if an edge already answers at EDGE_URL it is used as it is (then it must be
#      `make dev`'s, with the API at API_URL); otherwise scripts/dev.sh is started here
#      (release binaries, log in target/bench/load-dev.log) and stopped at the end
#   3. the catalog's slugs from the API; a PNG to upload (generated)
#   4. scenario "browse": the seed's Artillery phases (warm-up 10 new visitors/s for 60 s,
#      ramp 50/s for 120 s, sustained 100/s for 300 s, all x LOAD_SCALE); each visitor lists
#      the products, thinks 3 s (x LOAD_SCALE), opens one; open loop; each visitor has its
#      own client address (CF-Connecting-IP), so the production rate limits apply per visitor
#   5. scenario "mixed": the same phases again, and alongside them a new designer every
#      LOAD_CUTOUT_EVERY s (default 5) uploads the PNG, queues a cut-out and polls the job
#      every 2 s until it is done: job latency p50/p95, polls, and whether any was limited
#   6. cache hits in workerd: wrk, LOAD_WRK_CONNECTIONS (64) connections for LOAD_WRK_SECONDS
#      (20) on /api/products (a HIT; cache hits spend no rate-limit tokens)
#   7. the report: target/bench/load-edge.md (raw output in target/bench/raw/load-*)
#
# Knobs: LOAD_SCALE (0.1), LOAD_CUTOUT_EVERY (5), LOAD_WRK_CONNECTIONS (64),
# LOAD_WRK_SECONDS (20), EDGE_URL (http://127.0.0.1:8787), API_URL (http://127.0.0.1:3000).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

SCALE="${LOAD_SCALE:-0.1}"
CUTOUT_EVERY="${LOAD_CUTOUT_EVERY:-5}"
WRK_CONNECTIONS="${LOAD_WRK_CONNECTIONS:-64}"
WRK_SECONDS="${LOAD_WRK_SECONDS:-20}"
EDGE="${EDGE_URL:-http://127.0.0.1:8787}"
API="${API_URL:-http://127.0.0.1:3000}"
OUT="$ROOT/target/bench"
RAW="$OUT/raw"
mkdir -p "$RAW"

# --- 1. tools and builds -----------------------------------------------------------------
ensure_tool wrk "macOS: brew install wrk"
need_cmd python3 "apt-get install -y python3"
need_cmd curl "apt-get install -y curl"
need_cmd cargo "install Rust from https://rustup.rs"
python3 -c "import sys; x=float(sys.argv[1]); assert 0.001 <= x <= 10" "$SCALE" 2>/dev/null \
  || die "LOAD_SCALE=$SCALE is not a number between 0.001 and 10"
cleanup_on_exit
say "cargo build --release -p xtask"
cargo build --release -p xtask
XTASK="$(cargo_target_dir)/release/xtask"

# --- 2. the stack ------------------------------------------------------------------------
if http_ok "$EDGE/__edge/health"; then
  say "using the stack already running behind $EDGE"
else
  say "starting make dev's stack (release binaries; log: target/bench/load-dev.log)"
  : >"$OUT/load-dev.log"
  start_bg "dev stack" "$OUT/load-dev.log" env DEV_PROFILE=release scripts/dev.sh
  wait_http "the edge" "$EDGE/__edge/health" "$BG_PID" 1800 "$OUT/load-dev.log"
fi
http_ok "$API/health/ready" || die "the API does not answer at $API/health/ready"

# --- 3. slugs and an image ---------------------------------------------------------------
slugs="$(curl -fsS "$API/api/products" | python3 -c '
import json, sys
d = json.load(sys.stdin)
items = d.get("products", d) if isinstance(d, dict) else d
print(",".join(p["slug"] for p in items))')"
[[ -n "$slugs" ]] || die "the catalog at $API/api/products has no products (seeded?)"
image="$OUT/load-input.png"
python3 - "$image" <<'PY'
# A 320x320 RGB PNG: a disc on a gradient, so the cut-out has something to find.
import struct, sys, zlib
w = h = 320
rows = []
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        inside = (x - 160) ** 2 + (y - 160) ** 2 < 90 ** 2
        row += bytes((200, 40, 40) if inside else (x * 255 // w, y * 255 // h, 180))
    rows.append(bytes(row))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY

# --- 4. browse ---------------------------------------------------------------------------
say "scenario browse: Artillery phases x $SCALE through $EDGE"
"$XTASK" load phases "$EDGE" --scale "$SCALE" --slugs "$slugs" --client-ip-header cf-connecting-ip \
  | tee "$RAW/load-browse.txt"

# --- 5. mixed ----------------------------------------------------------------------------
seconds="$(python3 -c "print(480 * float('$SCALE'))")"
say "scenario mixed: the phases again, and a cut-out every ${CUTOUT_EVERY}s for ${seconds}s"
"$XTASK" load cutouts "$EDGE" --image "$image" --every "$CUTOUT_EVERY" --seconds "$seconds" \
  --client-ip-header cf-connecting-ip >"$RAW/load-cutouts.txt" &
cutouts_pid=$!
"$XTASK" load phases "$EDGE" --scale "$SCALE" --slugs "$slugs" --client-ip-header cf-connecting-ip \
  | tee "$RAW/load-mixed.txt"
wait "$cutouts_pid" || die "the cut-out generator failed (see $RAW/load-cutouts.txt)"
cat "$RAW/load-cutouts.txt"

# --- 6. cache hits -----------------------------------------------------------------------
curl -fsS -o /dev/null "$EDGE/api/products"
say "cache hits: wrk -t2 -c$WRK_CONNECTIONS -d${WRK_SECONDS}s $EDGE/api/products"
wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --latency "$EDGE/api/products" | tee "$RAW/load-wrk-hit.txt"

# --- 7. report ---------------------------------------------------------------------------
python3 - "$RAW" "$SCALE" "$CUTOUT_EVERY" "$WRK_CONNECTIONS" >"$OUT/load-edge.md" <<'PY'
import re, sys
raw, scale, every, conns = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]

def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)

def phases(path):
    rows = []
    for line in open(path):
        if line.startswith("PHASE ") or line.startswith("TOTAL "):
            f = fields(line)
            f["name"] = f.get("name", "total")
            rows.append(f)
    return rows

def table(title, rows):
    out = [f"**{title}**", "",
           "| phase | s | visitors | requests | req/s | p50 ms | p95 ms | p99 ms | errors | error % | hit ratio |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        req = int(r["requests"]); err = int(r["errors"])
        out.append(f"| {r['name']} | {float(r['seconds']):.0f} | {r['visitors']} | {req} | {float(r['rps']):.0f} | "
                   f"{float(r['p50_ms']):.1f} | {float(r['p95_ms']):.1f} | {float(r['p99_ms']):.1f} | {err} | "
                   f"{100 * err / max(req, 1):.2f} | {float(r['hit_ratio']):.3f} |")
    return "\n".join(out)

browse = phases(f"{raw}/load-browse.txt")
mixed = phases(f"{raw}/load-mixed.txt")
cut = fields(open(f"{raw}/load-cutouts.txt").read().strip())
wrk = open(f"{raw}/load-wrk-hit.txt").read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1)
lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", wrk, re.M))
sustained = next(r for r in browse if r["name"] == "sustained")
req = int(sustained["requests"]); err = int(sustained["errors"])
ok = float(sustained["p95_ms"]) < 200 and err / max(req, 1) < 0.001
print(f"Scale x{scale} (1 = the seed's 60 + 120 + 300 s). Targets (sustained): p95 < 200 ms, errors < 0.1 % — "
      f"{'met' if ok else 'NOT met'}.\n")
print(table("Browse (list, think, product)", browse) + "\n")
print(table(f"Mixed: the same phases plus a cut-out every {every} s", mixed) + "\n")
print("| cut-out jobs | done | failed | job latency p50 | p95 | max | polls | polls limited (429) | uploads limited | errors |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {cut['jobs']} | {cut['done']} | {cut['failed']} | {cut['p50_ms']} ms | {cut['p95_ms']} ms | {cut['max_ms']} ms | "
      f"{cut['polls']} | {cut['polls_limited']} | {cut['uploads_limited']} | {cut['errors']} |\n")
print(f"Cache hits in workerd (`GET /api/products`, wrk -t2 -c{conns}): {float(rps):,.0f} req/s, "
      f"p50 {lat.get('50', '?')}, p90 {lat.get('90', '?')}, p99 {lat.get('99', '?')}.")
PY
cat "$OUT/load-edge.md"
say "report: target/bench/load-edge.md"
