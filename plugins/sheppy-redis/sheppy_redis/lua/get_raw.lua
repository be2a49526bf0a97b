-- get_raw: the stored bodies (field "r", as written) of the given ids, for records the client could
-- not read as tasks: their quarantine records keep that text. ARGV: base, ids...
-- Returns one body per id (nil when the record or its body is missing).
local base = ARGV[1]
local out = {}
for i = 2, #ARGV do
  out[i - 1] = redis.call('HGET', base .. 't:' .. ARGV[i], 'r')
end
return out
