-- append: store and queue records, in order, atomically per record.
-- ARGV: base, unique (0/1), registry key or '', queue name, then ONE packed string of records (one
-- bulk argument instead of seven per record keeps the client's command packing cheap). Each record in
-- it is a header line "<id bytes> <deliveries> <cancel retention ms> <workflow id bytes> <body bytes>
-- <listing key, 16 hex digits> <func bytes>\n" followed by the id, the workflow id ('' for none), the
-- func (spec.func, '' for none) and the body, back to back.
-- KEYS: ids [, registry]. Returns one character per record: '1' stored, '0' not (unique, id taken).
local base, unique, registry, queue_name = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local packed = ARGV[5] or ''
local sub, find = string.sub, string.find
local results = {}
local added = 0
local fresh, listing_keys, funcs = {}, {}, {}
local pos = 1
mark_indexed_if_new(base, KEYS[1])
while pos <= #packed do
  local _, stop, id_len, deliveries, cancel_retention, wf_len, body_len, listing_key, func_len =
    find(packed, '^(%d+) (%-?%d+) (%S+) (%d+) (%d+) (%x+) (%d+)\n', pos)
  if not stop then return redis.error_reply('append: malformed record at byte ' .. pos) end
  pos = stop + 1
  local id = sub(packed, pos, pos + id_len - 1)
  pos = pos + id_len
  local workflow_id = sub(packed, pos, pos + wf_len - 1)
  pos = pos + wf_len
  local func = sub(packed, pos, pos + func_len - 1)
  pos = pos + func_len
  local body = sub(packed, pos, pos + body_len - 1)
  pos = pos + body_len
  local tkey = base .. 't:' .. id
  local exists = redis.call('EXISTS', tkey) == 1
  if unique and exists then
    results[#results + 1] = '0'
  else
    if exists then
      unplace(base, id)
      unlist(base, id, redis.call('HGET', tkey, '_ls') or '')
    end
    write_record(tkey, exists, body, deliveries, cancel_retention, '"pending"', 'pending')
    index_workflow(base, id, workflow_id)
    -- Queued below, all at once: the script is atomic, so nobody sees the difference.
    added = added + 1
    fresh[added] = id
    listing_keys[added] = listing_key
    funcs[added] = func
    results[#results + 1] = '1'
  end
end
if added > 0 then
  -- One SADD, one INCRBY and one ZADD for the whole call: seq numbers in call order, so FIFO holds.
  -- An id given twice gets both scores in turn; the later one wins, as if queued one by one.
  local last = redis.call('INCRBY', base .. 'seq', added)
  local scored = {}
  for i, id in ipairs(fresh) do
    scored[2 * i - 1] = last - added + i
    scored[2 * i] = id
  end
  redis.call('SADD', KEYS[1], unpack(fresh))
  redis.call('ZADD', base .. 'q', unpack(scored))
  list_records(base, fresh, listing_keys, funcs, 'pending')
  wake(base)
  -- One message per call, not per record: wakes wait_for_change (an empty payload is no task id, so
  -- get_results waiters on the channel ignore it).
  redis.call('PUBLISH', base .. 'done', '')
end
if registry ~= '' then redis.call('HSET', registry, queue_name, '1') end
return table.concat(results)
