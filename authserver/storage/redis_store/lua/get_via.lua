-- The flow an index key (user code or confirm token) points at, in one round trip.
-- KEYS: index. ARGV: the flow key prefix (the flow key is derived here, so not in KEYS: this
-- store runs on one Redis server, not a cluster). Returns HGETALL of the flow, or {} if none.
local device_code_hash = redis.call('get', KEYS[1])
if not device_code_hash then return {} end
return redis.call('hgetall', ARGV[1] .. device_code_hash)
