-- get_range: records in ZSET order, for get_pending (zset "q") and get_scheduled (zset "sched").
-- ARGV: base, zset name, count (-1 for all). Returns id, record (JSON text), id, record, ... (the ids
-- let the client set a record it cannot read aside under its key).
local base, zset, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local stop = -1
if count > 0 then stop = count - 1 end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', base .. zset, 0, stop)) do
  local record = record_json(base .. 't:' .. id)
  if record then
    out[#out + 1] = id
    out[#out + 1] = record
  end
end
return out
