-- rate_limit: take one start from a budget of `max_rate` per `period`, atomically.
-- ARGV: base, strategy ('sliding_window' | 'fixed_window'), key, max_rate, period (ms), task id.
-- Returns '-1' when granted, else the ms to wait (as a string, to keep the fraction).
local base, strategy, key = ARGV[1], ARGV[2], ARGV[3]
local max_rate, period, task_id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local nowms = now_us() / 1000
if strategy == 'sliding_window' then
  local zkey = base .. 'rl:s:' .. key
  redis.call('SADD', base .. 'rlk', zkey)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', nowms - period)
  if redis.call('ZSCORE', zkey, task_id) then return '-1' end
  if redis.call('ZCARD', zkey) < max_rate then
    redis.call('ZADD', zkey, nowms, task_id)
    redis.call('PEXPIRE', zkey, math.ceil(period) + 1000)
    return '-1'
  end
  local oldest = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  return tostring(math.max(tonumber(oldest[2]) + period - nowms, 1))
end
local hkey = base .. 'rl:f:' .. key
redis.call('SADD', base .. 'rlk', hkey)
local window = math.floor(nowms / period)
local state = redis.call('HMGET', hkey, 'w', 'n')
local count = 0
if tonumber(state[1]) == window then count = tonumber(state[2]) end
if count < max_rate then
  redis.call('HSET', hkey, 'w', window, 'n', count + 1)
  redis.call('PEXPIRE', hkey, math.ceil(period) + 1000)
  return '-1'
end
return tostring(math.max((window + 1) * period - nowms, 1))
