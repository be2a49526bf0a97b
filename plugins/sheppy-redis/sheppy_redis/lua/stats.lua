-- stats: counts by place; finished records count until their expiry (scores are expiry times).
-- ARGV: base. Returns {queued, claimed, scheduled, completed, failed, cancelled, crashed,
-- quarantined}.
local base = ARGV[1]
local nowms = now_us() / 1000
local out = {redis.call('ZCARD', base .. 'q'), redis.call('ZCARD', base .. 'lease'),
  redis.call('ZCARD', base .. 'sched')}
for i = 1, 5 do
  out[#out + 1] = redis.call('ZCOUNT', base .. 'fin:' .. FINISHED_BUCKETS[i], '(' .. nowms, '+inf')
end
return out
