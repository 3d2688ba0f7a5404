-- domain.limits.given_back: uncount one attempt of each limit's current window. It never
-- creates a key or goes below zero, and a window that ended is left to expire.
-- KEYS: the limits' hashes. ARGV: now, then each limit's window.
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local h = redis.call('hmget', key, 'n', 's')
  if h[1] and tonumber(h[1]) > 0 and now < tonumber(h[2]) + tonumber(ARGV[i + 1]) then
    redis.call('hincrby', key, 'n', -1)
  end
end
return 0
