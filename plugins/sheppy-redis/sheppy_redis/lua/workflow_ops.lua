-- workflow_ops: the small multi-key workflow operations.
-- ARGV: base, op, workflow id [, task id].
--   'delete'   -> 1 if the record existed (record, version, pending set and index entry go);
--   'complete' -> remaining pending count after removing the task id, or -1 if it was not pending;
--   'pending'  -> the JSON of every unfinished workflow.
local base, op, wid = ARGV[1], ARGV[2], ARGV[3]
if op == 'delete' then
  redis.call('HDEL', base .. 'wfv', wid)
  redis.call('DEL', base .. 'wfp:' .. wid)
  redis.call('SREM', base .. 'wfo', wid)
  return redis.call('HDEL', base .. 'wf', wid)
elseif op == 'complete' then
  local pkey = base .. 'wfp:' .. wid
  if redis.call('SREM', pkey, ARGV[4]) == 0 then return -1 end
  return redis.call('SCARD', pkey)
end
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', base .. 'wfo')) do
  local record = redis.call('HGET', base .. 'wf', id)
  if record then out[#out + 1] = record end
end
return out
