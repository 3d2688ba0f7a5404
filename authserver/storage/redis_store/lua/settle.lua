-- domain.flow.settle_claim: only the claim that holds the flow (same version, tokens not yet
-- issued) may settle it, so a claim that lapsed and was taken over, or a script Redis runs after
-- its caller gave up, changes nothing.
-- KEYS: flow, channel. ARGV: claim (the version its poll returned), settlement, the state it
-- leaves the flow in, family id (issued only).
local h = redis.call('hmget', KEYS[1], 'state', 'version', 'issued')
if h[1] ~= '$STATE_REDEEMED' or h[2] ~= ARGV[1] or h[3] == '1' then return 0 end
redis.call('hdel', KEYS[1], 'lease_until')
if ARGV[2] == '$SETTLEMENT_ISSUED' then
  -- No version bump: status waiters already saw "approved" when the flow was claimed.
  redis.call('hset', KEYS[1], 'issued', '1', 'family_id', ARGV[4])
  return 1
end
redis.call('hset', KEYS[1], 'state', ARGV[3])
redis.call('hincrby', KEYS[1], 'version', 1)
redis.call('publish', KEYS[2], '1')
return 1
