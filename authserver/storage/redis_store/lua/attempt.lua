-- domain.limits: count one attempt on every limit, or refuse it storing nothing.
-- Every limit is checked before any is written, so a refused request (a flood of them
-- included) creates no key and moves no counter.
-- KEYS: one hash per limit {n = count, s = window start, t = last attempt}.
-- ARGV: now, deadline (real Unix time), then per limit: kind, limit, window, max_delay,
-- own (the 1-based index of the subject's own counter among KEYS, or 0).
-- Returns 0 (counted), the seconds to wait (refused), or -1: Redis ran this after the
-- caller's deadline, when the caller had already answered 503; then it changes nothing.
local clock = redis.call('time')
if tonumber(clock[1]) + tonumber(clock[2]) / 1e6 > tonumber(ARGV[2]) then return -1 end
local now = tonumber(ARGV[1])
local counts, starts, lasts = {}, {}, {}
for i, key in ipairs(KEYS) do
  local h = redis.call('hmget', key, 'n', 's', 't')
  local window = tonumber(ARGV[(i - 1) * 5 + 5])
  local n, s = tonumber(h[1] or '0'), tonumber(h[2] or '0')
  if h[1] == false or now >= s + window then n = 0 end
  counts[i], starts[i], lasts[i] = n, s, tonumber(h[3] or '0')
end
local wait = 0
for i = 1, #KEYS do
  local base = (i - 1) * 5 + 2
  local kind, limit, window = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local max_delay, own = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
  local n, w = counts[i], 0
  if n >= limit then
    if kind == '$KIND_DELAY' then
      w = lasts[i] + math.min(2 ^ (n - limit), max_delay) - now
    elseif kind ~= '$KIND_CAP_IF_FAILED' or counts[own] > 0 then
      w = starts[i] + window - now
    end
  end
  if w > wait then wait = w end
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[(i - 1) * 5 + 5])
  if counts[i] == 0 then
    redis.call('hset', key, 'n', 1, 's', ARGV[1], 't', ARGV[1])
    redis.call('pexpire', key, math.ceil(window * 1000))
  else
    redis.call('hset', key, 'n', counts[i] + 1, 't', ARGV[1])
  end
end
return 0
