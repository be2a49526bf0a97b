-- sheppy-postgres schema, version 5: the operator's listing (list_tasks) and the worker registry.
--
-- list_tasks pages a queue newest first by listing key (the record's created_at, microseconds since
-- the epoch, fixed when append/schedule stores it), then by id in code-point order: `listed_at` holds
-- the key, `func` the record's spec.func (stored like a name, see _records.encode_name), and three
-- partial indexes serve the order alone, by status and by func, so a page reads about `limit` rows
-- however many records the table keeps. The indexes leave claimed rows out: a claim or a heartbeat
-- writes no entry in them (an append, a finished result or a retry writes one in each).
--
-- Existing rows get both columns from their stored JSON. Rows whose JSON (or created_at) cannot be read
-- are listed by the time of this migration, as a new row without a readable created_at is listed by the
-- time it is stored. The bulk UPDATE parses every row; only if some row cannot be parsed does it start
-- again row by row, each row in a subtransaction. A worker of the previous release still running during
-- a rolling upgrade inserts rows without the columns: the default lists them by the time they were
-- stored, and they are not found by func (their func is NULL) unless appended again.
--
-- The UPDATE rewrites every row and the index builds lock the table against writes until this migration
-- commits: on a large table, migrate (sheppy_postgres.migrate) before starting the new workers.

ALTER TABLE tasks ADD COLUMN listed_at bigint, ADD COLUMN func text;

-- A naive created_at is UTC (from_iso), whatever the session's TimeZone; ends with this transaction.
SET LOCAL TIME ZONE 'UTC';

-- spec.func as _backend.py stores it in tasks.func (NULL when not a string): encode_name, i.e. the
-- backslash escaped (JSON text yields no NUL: ->> raises on \u0000) and names over 1000 bytes keyed by
-- their SHA-256. Raises on JSON it cannot read.
CREATE FUNCTION listing_func_of(p_record json) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE
        WHEN json_typeof(p_record) <> 'object' OR json_typeof(p_record -> 'spec') <> 'object'
          OR json_typeof(p_record -> 'spec' -> 'func') <> 'string' THEN NULL
        WHEN octet_length(replace(p_record -> 'spec' ->> 'func', E'\\', E'\\\\')) > 1000
            THEN E'\\#' || encode(sha256(convert_to(
                replace(p_record -> 'spec' ->> 'func', E'\\', E'\\\\'), 'UTF8')), 'hex')
        ELSE replace(p_record -> 'spec' ->> 'func', E'\\', E'\\\\')
    END
$fn$;

-- The listing key of a record: its created_at in microseconds since the epoch, else p_fallback.
-- Raises on a created_at that is not a time.
CREATE FUNCTION listing_key_of(p_record json, p_fallback bigint) RETURNS bigint
LANGUAGE sql STABLE AS $fn$
    SELECT CASE
        WHEN json_typeof(p_record) <> 'object' OR json_typeof(p_record -> 'created_at') <> 'string'
            THEN p_fallback
        ELSE (extract(epoch FROM (p_record ->> 'created_at')::timestamptz) * 1000000)::bigint
    END
$fn$;

DO $fill$
DECLARE
    v_now  bigint := (extract(epoch FROM statement_timestamp()) * 1000000)::bigint;
    v_row  record;
    v_json json;
BEGIN
    BEGIN
        UPDATE tasks SET listed_at = listing_key_of(data::json, v_now), func = listing_func_of(data::json)
        WHERE data ~ '^\s*\{';
    EXCEPTION WHEN others THEN
        -- Some row is not JSON, or its created_at not a time: row by row, keeping what can be read.
        FOR v_row IN SELECT queue, id, data FROM tasks WHERE data ~ '^\s*\{' LOOP
            BEGIN
                v_json := v_row.data::json;
            EXCEPTION WHEN others THEN
                CONTINUE;
            END;
            BEGIN
                UPDATE tasks SET listed_at = listing_key_of(v_json, v_now)
                WHERE queue = v_row.queue AND id = v_row.id;
            EXCEPTION WHEN others THEN
                NULL;
            END;
            BEGIN
                UPDATE tasks SET func = listing_func_of(v_json) WHERE queue = v_row.queue AND id = v_row.id;
            EXCEPTION WHEN others THEN
                NULL;
            END;
        END LOOP;
    END;
    UPDATE tasks SET listed_at = v_now WHERE listed_at IS NULL;
END
$fill$;

DROP FUNCTION listing_key_of(json, bigint);
DROP FUNCTION listing_func_of(json);

ALTER TABLE tasks
    ALTER COLUMN listed_at SET DEFAULT (extract(epoch FROM statement_timestamp()) * 1000000)::bigint,
    ALTER COLUMN listed_at SET NOT NULL;

-- Listing order is (listed_at, id) descending: each index is scanned backwards. Ids compare in
-- code-point order (COLLATE "C"), whatever the database's collation. Claimed rows are left out of all
-- three, so a claim (and a heartbeat) adds no index entries: list_tasks merges them in from
-- tasks_claimable_expired, as many as there are tasks in flight.
CREATE INDEX tasks_listing ON tasks (queue, listed_at, id COLLATE "C") WHERE state <> 'claimed';
CREATE INDEX tasks_listing_status ON tasks (queue, status, listed_at, id COLLATE "C")
    WHERE state <> 'claimed';
CREATE INDEX tasks_listing_func ON tasks (queue, func, listed_at, id COLLATE "C")
    WHERE state <> 'claimed' AND func IS NOT NULL;

-- list_tasks filtered by status and func at once. Either index can serve it, and which one reads fewer
-- rows depends on the values (a rare status of a common func, or the other way round): EXECUTE plans
-- the query for the values of each call, where asyncpg's prepared statement would settle on one
-- generic plan for all. The query is the one of list_tasks_by_status (queries.sql) with func = $7 added.
CREATE FUNCTION list_tasks_by_status_func(
    p_queue text, p_since bigint, p_key bigint, p_id text, p_limit integer, p_status text, p_func text
) RETURNS TABLE (id text, status text, data text, claimed_by text, lease_expires_at timestamptz,
                 deliveries integer, listed_at bigint)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $fn$
BEGIN
    RETURN QUERY EXECUTE $q$
        SELECT * FROM (
            (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM tasks
             WHERE queue = $1 AND state <> 'claimed' AND status = $6 AND func = $7
               AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
               AND (expires_at IS NULL OR expires_at > now())
             ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
            UNION ALL
            (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM tasks
             WHERE queue = $1 AND state = 'claimed' AND status = $6 AND func = $7
               AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
               AND (expires_at IS NULL OR expires_at > now())
             ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
        ) AS listed
        ORDER BY listed_at DESC, id COLLATE "C" DESC
        LIMIT $5
    $q$ USING p_queue, p_since, p_key, p_id, p_limit, p_status, p_func;
END
$fn$;

-- One row per running worker (register_worker), whatever queues it serves; a row whose expires_at has
-- passed is a worker gone without unregistering: reads ignore it, list_workers and the purge delete it.
-- Times are the server's clock, so workers on hosts whose clocks differ expire alike.
CREATE TABLE workers (
    id         text        PRIMARY KEY,
    data       text        NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX workers_expiry ON workers (expires_at);
