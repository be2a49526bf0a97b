-- pop: claim up to `limit` tasks, expired leases first (earliest expiry first), then queued ones in
-- append order; write the claim into each record and return the records.
-- ARGV: base, limit, claimed_by (JSON string), lease (microseconds).
-- Returns ONE string "<wait_ms>\n<ids>\n<records>" (one bulk string is the cheapest reply to read):
-- records is a JSON array of the claimed records (each one record_json), read with one json.loads,
-- and ids the JSON array of their keys' ids, so the client can tell a record it cannot read (or one
-- whose body names another id) and set it aside under its key. wait_ms is
-- -1, or, when nothing was claimed, the ms until the earliest live lease expires (-1 if none).
-- Each claimed record keeps in its internal field "_undo" where it was and what its claim fields held
-- before, so that hand_back.lua can undo a claim whose reply its caller never read (a cancelled pop).
local base, limit, owner, lease_us = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_us()
local nowms = now / 1000
local ids, places = {}, {}
local expired = redis.call('ZRANGEBYSCORE', base .. 'lease', '-inf', nowms, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #expired, 2 do
  ids[#ids + 1] = expired[i]
  places[#ids] = 'lease ' .. expired[i + 1]
end
if #ids < limit then
  local popped = redis.call('ZPOPMIN', base .. 'q', limit - #ids)
  for i = 1, #popped, 2 do
    ids[#ids + 1] = popped[i]
    places[#ids] = 'q ' .. popped[i + 1]
  end
end
local expiry_us = now + lease_us
local expiry_iso = iso(expiry_us)
local records, claimed = {}, {}
for i, id in ipairs(ids) do
  local tkey = base .. 't:' .. id
  if redis.call('EXISTS', tkey) == 1 then
    -- "<place> <score>\n<status>\n<claimed_by>\n<lease_expires_at>" ('' for a field not set): JSON
    -- values never hold a raw newline.
    local prior = redis.call('HMGET', tkey, 'status', 'claimed_by', 'lease_expires_at')
    local undo = places[i] .. '\n' .. (prior[1] or '') .. '\n' .. (prior[2] or '') .. '\n' .. (prior[3] or '')
    redis.call('ZADD', base .. 'lease', expiry_us / 1000, id)
    redis.call('HSET', tkey, 'status', '"processing"', 'claimed_by', owner, 'lease_expires_at', expiry_iso,
      '_undo', undo, '_ls', 'processing')  -- pending and processing share the index's "active" set
    redis.call('HINCRBY', tkey, 'deliveries', 1)
    records[#records + 1] = record_json(tkey)
    claimed[#records] = id
  else
    redis.call('ZREM', base .. 'lease', id)
  end
end
-- Pass the baton: if work is left and no token is waiting, wake the next idle worker; if the queue is
-- empty, tokens would only cause spurious wake-ups.
if redis.call('ZCARD', base .. 'q') == 0 then
  redis.call('DEL', base .. 'wake')
elseif #records > 0 then
  wake(base)
end
local wait_ms = -1
if #records == 0 then
  local soonest = redis.call('ZRANGE', base .. 'lease', 0, 0, 'WITHSCORES')
  if #soonest > 0 then wait_ms = tostring(math.max(tonumber(soonest[2]) - nowms, 0)) end
end
local claimed_ids = '[]'
if #claimed > 0 then claimed_ids = cjson.encode(claimed) end
return wait_ms .. '\n' .. claimed_ids .. '\n[' .. table.concat(records, ',') .. ']'
