-- cancel: a task still waiting (queued, or scheduled/retrying) becomes "cancelled" and finished.
-- ARGV: base, id. Returns the record (JSON text), or nil when refused.
local base, id = ARGV[1], ARGV[2]
local tkey = base .. 't:' .. id
local queued = redis.call('ZSCORE', base .. 'q', id)
local scheduled = redis.call('ZSCORE', base .. 'sched', id)
if not (queued or scheduled) or redis.call('EXISTS', tkey) == 0 then return false end
local now = now_us()
unplace(base, id)
relist(base, id, redis.call('HGET', tkey, '_ls') or '', 'cancelled')
redis.call('HSET', tkey, 'status', '"cancelled"', 'finished_at', iso(now), '_ls', 'cancelled')
finish(base, id, 'cancelled', tonumber(redis.call('HGET', tkey, '_rc') or '-1'), now / 1000)
if redis.call('ZCARD', base .. 'q') == 0 then redis.call('DEL', base .. 'wake') end
return record_json(tkey)
