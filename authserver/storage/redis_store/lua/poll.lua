-- domain.flow.poll, made atomic in one round trip: the same straight line of checks. The
-- contract tests and the state-machine test drive both with the same steps, and the state and
-- outcome names below are filled in from the domain's enums when this file is loaded.
-- KEYS: flow, channel. ARGV: now, client_id, client secret hash, lease seconds, slow-down step,
-- DPoP key thumbprint ('' for none).
-- Returns {outcome}, or {outcome, HGETALL...} for the outcomes whose caller needs the flow.
local f = KEYS[1]
local h = redis.call('hmget', f, 'client_id', 'client_secret_hash', 'state', 'expires_at',
                     'interval', 'last_poll_at', 'issued', 'lease_until', 'dpop_jkt')
if not h[1] then return {'$OUTCOME_UNKNOWN'} end
if h[1] ~= ARGV[2] then return {'$OUTCOME_WRONG_CLIENT'} end
-- Both sides are SHA-256 digests of a 256-bit secret: an early-exit compare leaks nothing usable.
if h[2] ~= ARGV[3] then return {'$OUTCOME_BAD_SECRET'} end
if h[9] and h[9] ~= ARGV[6] then return {'$OUTCOME_WRONG_KEY'} end
local now = tonumber(ARGV[1])
local state = h[3]
local outcome
if state == '$STATE_REDEEMED' and h[7] == '1' then
  outcome = '$OUTCOME_REPLAY'
elseif state == '$STATE_REDEEMED' and h[8] and now < tonumber(h[8]) then
  return {'$OUTCOME_CLAIMED'}
elseif state == '$STATE_VOIDED' or now >= tonumber(h[4]) then
  outcome = '$OUTCOME_EXPIRED'
elseif state == '$STATE_DENIED' then
  return {'$OUTCOME_DENIED'}
elseif state == '$STATE_APPROVED' or state == '$STATE_REDEEMED' then
  -- Claim with a lease (a new version); a REDEEMED flow here holds a lapsed claim.
  redis.call('hset', f, 'state', '$STATE_REDEEMED', 'last_poll_at', ARGV[1],
             'lease_until', ARGV[1] + ARGV[4])
  redis.call('hincrby', f, 'version', 1)
  redis.call('publish', KEYS[2], '1')
  outcome = '$OUTCOME_REDEEM'
elseif h[6] and now - tonumber(h[6]) < tonumber(h[5]) then
  redis.call('hincrby', f, 'interval', ARGV[5])
  return {'$OUTCOME_SLOW_DOWN'}
else
  redis.call('hset', f, 'last_poll_at', ARGV[1])
  return {'$OUTCOME_PENDING'}
end
local result = redis.call('hgetall', f)
table.insert(result, 1, outcome)
return result
