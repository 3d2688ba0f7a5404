-- Store a new flow unless its user code is taken by a live one.
-- KEYS: flow, user-code index. ARGV: ttl, device code hash, then field/value pairs.
if redis.call('set', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[1]) == false then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 3))
redis.call('expire', KEYS[1], ARGV[1])
return 1
