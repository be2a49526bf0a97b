-- delete_cron: remove a cron definition and, in the same step, its waiting occurrences: those indexed
-- under it (schedule.lua) that are still scheduled with status "scheduled" (never due-moved, claimed
-- or run). They are deleted, not cancelled, so the same ids can be scheduled when the cron comes back.
-- ARGV: base, cron id. KEYS: ids. Returns 1 if the definition existed; 0 changes nothing.
local base, cron_id = ARGV[1], ARGV[2]
if redis.call('HDEL', base .. 'cron', cron_id) == 0 then return 0 end
local okey = base .. 'co:' .. cron_id
for _, id in ipairs(redis.call('SMEMBERS', okey)) do
  local tkey = base .. 't:' .. id
  if redis.call('ZSCORE', base .. 'sched', id) and redis.call('HGET', tkey, 'status') == '"scheduled"' then
    redis.call('ZREM', base .. 'sched', id)
    unlist(base, id, 'scheduled')
    redis.call('UNLINK', tkey)
    redis.call('SREM', KEYS[1], id)
  end
end
redis.call('UNLINK', okey)
redis.call('SREM', base .. 'crok', cron_id)
return 1
