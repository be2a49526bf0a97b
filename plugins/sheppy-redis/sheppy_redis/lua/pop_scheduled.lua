-- pop_scheduled: move scheduled tasks due by `now` into the queue, earliest first, atomically.
-- ARGV: base, now (ms since the epoch, '' for the server's clock), max tasks moved by this call.
-- Returns {how many ids left the schedule, {id, record (JSON text), ... of the moved tasks}}.
local base, batch = ARGV[1], tonumber(ARGV[3])
local nowms = ARGV[2]
if nowms == '' then nowms = now_us() / 1000 end
local ids = redis.call('ZRANGEBYSCORE', base .. 'sched', '-inf', nowms, 'LIMIT', 0, batch)
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', base .. 'sched', id)
  local tkey = base .. 't:' .. id
  if redis.call('EXISTS', tkey) == 1 then
    relist(base, id, redis.call('HGET', tkey, '_ls') or '', 'pending')
    redis.call('HSET', tkey, 'status', '"pending"', '_ls', 'pending')
    enqueue(base, id)
    out[#out + 1] = id
    out[#out + 1] = record_json(tkey)
  end
end
if #out > 0 then wake(base) end
return {#ids, out}
