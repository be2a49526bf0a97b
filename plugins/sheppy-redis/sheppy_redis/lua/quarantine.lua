-- quarantine: set aside records a pop claimed but that cannot be read as tasks. Each one still held
-- by that claim (owner, in the lease set) gets the quarantine record the client built as its body and
-- is finished under "quarantined" (out of the queue and claims, kept for its retention time).
-- ARGV: base, claimed_by (JSON string), then per record: id, quarantine record (JSON), retention ms
-- (-1 for ever). Returns one character per record: '1' quarantined, '0' no longer held by the claim.
local base, owner = ARGV[1], ARGV[2]
local nowms = now_us() / 1000
local out = {}
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local tkey = base .. 't:' .. id
  local held = redis.call('HMGET', tkey, 'claimed_by', 'deliveries', '_rc', '_ls')
  if held[1] == owner and redis.call('ZSCORE', base .. 'lease', id) then
    unplace(base, id)
    write_record(tkey, true, ARGV[i + 1], held[2] or '0', held[3] or '-1', false, 'quarantined')
    relist(base, id, held[4] or '', 'quarantined', '')  -- a stand-in has no spec
    finish(base, id, 'quarantined', tonumber(ARGV[i + 2]), nowms)
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
end
return table.concat(out)
