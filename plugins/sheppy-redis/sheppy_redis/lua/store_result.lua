-- store_result: write records back after their attempts and release their claims; each record in one
-- step (the whole call is atomic, so also each record). Several results of one queue share a call:
-- the client's batcher merges the store_result calls made in the same event-loop turn.
-- ARGV: base, then per record 7 values: id, body, deliveries, cancel retention ms, workflow id, mode, arg:
--   mode 'finished' (arg: "<bucket> <retention ms or -1> <listed status> <func>"): file as finished,
--   wake waiters; mode 'scheduled' (arg: "<due ms> <listed status> <func>"): back to the schedule;
--   mode 'queued' (arg: "<func>"): status "pending", queued at the tail.
-- The listed status is the record's status as list_tasks filters by it, '-' for one it does not; func
-- the new body's spec.func ('' for none), for the listing index.
-- Returns one character per record (a string: cheaper to read than a list of integers): '1', or
-- '0' when no record with that id exists (nothing stored for it).
local base = ARGV[1]
local nowms = now_us() / 1000
local out = {}
local finished, queued, requeued = 0, false, false
for i = 2, #ARGV, 7 do
  local id = ARGV[i]
  local tkey = base .. 't:' .. id
  -- One read for both: a record of this version always has "_ls" (EXISTS only for older ones); "_fin"
  -- says whether it sits in a finished bucket (a claimed one, the usual case, does not).
  local marks = redis.call('HMGET', tkey, '_ls', '_fin')
  local was = marks[1]
  if not was and redis.call('EXISTS', tkey) == 0 then
    out[#out + 1] = '0'
  else
    was = was or ''
    unplace(base, id, marks[2] ~= '1')
    local mode, arg = ARGV[i + 5], ARGV[i + 6]
    local bucket, retention, due, listed, func
    if mode == 'finished' then
      bucket, retention, listed, func = string.match(arg, '^(%S+) (%S+) (%S+) (.*)$')
    elseif mode == 'scheduled' then
      due, listed, func = string.match(arg, '^(%S+) (%S+) (.*)$')
    else
      listed, func = 'pending', arg
    end
    if listed == '-' then listed = '' end
    write_record(tkey, true, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], mode == 'queued' and '"pending"', listed)
    redis.call('HSET', tkey, 'claimed_by', 'null', 'lease_expires_at', 'null')
    relist(base, id, was, listed, func)
    index_workflow(base, id, ARGV[i + 4])
    if mode == 'finished' then
      finish(base, id, bucket, tonumber(retention), nowms)
      finished = finished + 1
    elseif mode == 'scheduled' then
      redis.call('ZADD', base .. 'sched', due, id)
      requeued = true
    else
      enqueue(base, id)
      queued = true
      requeued = true
    end
    out[#out + 1] = '1'
  end
end
-- Once per call, not per record: the retention sweep, the wake-up tokens and the message that wakes
-- wait_for_change for a retry (finished records published their ids already).
if finished > 0 then purge(base, nowms, 20 * finished) end
if queued then wake(base) end
if requeued then redis.call('PUBLISH', base .. 'done', '') end
return table.concat(out)
