-- Pending polls (RFC 8628 §3.4): POST /oauth/token with device codes nobody has approved.
-- BENCH_CODES names a file of device codes; each wrk thread polls its own share of them
-- round-robin, so a code is polled again only after the whole share went round. The
-- shortest gap between two polls of one code is reported (min_revisit_s): at or above
-- the server's interval every answer should be authorization_pending, below it slow_down
-- (RFC 8628 §3.5), which the answer mix shows.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local bench = require("common")

local GRANT = "urn:ietf:params:oauth:grant-type:device_code"
local client_id = bench.env("BENCH_CLIENT_ID")
local codes_file = bench.env("BENCH_CODES")
local thread_count = tonumber(bench.env("BENCH_THREADS"))

setup = bench.setup

function init(_)
  answers = {}
  min_gap = math.huge
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local tail = "&client_id=" .. bench.form_escape(client_id)
  requests = {}
  for n, code in ipairs(bench.lines(codes_file)) do
    if (n - 1) % thread_count == thread_index - 1 then
      local body = "grant_type=" .. bench.form_escape(GRANT) .. "&device_code=" .. code .. tail
      requests[#requests + 1] = wrk.format("POST", "/oauth/token", headers, body)
    end
  end
  assert(#requests > 0, "no device codes for thread " .. thread_index)
  polled_at = {}
  next_index = 0
  pool = #requests
end

function request()
  next_index = next_index % #requests + 1
  local now = bench.now()
  local before = polled_at[next_index]
  if before ~= nil and now - before < min_gap then
    min_gap = now - before
  end
  polled_at[next_index] = now
  return requests[next_index]
end

function response(status, _, body)
  bench.count(answers, bench.answer(status, body))
end

function done(summary, latency, _)
  local gap, total = math.huge, 0
  for _, thread in ipairs(bench.threads) do
    gap = math.min(gap, thread:get("min_gap") or math.huge)
    total = total + (thread:get("pool") or 0)
  end
  bench.report(summary, latency, { pool = total, min_revisit_s = gap })
end
