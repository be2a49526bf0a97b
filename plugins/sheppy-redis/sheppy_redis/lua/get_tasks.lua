-- get_tasks: the records of the given ids, in one consistent snapshot.
-- ARGV: base, ids... Returns one JSON text per id (nil for an unknown id).
local base = ARGV[1]
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = record_json(base .. 't:' .. ARGV[i])
end
return out
