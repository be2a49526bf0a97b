-- clear: delete everything of one queue. ARGV: base, registry key or '', queue name.
-- KEYS: ids [, registry]. Returns the number of task records plus crons removed.
local base, registry, queue_name = ARGV[1], ARGV[2], ARGV[3]
local removed = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  removed = removed + redis.call('UNLINK', base .. 't:' .. id)
end
removed = removed + redis.call('HLEN', base .. 'cron')
for _, wid in ipairs(redis.call('HKEYS', base .. 'wf')) do redis.call('UNLINK', base .. 'wfp:' .. wid) end
for _, wid in ipairs(redis.call('SMEMBERS', base .. 'wftk')) do redis.call('UNLINK', base .. 'wft:' .. wid) end
for _, key in ipairs(redis.call('SMEMBERS', base .. 'rlk')) do redis.call('UNLINK', key) end
for _, cid in ipairs(redis.call('SMEMBERS', base .. 'crok')) do redis.call('UNLINK', base .. 'co:' .. cid) end
for _, func in ipairs(redis.call('SMEMBERS', base .. 'lfk')) do redis.call('UNLINK', base .. 'lf:' .. func) end
local fixed = {'ids', 'q', 'seq', 'lease', 'sched', 'wake', 'cron', 'crok', 'wf', 'wfv', 'wfo', 'wftk', 'rlk',
  'ls', 'lm', 'lfk', 'lsv'}
for _, bucket in ipairs(FINISHED_BUCKETS) do fixed[#fixed + 1] = 'fin:' .. bucket end
for _, name in ipairs(STATUS_SETS) do fixed[#fixed + 1] = 'ls:' .. name end
for _, name in ipairs(fixed) do redis.call('UNLINK', base .. name) end
if registry ~= '' then redis.call('HDEL', registry, queue_name) end
return removed
