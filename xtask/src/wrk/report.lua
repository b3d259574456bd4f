-- The wrk script of every `cargo xtask bench` run (embedded in the xtask binary and written
-- to target/bench/raw/wrk-report.lua before wrk starts).
--
-- Request shape from the environment (so one script serves every scenario):
--   BENCH_METHOD  GET (default) | POST
--   BENCH_BODY    request body; sent with Content-Type: application/json
--
-- No response() callback on purpose: defining one makes wrk parse and hand every response
-- to Lua, which costs the load generator (on the same 2 cores as the API) a lot of CPU.
-- Errors are therefore wrk's own counters: HTTP status >= 400 plus socket errors
-- (connect/read/write/timeout). The benchmark checks each scenario answers 2xx beforehand.
--
-- done() prints one machine-readable line, latencies in microseconds:
--   BENCH_RESULT requests=.. duration_us=.. rps=.. p50_us=.. p95_us=.. p99_us=.. max_us=..
--                errors_status=.. errors_connect=.. errors_read=.. errors_write=..
--                errors_timeout=.. errors=..

local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")

wrk.method = method
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.status + e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.2f p50_us=%d p95_us=%d p99_us=%d max_us=%d " ..
    "errors_status=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d errors=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, errors))
end
