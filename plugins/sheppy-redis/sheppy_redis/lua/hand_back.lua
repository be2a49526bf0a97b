-- hand_back: undo claims a cancelled pop made but whose reply its caller never read. Each task goes
-- back to where it was (a queued one to its place in the queue, an expired claim to its old owner and
-- expiry) with its claim fields and delivery count as before, from the "_undo" field pop.lua wrote.
-- A task is left alone unless it is still held by exactly that claim (same owner, expiry and count).
-- ARGV: base, claimed_by (JSON string), lease_expires_at (JSON text, as the claim wrote it), then per
-- task: id, deliveries as claimed. Returns how many tasks were handed back.
local base, owner, expiry = ARGV[1], ARGV[2], ARGV[3]
local back, expired_back = 0, 0
for i = 4, #ARGV, 2 do
  local id, deliveries = ARGV[i], ARGV[i + 1]
  local tkey = base .. 't:' .. id
  local held = redis.call('HMGET', tkey, 'claimed_by', 'lease_expires_at', 'deliveries', '_undo')
  if held[1] == owner and held[2] == expiry and held[3] == deliveries and held[4]
      and redis.call('ZSCORE', base .. 'lease', id) then
    local place, score, status, claimed_by, lease_expires_at =
      string.match(held[4], '^(%S+) (%S+)\n(.-)\n(.-)\n(.-)$')
    if place then
      local fields = {status = status, claimed_by = claimed_by, lease_expires_at = lease_expires_at}
      for name, value in pairs(fields) do
        if value == '' then redis.call('HDEL', tkey, name) else redis.call('HSET', tkey, name, value) end
      end
      local listed = listed_status(status)
      relist(base, id, redis.call('HGET', tkey, '_ls') or '', listed)
      redis.call('HSET', tkey, '_ls', listed)
      redis.call('HINCRBY', tkey, 'deliveries', -1)
      redis.call('HDEL', tkey, '_undo')
      if place == 'q' then
        redis.call('ZREM', base .. 'lease', id)
        redis.call('ZADD', base .. 'q', score, id)
      else
        redis.call('ZADD', base .. 'lease', score, id)
        expired_back = expired_back + 1
      end
      back = back + 1
    end
  end
end
if back > 0 then
  -- Idle workers must notice: queued tasks get their tokens as usual, and an expired claim one of its
  -- own (nobody pushes a token when a lease expires).
  wake(base)
  for _ = 1, math.min(expired_back, 64) do redis.call('RPUSH', base .. 'wake', '1') end
end
return back
