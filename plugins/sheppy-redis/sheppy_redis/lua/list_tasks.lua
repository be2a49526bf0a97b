-- list_tasks: one page of the listing index (see _common.lua), newest first.
-- ARGV: base, status ('' for any; not 'processing', see list_claimed.lua), func ('' for any), max and min (ZRANGE BYLEX bounds on members:
-- "+"/"-", or "(" / "[" and a member prefix), how many records are wanted, most members examined.
-- Walks the smaller of the status and func sets (or "ls" when neither is given) from max down and
-- checks each member against the record: an entry left by a record that expired, was deleted or
-- moved on is removed from the set and skipped, so a page is full whenever there are records enough.
-- Returns {member, record (JSON text), member, record, ...} and the member to resume after when the
-- examination budget ran out first ('' when the walk ended), or false when the queue is not indexed
-- yet (a store written before the index: the client indexes it, then asks again).
local base, status, func, max, min = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local want, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('EXISTS', base .. 'lsv') == 0 then
  if redis.call('SCARD', KEYS[1]) == 0 then return {{}, ''} end  -- no record: nothing to index or list
  return false
end
local walked = base .. 'ls'
local status_set = LISTED[status] or ''
local by_status, by_func = base .. 'ls:' .. status_set, base .. 'lf:' .. func
if status ~= '' and func ~= '' then
  if redis.call('ZCARD', by_status) <= redis.call('ZCARD', by_func) then walked = by_status else walked = by_func end
elseif status ~= '' then
  walked = by_status
elseif func ~= '' then
  walked = by_func
end
local out = {}
local found, examined = 0, 0
local resume = ''
while found < want do
  local chunk = math.min(budget - examined, math.max(want - found, 16))
  if chunk <= 0 then break end
  local members = redis.call('ZRANGE', walked, max, min, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
  for _, member in ipairs(members) do
    examined = examined + 1
    local id = string.sub(member, 17)
    local tkey = base .. 't:' .. id
    local meta = redis.call('HGET', base .. 'lm', id)
    local listed = redis.call('HGET', tkey, '_ls')
    local current = meta and listed and string.sub(meta, 1, 16) == string.sub(member, 1, 16)
    if current and walked == by_status then current = LISTED[listed] == status_set end
    if current and walked == by_func then current = string.sub(meta, 17) == func end
    if not current then
      redis.call('ZREM', walked, member)
    elseif (status == '' or listed == status) and (func == '' or string.sub(meta, 17) == func) then
      local record = record_json(tkey)
      if record then
        out[#out + 1] = member
        out[#out + 1] = record
        found = found + 1
        if found == want then break end
      end
    end
    max = '(' .. member
  end
  if found < want and #members < chunk then break end
  if found < want and examined >= budget then resume = string.sub(max, 2) end
end
return {out, resume}
