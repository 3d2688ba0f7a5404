-- Shared by the scenario scripts: a monotonic clock, JSON field extraction, per-thread
-- counters and the one result line that bench/loadgen.py parses.
--
-- Settings come from BENCH_* environment variables (wrk's main Lua state, which runs
-- setup() and done(), never sees the script's command-line arguments).
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local M = {}

function M.now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

function M.env(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then
    if default == nil then
      error("missing environment variable " .. name)
    end
    return default
  end
  return value
end

-- A string field of a JSON object. Good enough for the server's own answers: the values
-- read here (codes, tokens, URLs) hold no quotes; "\/" and "\u0026" are undone.
function M.field(body, name)
  if body == nil then
    return nil
  end
  local value = string.match(body, '"' .. name .. '"%s*:%s*"([^"]*)"')
  if value == nil then
    return nil
  end
  return (value:gsub("\\/", "/"):gsub("\\u0026", "&"))
end

-- What an answer was: the OAuth error code (RFC 6749 §5.2) if there is one, else the status.
function M.answer(status, body)
  local err = M.field(body, "error")
  if err ~= nil then
    return err
  end
  if status >= 200 and status < 300 then
    return "ok"
  end
  return "http_" .. status
end

function M.count(tbl, key)
  tbl[key] = (tbl[key] or 0) + 1
end

function M.lines(path)
  local out = {}
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if line ~= "" then
      out[#out + 1] = line
    end
  end
  f:close()
  return out
end

-- application/x-www-form-urlencoded, for the few characters our values can hold.
function M.form_escape(value)
  return (value:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local function encode(value)
  local kind = type(value)
  if kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      return "null"
    end
    return string.format("%.17g", value)
  elseif kind == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
    end) .. '"'
  elseif kind == "boolean" then
    return tostring(value)
  elseif kind == "table" then
    local parts = {}
    if #value > 0 or next(value) == nil then
      for i = 1, #value do
        parts[i] = encode(value[i])
      end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for k, v in pairs(value) do
      parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(v)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end
M.encode = encode

-- Threads, in the order wrk set them up; each gets its 1-based index.
M.threads = {}

function M.setup(thread)
  M.threads[#M.threads + 1] = thread
  thread:set("thread_index", #M.threads)
end

-- Sum the per-thread `answers` tables and add wrk's own numbers; print one result line.
function M.report(summary, latency, extra)
  local answers = {}
  for _, thread in ipairs(M.threads) do
    local mine = thread:get("answers") or {}
    for key, n in pairs(mine) do
      answers[key] = (answers[key] or 0) + n
    end
  end
  local result = {
    requests = summary.requests,
    duration_us = summary.duration,
    errors = {
      connect = summary.errors.connect,
      read = summary.errors.read,
      write = summary.errors.write,
      timeout = summary.errors.timeout,
      status = summary.errors.status,
    },
    latency_us = {
      p50 = latency:percentile(50),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      max = latency.max,
      mean = latency.mean,
    },
    answers = answers,
  }
  for k, v in pairs(extra or {}) do
    result[k] = v
  end
  io.write("BENCH_RESULT " .. encode(result) .. "\n")
end

return M
