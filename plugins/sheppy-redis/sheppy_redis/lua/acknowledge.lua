-- acknowledge: release a claim (live or expired) without touching the record body.
-- ARGV: base, id. Returns 1 if the task was claimed, else 0.
local base, id = ARGV[1], ARGV[2]
if redis.call('ZREM', base .. 'lease', id) == 0 then return 0 end
local tkey = base .. 't:' .. id
if redis.call('EXISTS', tkey) == 1 then
  -- Still "processing" but out of the claims: the listing finds it in the index's "acked" set.
  relist(base, id, redis.call('HGET', tkey, '_ls') or '', 'processing:acked')
  redis.call('HSET', tkey, 'claimed_by', 'null', 'lease_expires_at', 'null', '_ls', 'processing:acked')
end
return 1
