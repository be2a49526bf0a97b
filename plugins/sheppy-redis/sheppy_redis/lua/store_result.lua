-- store_result: write a record back after an attempt and release its claim, in one step.
-- ARGV: base, id, body, deliveries, cancel retention ms, workflow id, mode, arg:
--   mode 'finished' (arg: "<bucket> <retention ms or -1>"): file as finished, wake waiters;
--   mode 'scheduled' (arg: due ms): back to the schedule;
--   mode 'queued': status "pending", queued at the tail.
-- Returns 1, or 0 when no record with that id exists (nothing stored).
local base, id = ARGV[1], ARGV[2]
local tkey = base .. 't:' .. id
if redis.call('EXISTS', tkey) == 0 then return 0 end
local nowms = now_us() / 1000
unplace(base, id)
local mode, arg = ARGV[7], ARGV[8]
write_record(tkey, true, ARGV[3], ARGV[4], ARGV[5], mode == 'queued' and '"pending"')
redis.call('HSET', tkey, 'claimed_by', 'null', 'lease_expires_at', 'null')
index_workflow(base, id, ARGV[6])
if mode == 'finished' then
  local bucket, retention = string.match(arg, '^(%S+) (%S+)$')
  finish(base, id, bucket, tonumber(retention), nowms)
  purge(base, nowms, 20)
elseif mode == 'scheduled' then
  redis.call('ZADD', base .. 'sched', arg, id)
else
  enqueue(base, id)
  wake(base)
end
return 1
