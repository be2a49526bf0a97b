-- rate_limit: take one start from a budget of `max_rate` per `period`, atomically. A deferral reserves
-- the task's start in the same step (the rule of sheppy_core.backend._rate_limits): the deferred task
-- is granted when it comes back, tasks deferred later queue behind it, each deferral no sooner than
-- the previous pending reservation + period / max_rate.
-- ARGV: base, strategy ('sliding_window' | 'fixed_window'), key, max_rate, period (ms), task id.
-- Returns '-1' when granted, else the ms to wait (as a string, to keep the fraction).
local base, strategy, key = ARGV[1], ARGV[2], ARGV[3]
local max_rate, period, task_id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local nowms = now_us() / 1000
local min_wait = 1
local eps = period * 1e-9

local function latest_of(zkey)
  local last = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if last[2] then return tonumber(last[2]) end
  return nil
end

-- The wait of a task already holding a start: granted again ('-1'), or until its reservation.
local function held(zkey)
  local at = redis.call('ZSCORE', zkey, task_id)
  if not at then return nil end
  at = tonumber(at)
  if at <= nowms then return '-1' end
  return tostring(math.max(at - nowms, min_wait))
end

local function staggered(zkey, slot)
  local latest = latest_of(zkey)
  if latest and latest > nowms then slot = math.max(slot, latest + period / max_rate) end
  return math.max(slot, nowms + min_wait)
end

-- Keep the keys while a start in them still counts.
local function keep(keys, zkey)
  local ttl = math.ceil(math.max(latest_of(zkey) or nowms, nowms) - nowms + period) + 1000
  for _, k in ipairs(keys) do redis.call('PEXPIRE', k, ttl) end
end

if strategy == 'sliding_window' then
  local zkey = base .. 'rl:s:' .. key
  redis.call('SADD', base .. 'rlk', zkey)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', nowms - period)
  local wait = held(zkey)
  if wait then return wait end
  if redis.call('ZCARD', zkey) < max_rate then
    redis.call('ZADD', zkey, nowms, task_id)
    keep({zkey}, zkey)
    return '-1'
  end
  -- The budget frees up when the max_rate-th latest start (or reservation) leaves the window.
  local nth = redis.call('ZRANGE', zkey, -max_rate, -max_rate, 'WITHSCORES')
  local slot = staggered(zkey, tonumber(nth[2]) + period)
  redis.call('ZADD', zkey, slot, task_id)
  keep({zkey}, zkey)
  return tostring(slot - nowms)
end

-- fixed_window: `rl:fw:` holds when the current window began (it begins with its first start, as
-- sheppy's); `rl:fs:` the starts made or reserved in it and in later windows.
local skey, zkey = base .. 'rl:fw:' .. key, base .. 'rl:fs:' .. key
redis.call('SADD', base .. 'rlk', skey, zkey)
local start = tonumber(redis.call('GET', skey))
if start and nowms >= start + period then
  local current = start + math.floor((nowms - start) / period + 1e-9) * period
  local latest = latest_of(zkey)
  if latest and latest >= current - eps then
    start = current
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. string.format('%.17g', current - eps))
  else
    start = nil
    redis.call('DEL', zkey)
  end
end
if start == nil then start = nowms end
redis.call('SET', skey, string.format('%.17g', start))
local wait = held(zkey)
if wait then
  keep({skey, zkey}, zkey)
  return wait
end
local function taken(index)
  local lo = string.format('%.17g', start + index * period - eps)
  local hi = '(' .. string.format('%.17g', start + (index + 1) * period - eps)
  return redis.call('ZCOUNT', zkey, lo, hi)
end
if redis.call('ZCOUNT', zkey, '-inf', '(' .. string.format('%.17g', start + period - eps)) < max_rate then
  redis.call('ZADD', zkey, nowms, task_id)
  keep({skey, zkey}, zkey)
  return '-1'
end
local slot = staggered(zkey, start + period)
while true do
  local index = math.floor((slot - start) / period + 1e-9)
  if taken(index) < max_rate then break end
  slot = start + (index + 1) * period
end
redis.call('ZADD', zkey, slot, task_id)
keep({skey, zkey}, zkey)
return tostring(slot - nowms)
