-- schedule: store a record and keep it out of the queue until its due time.
-- ARGV: base, unique (0/1), registry key or '', queue name, id, body, deliveries, cancel retention ms,
--       workflow id, due (ms since the epoch), scheduled_at (JSON string), cron id or '', listing key
--       (16 hex digits), func ('' for none).
-- KEYS: ids [, registry]. Returns 1 if stored, 0 if the id exists (unique).
local base, unique, registry, queue_name = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local id = ARGV[5]
local tkey = base .. 't:' .. id
local exists = redis.call('EXISTS', tkey) == 1
if unique and exists then return 0 end
mark_indexed_if_new(base, KEYS[1])
if exists then
  unplace(base, id)
  unlist(base, id, redis.call('HGET', tkey, '_ls') or '')
end
write_record(tkey, exists, ARGV[6], ARGV[7], ARGV[8], '"scheduled"', 'scheduled')
redis.call('HSET', tkey, 'scheduled_at', ARGV[11])
redis.call('SADD', KEYS[1], id)
index_workflow(base, id, ARGV[9])
redis.call('ZADD', base .. 'sched', ARGV[10], id)
list_records(base, {id}, {ARGV[13]}, {ARGV[14]}, 'scheduled')
if ARGV[12] and ARGV[12] ~= '' then
  -- A cron occurrence: indexed under its cron for delete_cron. Members that left the schedule since
  -- (moved, run, replaced) are pruned here, so the set stays as small as the look-ahead.
  local okey = base .. 'co:' .. ARGV[12]
  for _, member in ipairs(redis.call('SMEMBERS', okey)) do
    if not redis.call('ZSCORE', base .. 'sched', member) then redis.call('SREM', okey, member) end
  end
  redis.call('SADD', okey, id)
  redis.call('SADD', base .. 'crok', ARGV[12])
end
if registry ~= '' then redis.call('HSET', registry, queue_name, '1') end
redis.call('PUBLISH', base .. 'done', '')  -- wakes wait_for_change; get_results waiters ignore it
return 1
