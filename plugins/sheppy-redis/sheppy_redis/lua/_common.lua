-- Helpers prepended to every script of sheppy-redis (see sheppy_redis/_scripts.py).
--
-- Calling convention: KEYS[1] is the queue's "ids" key (it routes the call to the queue's hash slot),
-- ARGV[1] is the queue's key prefix "<prefix>:{<tag>}:". Every other key a script touches is derived
-- from that prefix, so it carries the same hash tag and lives in the same slot.
--
-- A task record is a hash "<base>t:<id>": field "r" holds the JSON the client stored, untouched; the
-- other fields are JSON values the backend wrote (status, claimed_by, lease_expires_at, deliveries,
-- finished_at, scheduled_at) and override the same keys of "r" when read. Fields starting with "_"
-- are internal and never shown. Lua never decodes or re-encodes "r": cjson would turn [] into {} and
-- round large numbers.

local FINISHED_BUCKETS = {'completed', 'failed', 'cancelled', 'crashed', 'quarantined', 'other'}

-- Server time in microseconds: every lease, expiry and rate-limit window uses the server clock, so
-- workers with skewed clocks still agree on when a lease has expired.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- ISO 8601 UTC ("2026-11-24T08:15:40.123456Z") of a Unix time in microseconds (days-from-civil
-- inverse, after H. Hinnant).
local function iso(us)
  local secs = math.floor(us / 1000000)
  local micro = us - secs * 1000000
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"', y, m, d,
    math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, micro)
end

-- Remove a task id from every place (queued, claimed, scheduled, finished). `unfinished`: the caller
-- read the record's hash and found no "_fin" mark; only finish() files a record in a finished bucket and
-- it sets the mark (a rewrite of the hash drops both), so such a record is in none and the buckets are
-- skipped. A hash that is gone tells nothing: its bucket entry outlives its TTL until purged.
local function unplace(base, id, unfinished)
  redis.call('ZREM', base .. 'q', id)
  redis.call('ZREM', base .. 'lease', id)
  redis.call('ZREM', base .. 'sched', id)
  if unfinished then return end
  for _, bucket in ipairs(FINISHED_BUCKETS) do
    redis.call('ZREM', base .. 'fin:' .. bucket, id)
  end
end

-- Queue a task at the tail: scores come from a per-queue counter, so ZSET order is append order.
local function enqueue(base, id)
  local seq = redis.call('INCR', base .. 'seq')
  redis.call('ZADD', base .. 'q', seq, id)
end

-- Wake-up tokens for workers blocked in BLPOP: keep one per queued task, at most 64. They are hints
-- (a woken worker runs the claim script, which is the only thing that claims).
local function wake(base)
  local want = math.min(redis.call('ZCARD', base .. 'q'), 64)
  local have = redis.call('LLEN', base .. 'wake')
  if have < want then
    local tokens = {}
    for i = 1, want - have do tokens[i] = '1' end
    redis.call('RPUSH', base .. 'wake', unpack(tokens))
  end
end

-- Index a task under its workflow (for get_workflow_results).
local function index_workflow(base, id, workflow_id)
  if workflow_id ~= '' then
    redis.call('SADD', base .. 'wft:' .. workflow_id, id)
    redis.call('SADD', base .. 'wftk', workflow_id)
  end
end

-- The listing index (list_tasks). Each record is a member "<listing key: 16 hex digits><id>" of sorted
-- sets whose scores are all 0, so members sort by bytes (BYLEX): listing key, then id in code-point
-- order (UTF-8 keeps it). "ls" holds every record, "ls:<set>" those of one status (one set, "active",
-- for pending and processing: a claim changes nothing in the index; list_tasks tells them apart by
-- "_ls" and lists processing ones from the claims; "acked" holds those acknowledge released, still
-- "processing" but claimed no more: "_ls" = "processing:acked"), "lf:<func>" those of one spec.func
-- ("lfk": which funcs have a set). "lm" HASH: id -> listing key .. func, fixed when append/schedule
-- stores the record. The record's "_ls" field holds its status as the index sees
-- it ('' for one no listing filters by), written by every script that changes the status. "lsv" says
-- the queue's records are all indexed (a store written before the index gets indexed on first listing).
local LISTED = {pending = 'active', processing = 'active', scheduled = 'scheduled', retrying = 'retrying',
  completed = 'completed', failed = 'failed', cancelled = 'cancelled', crashed = 'crashed',
  quarantined = 'quarantined', ['processing:acked'] = 'acked'}
local STATUS_SETS = {'active', 'scheduled', 'retrying', 'completed', 'failed', 'cancelled', 'crashed',
  'quarantined', 'acked'}

-- The status name the index files a stored status (a JSON string) under; '' for none.
local function listed_status(status_json)
  local name = status_json and string.match(status_json, '^"(%l+)"$')
  if name and LISTED[name] then return name end
  return ''
end

-- The index member and func of an indexed record; false when it is not indexed.
local function index_entry(base, id)
  local meta = redis.call('HGET', base .. 'lm', id)
  if not meta then return false end
  return string.sub(meta, 1, 16) .. id, string.sub(meta, 17)
end

-- File the records just stored (append/schedule) in the index: ids, their listing keys and funcs, one
-- status for all. One command per set for the whole call. An id given twice keeps its last entry.
local function list_records(base, ids, listing_keys, funcs, status)
  local meta, members, by_func, seen = {}, {}, {}, {}
  for i = #ids, 1, -1 do
    local id = ids[i]
    if not seen[id] then
      seen[id] = true
      local member = listing_keys[i] .. id
      meta[#meta + 1] = id
      meta[#meta + 1] = listing_keys[i] .. funcs[i]
      members[#members + 1] = 0
      members[#members + 1] = member
      if funcs[i] ~= '' then
        local group = by_func[funcs[i]]
        if not group then group = {}; by_func[funcs[i]] = group end
        group[#group + 1] = 0
        group[#group + 1] = member
      end
    end
  end
  if #ids == 0 then return end
  redis.call('HSET', base .. 'lm', unpack(meta))
  redis.call('ZADD', base .. 'ls', unpack(members))
  if status ~= '' then redis.call('ZADD', base .. 'ls:' .. LISTED[status], unpack(members)) end
  for func, group in pairs(by_func) do
    redis.call('ZADD', base .. 'lf:' .. func, unpack(group))
    redis.call('SADD', base .. 'lfk', func)
  end
end

-- Move an indexed record from the set of status `old` to that of `new` (names; '' for none) and, when
-- `func` is given (a new body was stored), from its old func set to that of `func`. The caller writes
-- "_ls" itself, together with the other fields it changes.
local function relist(base, id, old, new, func)
  old, new = LISTED[old] or '', LISTED[new] or ''
  if old == new and not func then return end
  local meta = redis.call('HGET', base .. 'lm', id)
  if not meta then return end
  local member = string.sub(meta, 1, 16) .. id
  if old ~= new then
    if old ~= '' then redis.call('ZREM', base .. 'ls:' .. old, member) end
    if new ~= '' then redis.call('ZADD', base .. 'ls:' .. new, 0, member) end
  end
  local was = string.sub(meta, 17)
  if func and func ~= was then
    if was ~= '' then
      redis.call('ZREM', base .. 'lf:' .. was, member)
      if redis.call('EXISTS', base .. 'lf:' .. was) == 0 then redis.call('SREM', base .. 'lfk', was) end
    end
    if func ~= '' then
      redis.call('ZADD', base .. 'lf:' .. func, 0, member)
      redis.call('SADD', base .. 'lfk', func)
    end
    redis.call('HSET', base .. 'lm', id, string.sub(meta, 1, 16) .. func)
  end
end

-- Take a record out of the index (deleted, expired, or stored again under a new listing key). status:
-- its "_ls", or false when unknown (the record is gone): then every status set is cleaned.
local function unlist(base, id, status)
  local member, func = index_entry(base, id)
  if not member then return end
  redis.call('HDEL', base .. 'lm', id)
  redis.call('ZREM', base .. 'ls', member)
  if status then
    if status ~= '' then redis.call('ZREM', base .. 'ls:' .. LISTED[status], member) end
  else
    for _, name in ipairs(STATUS_SETS) do redis.call('ZREM', base .. 'ls:' .. name, member) end
  end
  if func ~= '' then
    local fkey = base .. 'lf:' .. func
    redis.call('ZREM', fkey, member)
    if redis.call('EXISTS', fkey) == 0 then redis.call('SREM', base .. 'lfk', func) end
  end
end

-- A queue that has no record yet has nothing to index later: append/schedule say so before storing.
local function mark_indexed_if_new(base, ids_key)
  if redis.call('SCARD', ids_key) == 0 then redis.call('SET', base .. 'lsv', '1') end
end

-- Forget finished records whose retention has passed (their hash already expired on its own). A stale
-- entry whose record has no TTL belongs to an id that was stored again since: only the entry goes.
local function purge(base, nowms, budget)
  for _, bucket in ipairs(FINISHED_BUCKETS) do
    local zkey = base .. 'fin:' .. bucket
    local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', nowms, 'LIMIT', 0, budget)
    for _, id in ipairs(ids) do
      local tkey = base .. 't:' .. id
      if redis.call('PTTL', tkey) ~= -1 then
        redis.call('UNLINK', tkey)
        redis.call('SREM', base .. 'ids', id)
        unlist(base, id, LISTED[bucket] and bucket)
      end
      redis.call('ZREM', zkey, id)
    end
  end
end

-- The record as ONE JSON text: the stored body with the backend's fields appended before its closing
-- brace. JSON readers (Python's json among them) keep the last of duplicate keys, so the appended
-- fields override the body's; the body itself is passed through byte for byte. One bulk string per
-- record keeps replies small and parsing cheap. False when the record does not exist.
local function record_json(tkey)
  local flat = redis.call('HGETALL', tkey)
  if #flat == 0 then return false end
  local body = '{}'
  local extra = {}
  for i = 1, #flat, 2 do
    local name = flat[i]
    if name == 'r' then
      body = flat[i + 1]
    elseif string.sub(name, 1, 1) ~= '_' then
      extra[#extra + 1] = '"' .. name .. '":' .. flat[i + 1]
    end
  end
  if #extra == 0 then return body end
  local head = string.sub(body, 1, -2)
  if head ~= '{' then head = head .. ',' end
  return head .. table.concat(extra, ',') .. '}'
end

-- Store a fresh record body with its status (drops the old overlay and TTL; `existed` says whether
-- there is anything to drop). "_rc" is how long the record is kept if it gets cancelled (ms, -1 for
-- ever): the client works it out from the record's config, so cancel never has to decode the body.
-- status is a JSON string, or false to leave the body's own.
-- listed is the record's status as list_tasks filters by it ("_ls", see the listing index below).
local function write_record(tkey, existed, body, deliveries, cancel_retention, status, listed)
  if existed then redis.call('DEL', tkey) end
  if status then
    redis.call('HSET', tkey, 'r', body, 'deliveries', deliveries, '_rc', cancel_retention, 'status', status,
      '_ls', listed)
  else
    redis.call('HSET', tkey, 'r', body, 'deliveries', deliveries, '_rc', cancel_retention, '_ls', listed)
  end
end

-- Finish a record: file it under its status bucket with its expiry as score (+inf: kept for ever),
-- give the hash the same TTL, and tell get_results waiters.
local function finish(base, id, bucket, retention_ms, nowms)
  local tkey = base .. 't:' .. id
  redis.call('HSET', tkey, '_fin', '1')
  local score = '+inf'
  if retention_ms >= 0 then
    score = nowms + retention_ms
    redis.call('PEXPIRE', tkey, math.max(math.ceil(retention_ms), 1))
  end
  redis.call('ZADD', base .. 'fin:' .. bucket, score, id)
  redis.call('PUBLISH', base .. 'done', id)
end

