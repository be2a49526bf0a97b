-- delete_task: delete a finished record. ARGV: base, id [, body]: with a body, the record is deleted
-- also when not finished if its stored body is still exactly that one (a record the client read as
-- quarantined: it cannot be read as a task; "" stands for a record without a body).
-- Returns 1 if deleted, 0 if unknown, or the record's status JSON (a string) if it is not finished.
local base, id, corrupt_body = ARGV[1], ARGV[2], ARGV[3]
local tkey = base .. 't:' .. id
if redis.call('EXISTS', tkey) == 0 then return 0 end
if redis.call('HGET', tkey, '_fin') ~= '1'
    and not (corrupt_body and (redis.call('HGET', tkey, 'r') or '') == corrupt_body) then
  return redis.call('HGET', tkey, 'status') or 'null'
end
unlist(base, id, redis.call('HGET', tkey, '_ls') or '')
redis.call('UNLINK', tkey)
redis.call('SREM', KEYS[1], id)
unplace(base, id)
return 1
