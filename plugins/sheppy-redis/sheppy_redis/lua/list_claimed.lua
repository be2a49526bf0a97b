-- list_claimed: candidates for list_tasks(status="processing"). Pending and processing records share
-- the index's "active" set, so a claim writes nothing to the index; instead the claimed tasks come
-- from the claims ("lease": as many as the tasks in flight), and the ones acknowledge released (still
-- "processing") from the index's "acked" set, at most `want` of them within the bounds. The client
-- orders the candidates and takes its page.
-- ARGV: base, max and min (BYLEX bounds, see list_tasks.lua), want. Returns the index members of the
-- candidates, or false when the queue is not indexed yet (see list_tasks.lua).
local base, max, min, want = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', base .. 'lsv') == 0 then
  if redis.call('SCARD', KEYS[1]) == 0 then return {} end  -- no record: nothing to index or list
  return false
end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', base .. 'lease', 0, -1)) do
  local member = index_entry(base, id)
  if member and redis.call('HGET', base .. 't:' .. id, '_ls') == 'processing' then out[#out + 1] = member end
end
local acked = base .. 'ls:acked'
local found = 0
while found < want do
  local chunk = want - found
  local members = redis.call('ZRANGE', acked, max, min, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
  for _, member in ipairs(members) do
    local id = string.sub(member, 17)
    local current = index_entry(base, id)
    if current == member and redis.call('HGET', base .. 't:' .. id, '_ls') == 'processing:acked' then
      out[#out + 1] = member
      found = found + 1
    else
      redis.call('ZREM', acked, member)
    end
    max = '(' .. member
  end
  if #members < chunk then break end
end
return out
