-- The resource check: GET /api/v1/me with approved access tokens (BENCH_TOKENS, one a line),
-- as a resource server's requests would arrive: the signature, the claims, the deny-list.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local bench = require("common")

local tokens_file = bench.env("BENCH_TOKENS")

setup = bench.setup

function init(_)
  answers = {}
  requests = {}
  for _, token in ipairs(bench.lines(tokens_file)) do
    requests[#requests + 1] =
      wrk.format("GET", "/api/v1/me", { ["Authorization"] = "Bearer " .. token }, nil)
  end
  next_index = thread_index - 1
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function response(status, _, body)
  bench.count(answers, bench.answer(status, body))
end

function done(summary, latency, _)
  bench.report(summary, latency, {})
end
