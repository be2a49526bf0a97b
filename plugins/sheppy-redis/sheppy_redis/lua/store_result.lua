-- store_result: write records back after their attempts and release their claims; each record in one
-- step (the whole call is atomic, so also each record). Several results of one queue share a call:
-- the client's batcher merges the store_result calls made in the same event-loop turn.
-- ARGV: base, then per record 7 values: id, body, deliveries, cancel retention ms, workflow id, mode, arg:
--   mode 'finished' (arg: "<bucket> <retention ms or -1>"): file as finished, wake waiters;
--   mode 'scheduled' (arg: due ms): back to the schedule;
--   mode 'queued': status "pending", queued at the tail.
-- Returns one character per record (a string: cheaper to read than a list of integers): '1', or
-- '0' when no record with that id exists (nothing stored for it).
local base = ARGV[1]
local nowms = now_us() / 1000
local out = {}
local finished, queued = 0, false
for i = 2, #ARGV, 7 do
  local id = ARGV[i]
  local tkey = base .. 't:' .. id
  if redis.call('EXISTS', tkey) == 0 then
    out[#out + 1] = '0'
  else
    unplace(base, id)
    local mode, arg = ARGV[i + 5], ARGV[i + 6]
    write_record(tkey, true, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], mode == 'queued' and '"pending"')
    redis.call('HSET', tkey, 'claimed_by', 'null', 'lease_expires_at', 'null')
    index_workflow(base, id, ARGV[i + 4])
    if mode == 'finished' then
      local bucket, retention = string.match(arg, '^(%S+) (%S+)$')
      finish(base, id, bucket, tonumber(retention), nowms)
      finished = finished + 1
    elseif mode == 'scheduled' then
      redis.call('ZADD', base .. 'sched', arg, id)
    else
      enqueue(base, id)
      queued = true
    end
    out[#out + 1] = '1'
  end
end
-- Once per call, not per record: the retention sweep and the wake-up tokens.
if finished > 0 then purge(base, nowms, 20 * finished) end
if queued then wake(base) end
return table.concat(out)
