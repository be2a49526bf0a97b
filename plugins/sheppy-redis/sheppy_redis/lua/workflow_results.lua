-- workflow_results: records of the tasks indexed under a workflow id (the client keeps finished ones);
-- ids whose record is gone are dropped from the index. ARGV: base, workflow id.
-- Returns id, record (JSON text), id, record, ...
local base, wid = ARGV[1], ARGV[2]
local ikey = base .. 'wft:' .. wid
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', ikey)) do
  local record = record_json(base .. 't:' .. id)
  if record then
    out[#out + 1] = id
    out[#out + 1] = record
  else
    redis.call('SREM', ikey, id)
  end
end
return out
