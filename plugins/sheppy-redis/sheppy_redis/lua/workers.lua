-- workers: the worker registry, for all queues. KEYS: records HASH (id -> JSON as given), expiries ZSET
-- (id -> expiry, ms on the server's clock); both carry the same hash tag. Workers past their expiry are
-- removed first, whatever the operation, and both keys expire with the last live worker.
-- ARGV: 'register', id, record, ttl ms -> 1 | 'unregister', id -> 1 if it was live, else 0 |
-- 'list' -> HGETALL of the live records.
local records, expiries, op = KEYS[1], KEYS[2], ARGV[1]
local nowms = now_us() / 1000
local gone = redis.call('ZRANGEBYSCORE', expiries, '-inf', nowms, 'LIMIT', 0, 1000)
if #gone > 0 then
  redis.call('HDEL', records, unpack(gone))
  redis.call('ZREM', expiries, unpack(gone))
end
if op == 'register' then
  redis.call('HSET', records, ARGV[2], ARGV[3])
  redis.call('ZADD', expiries, nowms + tonumber(ARGV[4]), ARGV[2])
  local last = redis.call('ZRANGE', expiries, -1, -1, 'WITHSCORES')
  local keep = math.max(math.ceil(tonumber(last[2]) - nowms), 1)
  redis.call('PEXPIRE', records, keep)
  redis.call('PEXPIRE', expiries, keep)
  return 1
elseif op == 'unregister' then
  local live = redis.call('ZREM', expiries, ARGV[2])
  redis.call('HDEL', records, ARGV[2])
  return live
end
return redis.call('HGETALL', records)
