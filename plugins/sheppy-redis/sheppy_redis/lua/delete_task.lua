-- delete_task: delete a finished record. ARGV: base, id.
-- Returns 1 if deleted, 0 if unknown, or the record's status JSON (a string) if it is not finished.
local base, id = ARGV[1], ARGV[2]
local tkey = base .. 't:' .. id
if redis.call('EXISTS', tkey) == 0 then return 0 end
if redis.call('HGET', tkey, '_fin') ~= '1' then
  return redis.call('HGET', tkey, 'status') or 'null'
end
redis.call('UNLINK', tkey)
redis.call('SREM', KEYS[1], id)
unplace(base, id)
return 1
