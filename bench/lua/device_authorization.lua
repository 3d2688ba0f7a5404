-- Device authorizations (RFC 8628 §3.1): POST /oauth/device_authorization, one public client.
-- The device codes it gets are written to BENCH_CODES_OUT (if set): the pending-poll
-- scenario then polls exactly the codes this run created.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local bench = require("common")

local client_id = bench.env("BENCH_CLIENT_ID")
local codes_out = os.getenv("BENCH_CODES_OUT")

-- No request() function: wrk then sends this one prebuilt request, its fastest path.
wrk.method = "POST"
wrk.path = "/oauth/device_authorization"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "client_id=" .. bench.form_escape(client_id)

setup = bench.setup

function init(_)
  answers = {}
  codes = {}
end

function response(status, _, body)
  local code = status == 200 and bench.field(body, "device_code")
  if code then
    codes[#codes + 1] = code
  end
  bench.count(answers, bench.answer(status, body))
end

function done(summary, latency, _)
  local kept = 0
  if codes_out ~= nil and codes_out ~= "" then
    local f = assert(io.open(codes_out, "w"))
    for _, thread in ipairs(bench.threads) do
      for _, code in ipairs(thread:get("codes") or {}) do
        f:write(code, "\n")
        kept = kept + 1
      end
    end
    f:close()
  end
  bench.report(summary, latency, { codes_written = kept })
end
