-- get_all_ids: forget expired finished records, then return every task id of the queue.
-- ARGV: base.
local base = ARGV[1]
purge(base, now_us() / 1000, 100000)
return redis.call('SMEMBERS', KEYS[1])
