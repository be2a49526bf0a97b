-- append: store and queue records, in order, atomically per record.
-- ARGV: base, unique (0/1), registry key or '' , queue name, then per record 5 values:
--       id, body, deliveries, cancel retention ms, workflow id ('' for none).
-- KEYS: ids [, registry]. Returns one 0/1 per record.
local base, unique, registry, queue_name = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local results = {}
local added = 0
for i = 5, #ARGV, 5 do
  local id = ARGV[i]
  local tkey = base .. 't:' .. id
  local exists = redis.call('EXISTS', tkey) == 1
  if unique and exists then
    results[#results + 1] = 0
  else
    if exists then unplace(base, id) end
    write_record(tkey, exists, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], '"pending"')
    redis.call('SADD', KEYS[1], id)
    index_workflow(base, id, ARGV[i + 4])
    enqueue(base, id)
    results[#results + 1] = 1
    added = added + 1
  end
end
if added > 0 then wake(base) end
if registry ~= '' then redis.call('HSET', registry, queue_name, '1') end
return results
