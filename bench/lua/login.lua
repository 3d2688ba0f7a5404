-- Whole QR logins through the real APIs, one phone per wrk thread (run with -c equal to -t,
-- so each thread's one connection takes the steps in order):
--   PC:    POST /oauth/device_authorization        -> device_code, verification_uri_complete
--   phone: POST /mobile/v1/scan {"qr": <that URI>}  -> confirm_token  (the QR code's content)
--   phone: POST /mobile/v1/confirm {confirm_token}
--   PC:    POST /oauth/token (device_code grant)    -> tokens; pending: poll again after
--          the interval (RFC 8628 §3.5), until tokens
-- BENCH_PHONES has one "device_id device_token" line per phone, signed in beforehand.
-- A login's time runs from sending its device authorization to receiving its tokens.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local bench = require("common")

local GRANT = "urn:ietf:params:oauth:grant-type:device_code"
local client_id = bench.env("BENCH_CLIENT_ID")
local phones_file = bench.env("BENCH_PHONES")
local interval_ms = 1000 * tonumber(bench.env("BENCH_INTERVAL", "1"))

setup = bench.setup

function init(_)
  answers = {}
  login_ms = {}
  local phone = bench.lines(phones_file)[thread_index]
  assert(phone ~= nil, "no phone for thread " .. thread_index .. ": run with -c equal to -t")
  local device_id, device_token = phone:match("^(%S+)%s+(%S+)$")
  phone_headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. device_token,
    ["X-Device-Id"] = device_id,
  }
  form_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  authorize_request = wrk.format(
    "POST",
    "/oauth/device_authorization",
    form_headers,
    "client_id=" .. bench.form_escape(client_id)
  )
  token_body_head = "grant_type=" .. bench.form_escape(GRANT) .. "&client_id="
    .. bench.form_escape(client_id) .. "&device_code="
  step = "authorize"
  wait_ms = 0
end

function delay()
  local ms = wait_ms
  wait_ms = 0
  return ms
end

function request()
  if step == "authorize" then
    started = bench.now()
    return authorize_request
  elseif step == "scan" then
    return wrk.format("POST", "/mobile/v1/scan", phone_headers, '{"qr":"' .. qr .. '"}')
  elseif step == "confirm" then
    return wrk.format(
      "POST",
      "/mobile/v1/confirm",
      phone_headers,
      '{"confirm_token":"' .. confirm_token .. '"}'
    )
  end
  return wrk.format("POST", "/oauth/token", form_headers, token_body_head .. device_code)
end

function response(status, _, body)
  local answer = bench.answer(status, body)
  bench.count(answers, step .. ":" .. answer)
  if status == 200 then
    if step == "authorize" then
      device_code = bench.field(body, "device_code")
      qr = bench.field(body, "verification_uri_complete")
      step = (device_code and qr) and "scan" or "authorize"
      return
    elseif step == "scan" then
      confirm_token = bench.field(body, "confirm_token")
      step = confirm_token and "confirm" or "authorize"
      return
    elseif step == "confirm" then
      step = "token"
      return
    elseif bench.field(body, "access_token") then
      login_ms[#login_ms + 1] = (bench.now() - started) * 1000
      step = "authorize"
      return
    end
  elseif step == "token" and (answer == "authorization_pending" or answer == "slow_down") then
    wait_ms = answer == "slow_down" and interval_ms + 5000 or interval_ms
    return
  end
  step = "authorize" -- anything unexpected: counted above, start a new login
end

function done(summary, latency, _)
  local all = {}
  for _, thread in ipairs(bench.threads) do
    for _, ms in ipairs(thread:get("login_ms") or {}) do
      all[#all + 1] = math.floor(ms * 1000 + 0.5) / 1000
    end
  end
  bench.report(summary, latency, { logins = #all, login_ms = all })
end
