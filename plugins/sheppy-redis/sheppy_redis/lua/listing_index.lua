-- listing_index: index records of a store written before the listing index (see _common.lua).
-- ARGV: base, done (1: the walk over "ids" is complete, so mark the queue indexed), then per record:
-- id, listing key (16 hex digits), func ('' for none), status name as the client read the record.
-- A record indexed meanwhile, or gone, is skipped. The status a script wrote into the record ("_ls"),
-- else its status field, wins over the client's reading (the record may have moved on since).
local base = ARGV[1]
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  local tkey = base .. 't:' .. id
  if redis.call('EXISTS', tkey) == 1 and redis.call('HEXISTS', base .. 'lm', id) == 0 then
    local known = redis.call('HMGET', tkey, '_ls', 'status')
    local listed = known[1] or (known[2] and listed_status(known[2])) or ARGV[i + 3]
    list_records(base, {id}, {ARGV[i + 1]}, {ARGV[i + 2]}, listed)
    redis.call('HSET', tkey, '_ls', listed)
  end
end
if ARGV[2] == '1' then redis.call('SET', base .. 'lsv', '1') end
return 1
