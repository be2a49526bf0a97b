-- store_workflow: write a workflow record, optionally only if the stored version matches (CAS).
-- ARGV: base, workflow id, JSON, if_version ('' for none), version of the new record, finished (0/1),
--       pending task ids... Returns 1 if written, 0 if the versions differ.
local base, wid, record, if_version = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if if_version ~= '' then
  local current = tonumber(redis.call('HGET', base .. 'wfv', wid) or '0')
  if current ~= tonumber(if_version) then return 0 end
end
redis.call('HSET', base .. 'wf', wid, record)
redis.call('HSET', base .. 'wfv', wid, ARGV[5])
local pkey = base .. 'wfp:' .. wid
redis.call('DEL', pkey)
if ARGV[6] == '1' then
  redis.call('SREM', base .. 'wfo', wid)
else
  for i = 7, #ARGV do redis.call('SADD', pkey, ARGV[i]) end
  redis.call('SADD', base .. 'wfo', wid)
end
return 1
