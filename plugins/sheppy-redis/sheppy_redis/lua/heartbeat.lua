-- heartbeat: extend the leases `claimed_by` still holds (even just expired, if nobody reclaimed them).
-- ARGV: base, claimed_by (JSON string), lease (microseconds), ids... Returns the ids still held.
local base, owner, lease_us = ARGV[1], ARGV[2], tonumber(ARGV[3])
local expiry_us = now_us() + lease_us
local expiry_iso = iso(expiry_us)
local held = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local tkey = base .. 't:' .. id
  if redis.call('ZSCORE', base .. 'lease', id) and redis.call('HGET', tkey, 'claimed_by') == owner then
    redis.call('ZADD', base .. 'lease', expiry_us / 1000, id)
    redis.call('HSET', tkey, 'lease_expires_at', expiry_iso)
    held[#held + 1] = id
  end
end
return held
