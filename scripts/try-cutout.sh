#!/usr/bin/env bash
# The storefront's cut-out flow with curl, against a running `make dev` (or any API):
#   1. POST /api/uploads            declare the file, get a presigned PUT
#   2. PUT the bytes to that URL     straight to object storage, not through the API
#   3. POST /api/uploads/{id}/complete   the API checks the stored object, records the asset
#   4. POST /api/jobs                queue background removal
#   5. GET /api/jobs/{id} every 2 s  until done or error, then download the transparent PNG
#
#   scripts/try-cutout.sh IMAGE [OUT.png]      (API_URL, default http://127.0.0.1:3000)
#
# As a guest: step 1 returns a guest token, and steps 3-5 send it in X-Guest-Token (without
# it the upload, its asset and its job answer 404 to everyone).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

api="${API_URL:-http://127.0.0.1:3000}"
image="${1:?usage: scripts/try-cutout.sh IMAGE [OUT.png]}"
out="${2:-${image%.*}.cutout.png}"
[ -f "$image" ] || die "no such file: $image"
need_cmd python3 "it is needed to read JSON"
need_cmd curl "apt-get install -y curl"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }

case "$(tr '[:upper:]' '[:lower:]' <<<"${image##*.}")" in
  png) type=image/png ;;
  jpg | jpeg) type=image/jpeg ;;
  webp) type=image/webp ;;
  *) die "use a .png, .jpg or .webp file" ;;
esac
size=$(wc -c <"$image" | tr -d ' ')

start=$(curl -fsS -X POST "$api/api/uploads" -H 'content-type: application/json' \
  -d "{\"content_type\":\"$type\",\"byte_size\":$size,\"filename\":\"$(basename "$image")\"}")
upload_id=$(json 'd["upload"]["id"]' <<<"$start")
put_url=$(json 'd["upload"]["put"]["url"]' <<<"$start")
guest=(-H "x-guest-token: $(json 'd["guest_token"]["token"]' <<<"$start")")
say "upload $upload_id"

curl -fsS -X PUT "$put_url" -H "content-type: $type" --data-binary "@$image" >/dev/null
asset_id=$(curl -fsS -X POST "${guest[@]}" "$api/api/uploads/$upload_id/complete" | json 'd["asset"]["id"]')
say "asset  $asset_id"

job_id=$(curl -fsS -X POST "${guest[@]}" "$api/api/jobs" -H 'content-type: application/json' -d "{\"asset_id\":\"$asset_id\"}" | json 'd["job"]["id"]')
say "job    $job_id"

while true; do
  job=$(curl -fsS "${guest[@]}" "$api/api/jobs/$job_id")
  status=$(json 'd["job"]["status"]' <<<"$job")
  say "  $(json 'd["job"]["log"]' <<<"$job")"
  case "$status" in
    done) break ;;
    error) die "job failed: $(json 'd["job"]["error"]' <<<"$job")" ;;
  esac
  sleep 2
done
url=$(json 'd["job"]["result"]["transparent"]["url"]' <<<"$job")
curl -fsS "$url" -o "$out"
say "wrote $out"
