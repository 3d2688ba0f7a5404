-- Compare-and-set on version: the phone-side transitions are decided in Python by the domain.
-- KEYS: flow, old confirm index ('' if none), new confirm index ('' if none), channel.
-- ARGV: expected version, device code hash (the index's value), npairs, field/value pairs...,
-- then the fields to delete.
if redis.call('hget', KEYS[1], 'version') ~= ARGV[1] then return 0 end
local pairs_end = 3 + 2 * tonumber(ARGV[3])
redis.call('hset', KEYS[1], unpack(ARGV, 4, pairs_end))
if #ARGV > pairs_end then redis.call('hdel', KEYS[1], unpack(ARGV, pairs_end + 1)) end
local ttl = redis.call('ttl', KEYS[1])
if KEYS[2] ~= '' and KEYS[2] ~= KEYS[3] then redis.call('del', KEYS[2]) end
if KEYS[3] ~= '' and ttl > 0 then redis.call('set', KEYS[3], ARGV[2], 'EX', ttl) end
if redis.call('hget', KEYS[1], 'version') ~= ARGV[1] then redis.call('publish', KEYS[4], '1') end
return 1
