-- listing_unindexed: one step of indexing a store written before the listing index (see _common.lua).
-- ARGV: base, SSCAN cursor of the "ids" set, count. Returns {next cursor, ids of records not indexed}.
local base = ARGV[1]
local step = redis.call('SSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
local missing = {}
for _, id in ipairs(step[2]) do
  if redis.call('HEXISTS', base .. 'lm', id) == 0 and redis.call('EXISTS', base .. 't:' .. id) == 1 then
    missing[#missing + 1] = id
  end
end
return {step[1], missing}
