-- acknowledge: release a claim (live or expired) without touching the record body.
-- ARGV: base, id. Returns 1 if the task was claimed, else 0.
local base, id = ARGV[1], ARGV[2]
if redis.call('ZREM', base .. 'lease', id) == 0 then return 0 end
local tkey = base .. 't:' .. id
if redis.call('EXISTS', tkey) == 1 then
  redis.call('HSET', tkey, 'claimed_by', 'null', 'lease_expires_at', 'null')
end
return 1
