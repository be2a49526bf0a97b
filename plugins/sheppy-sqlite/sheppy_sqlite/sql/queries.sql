-- Named queries of the SQLite backend. Parameters are named (:queue, :now, ...). Times in columns are
-- Unix seconds (REAL); times inside the JSON records are ISO 8601 strings written by Python.
-- Rows of `:rows` parameters are JSON arrays [id, state, status, due_at, workflow_id, data, listed_at,
-- func]: the listing key and spec.func are written when append/schedule store a row, and never after.

-- name: insert_tasks_unique
-- Store new task rows in array order. An id that already exists is left alone, unless its record has
-- expired (TTL) and only awaits the purge: then it counts as absent and is replaced at the tail.
INSERT INTO tasks (queue, id, state, status, due_at, workflow_id, data, listed_at, func)
SELECT :queue, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
       json_extract(value, '$[6]'), json_extract(value, '$[7]')
FROM json_each(:rows) WHERE true ORDER BY key
ON CONFLICT (queue, id) DO UPDATE SET
    state = excluded.state, status = excluded.status, due_at = excluded.due_at, lease_until = NULL,
    claimed_by = NULL, redelivered = 0, expires_at = NULL, workflow_id = excluded.workflow_id,
    data = excluded.data, listed_at = excluded.listed_at, func = excluded.func,
    seq = (SELECT max(seq) + 1 FROM tasks)
WHERE tasks.expires_at IS NOT NULL AND tasks.expires_at <= :now
RETURNING id;

-- name: insert_task_unique
-- insert_tasks_unique for one row, without the JSON array (a single append or schedule).
INSERT INTO tasks (queue, id, state, status, due_at, workflow_id, data, listed_at, func)
VALUES (:queue, :id, :state, :status, :due_at, :workflow_id, :data, :listed_at, :func)
ON CONFLICT (queue, id) DO UPDATE SET
    state = excluded.state, status = excluded.status, due_at = excluded.due_at, lease_until = NULL,
    claimed_by = NULL, redelivered = 0, expires_at = NULL, workflow_id = excluded.workflow_id,
    data = excluded.data, listed_at = excluded.listed_at, func = excluded.func,
    seq = (SELECT max(seq) + 1 FROM tasks)
WHERE tasks.expires_at IS NOT NULL AND tasks.expires_at <= :now
RETURNING id;

-- name: replace_task
-- replace_tasks for one row.
REPLACE INTO tasks (queue, id, state, status, due_at, workflow_id, data, listed_at, func)
VALUES (:queue, :id, :state, :status, :due_at, :workflow_id, :data, :listed_at, :func)
RETURNING id;

-- name: replace_tasks
-- Store task rows in array order, replacing any row with the same id: REPLACE deletes the old row and
-- inserts a new one with a fresh `seq`, so the task is at the tail and has no other queue entry or claim.
REPLACE INTO tasks (queue, id, state, status, due_at, workflow_id, data, listed_at, func)
SELECT :queue, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
       json_extract(value, '$[6]'), json_extract(value, '$[7]')
FROM json_each(:rows) ORDER BY key
RETURNING id;

-- name: claim
-- Claim up to :limit tasks in one statement (atomic across connections: a write statement holds the
-- database's write lock from its first read). Expired leases first, then the queue head in `seq` order.
-- In SET, `state` still reads the old value, so `redelivered` records whether the lease had expired.
-- A row whose data is not a JSON object with its own id (robust.corrupt_record: `ok` is false, worked
-- out once per row by the inner SELECT) is set aside instead, its data untouched: state 'finished',
-- status 'quarantined', kept until :quarantine_expires. The caller stores its quarantine record.
UPDATE tasks SET (state, status, claimed_by, lease_until, redelivered, expires_at, data) = (
    SELECT CASE WHEN ok THEN 'claimed' ELSE 'finished' END,
           CASE WHEN ok THEN 'processing' ELSE 'quarantined' END,
           CASE WHEN ok THEN :worker END,
           CASE WHEN ok THEN :lease_until END,
           ok AND tasks.state = 'claimed',
           CASE WHEN ok THEN tasks.expires_at ELSE :quarantine_expires END,
           CASE WHEN ok THEN json_set(tasks.data, '$.status', 'processing', '$.claimed_by', :worker,
                                      '$.lease_expires_at', :lease_iso, '$.deliveries',
                                      coalesce(json_extract(tasks.data, '$.deliveries'), 0) + 1)
                ELSE tasks.data END
    FROM (SELECT CASE WHEN NOT json_valid(tasks.data) THEN 0
                      ELSE json_extract(tasks.data, '$.id') IS tasks.id END AS ok))
WHERE seq IN (
    SELECT seq FROM (
        SELECT 0 AS rank, seq FROM (
            SELECT seq FROM tasks WHERE queue = :queue AND state = 'claimed' AND lease_until <= :now
            ORDER BY lease_until LIMIT :limit)
        UNION ALL
        SELECT 1 AS rank, seq FROM (
            SELECT seq FROM tasks WHERE queue = :queue AND state = 'queued' ORDER BY seq LIMIT :limit)
    ) ORDER BY rank, seq LIMIT :limit
)
RETURNING seq, redelivered, data, id, state;

-- name: quarantine_task
-- Store the quarantine record (:data) of a row the claim set aside, or of one it claimed whose data
-- Python cannot read as a task: finished for good, out of the queue and claims.
-- A stand-in has no spec: `func` is cleared, so the func filter no longer finds it.
UPDATE tasks SET state = 'finished', status = 'quarantined', due_at = NULL, lease_until = NULL,
    claimed_by = NULL, redelivered = 0, expires_at = :expires_at, data = :data, func = NULL
WHERE seq = :seq AND queue = :queue AND id = :id
  AND (status = 'quarantined' OR (state = 'claimed' AND claimed_by = :worker));

-- name: unclaim
-- Undo a claim whose caller was cancelled before it could see the result: the tasks go back to the
-- head of the claimable set (queued ones keep their `seq`), and the delivery is not counted.
UPDATE tasks SET
    state = CASE WHEN redelivered THEN 'claimed' ELSE 'queued' END,
    status = CASE WHEN redelivered THEN 'processing' ELSE 'pending' END,
    lease_until = CASE WHEN redelivered THEN 0 ELSE NULL END,
    claimed_by = CASE WHEN redelivered THEN claimed_by ELSE NULL END,
    redelivered = 0,
    data = CASE WHEN redelivered
        THEN json_set(data, '$.lease_expires_at', :epoch_iso,
                      '$.deliveries', json_extract(data, '$.deliveries') - 1)
        ELSE json_set(json_remove(data, '$.claimed_by', '$.lease_expires_at'), '$.status', 'pending',
                      '$.deliveries', json_extract(data, '$.deliveries') - 1)
    END
WHERE queue = :queue AND state = 'claimed' AND claimed_by = :worker
  AND seq IN (SELECT value FROM json_each(:seqs));

-- name: next_lease_expiry
-- When the earliest live claim of the queue expires (a blocked pop must look again then).
SELECT min(lease_until) FROM tasks WHERE queue = :queue AND state = 'claimed';

-- name: acknowledge
-- Release a claim (live or expired) without re-queueing: the task is then nowhere.
-- Data that is not a task record (robust.corrupt_record) is left as it is, here and in heartbeat.
UPDATE tasks SET state = 'released', claimed_by = NULL, lease_until = NULL, redelivered = 0,
    data = CASE WHEN NOT json_valid(data) THEN data WHEN json_extract(data, '$.id') IS NOT id THEN data
                ELSE json_remove(data, '$.claimed_by', '$.lease_expires_at') END
WHERE queue = :queue AND id = :id AND state = 'claimed'
RETURNING id;

-- name: heartbeat
-- Extend the leases still held by :worker, even just-expired ones nobody reclaimed.
UPDATE tasks SET lease_until = :lease_until,
    data = CASE WHEN NOT json_valid(data) THEN data WHEN json_extract(data, '$.id') IS NOT id THEN data
                ELSE json_set(data, '$.lease_expires_at', :lease_iso) END
WHERE queue = :queue AND state = 'claimed' AND claimed_by = :worker
  AND id IN (SELECT value FROM json_each(:ids))
RETURNING id;

-- name: store_result
-- Write a record back after an attempt, keeping its `seq` (finished or scheduled). `seq` is the rowid:
-- a statement that may assign it rewrites every index entry of the row, so only store_result_to_tail
-- does. A record that expired but was not purged yet counts as unknown.
UPDATE tasks SET
    state = :state, status = :status, due_at = :due_at, lease_until = NULL, claimed_by = NULL,
    redelivered = 0, expires_at = :expires_at, workflow_id = :workflow_id, data = :data
WHERE queue = :queue AND id = :id AND (expires_at IS NULL OR expires_at > :now)
RETURNING id;

-- name: store_result_to_tail
-- store_result for a re-queued task: it moves behind every other one.
UPDATE tasks SET
    state = :state, status = :status, due_at = :due_at, lease_until = NULL, claimed_by = NULL,
    redelivered = 0, expires_at = :expires_at, workflow_id = :workflow_id, data = :data,
    seq = (SELECT max(seq) + 1 FROM tasks)
WHERE queue = :queue AND id = :id AND (expires_at IS NULL OR expires_at > :now)
RETURNING id;

-- name: get_results
SELECT id, data FROM tasks
WHERE queue = :queue AND state = 'finished' AND id IN (SELECT value FROM json_each(:ids))
  AND (expires_at IS NULL OR expires_at > :now);

-- name: get_tasks
SELECT id, data FROM tasks
WHERE queue = :queue AND id IN (SELECT value FROM json_each(:ids))
  AND (expires_at IS NULL OR expires_at > :now);

-- name: get_all_tasks
SELECT id, data FROM tasks WHERE queue = :queue AND (expires_at IS NULL OR expires_at > :now);

-- name: get_pending
SELECT id, data FROM tasks WHERE queue = :queue AND state = 'queued' ORDER BY seq LIMIT :count;

-- name: get_scheduled
SELECT id, data FROM tasks WHERE queue = :queue AND state = 'scheduled' ORDER BY due_at, seq;

-- name: next_scheduled_at
-- The earliest scheduled record (its own time field is exact; the REAL column is for ordering).
SELECT id, data, due_at FROM tasks WHERE queue = :queue AND state = 'scheduled' ORDER BY due_at, seq LIMIT 1;

-- name: size
SELECT count(*) FROM tasks WHERE queue = :queue AND state = 'queued';

-- name: stats
-- Counts by place and status; `released` (acknowledged) rows are in no place and not counted.
SELECT state, status, count(*) FROM tasks
WHERE queue = :queue AND (expires_at IS NULL OR expires_at > :now)
GROUP BY state, status;

-- name: list_queues
SELECT name, (SELECT count(*) FROM tasks WHERE queue = queues.name AND state = 'queued')
FROM queues ORDER BY name;

-- name: pop_scheduled
-- Move every due scheduled task to the tail of the queue, in due order, in one statement: the write lock
-- makes the move happen once even when several workers run it at the same moment. Data that is not a
-- task record (robust.corrupt_record) is moved untouched; the claim sets it aside.
UPDATE tasks SET
    seq = tail.top + due.position, state = 'queued', status = 'pending', due_at = NULL,
    data = CASE WHEN NOT json_valid(data) THEN data WHEN json_extract(data, '$.id') IS NOT tasks.id
                THEN data ELSE json_set(data, '$.status', 'pending') END
FROM (SELECT seq AS old_seq, row_number() OVER (ORDER BY due_at, seq) AS position
      FROM tasks WHERE queue = :queue AND state = 'scheduled' AND due_at <= :now) AS due,
     (SELECT max(seq) AS top FROM tasks) AS tail
WHERE tasks.seq = due.old_seq
RETURNING seq, id, data;

-- name: waiting_task
-- A task cancel may still take back: queued (unclaimed) or scheduled.
SELECT data FROM tasks WHERE queue = :queue AND id = :id AND state IN ('queued', 'scheduled');

-- name: finish_task
-- Store a cancelled record as finished.
UPDATE tasks SET state = 'finished', status = :status, due_at = NULL, lease_until = NULL,
    claimed_by = NULL, redelivered = 0, expires_at = :expires_at, data = :data
WHERE queue = :queue AND id = :id;

-- name: delete_finished
-- Also a row whose data is not a task record (robust.corrupt_record): every read shows it finished.
DELETE FROM tasks WHERE queue = :queue AND id = :id
  AND CASE WHEN state = 'finished' OR NOT json_valid(data) THEN 1
           ELSE json_extract(data, '$.id') IS NOT id END
  AND (expires_at IS NULL OR expires_at > :now)
RETURNING id;

-- name: task_state
SELECT state, status FROM tasks
WHERE queue = :queue AND id = :id AND (expires_at IS NULL OR expires_at > :now);

-- name: purge_expired
-- Drop finished records whose retention has passed (run periodically, not on every call).
DELETE FROM tasks WHERE expires_at <= :now;

-- name: clear_count
SELECT (SELECT count(*) FROM tasks WHERE queue = :queue AND (expires_at IS NULL OR expires_at > :now))
     + (SELECT count(*) FROM crons WHERE queue = :queue);

-- name: clear_tasks
DELETE FROM tasks WHERE queue = :queue;

-- name: clear_crons
DELETE FROM crons WHERE queue = :queue;

-- name: clear_grants
DELETE FROM rate_limit_grants WHERE queue = :queue;

-- name: clear_windows
DELETE FROM rate_limit_windows WHERE queue = :queue;

-- name: clear_window_starts
DELETE FROM rate_limit_window_starts WHERE queue = :queue;

-- name: clear_workflows
DELETE FROM workflows WHERE queue = :queue;

-- name: clear_workflow_pending
DELETE FROM workflow_pending WHERE queue = :queue;

-- name: clear_queue
DELETE FROM queues WHERE name = :queue;

-- name: add_cron
INSERT INTO crons (queue, id, data) VALUES (:queue, :id, :data) ON CONFLICT DO NOTHING RETURNING id;

-- name: delete_cron
DELETE FROM crons WHERE queue = :queue AND id = :id RETURNING id;

-- name: delete_cron_occurrences
-- The waiting occurrences of cron :id (scheduled, never started), deleted with it in one transaction.
-- (json_valid first: a corrupt row must not fail the delete; it is not an occurrence.)
DELETE FROM tasks WHERE queue = :queue AND state = 'scheduled' AND status = 'scheduled'
  AND CASE WHEN json_valid(data) THEN json_extract(data, '$.cron_id') = :id ELSE 0 END;

-- name: get_crons
SELECT data FROM crons WHERE queue = :queue ORDER BY id;

-- name: rate_starts
-- The starts a sliding-window key made or reserved (its budget, see sheppy_core.backend._rate_limits).
SELECT task_id, granted_at FROM rate_limit_grants WHERE queue = :queue AND key = :key;

-- name: rate_start_delete
DELETE FROM rate_limit_grants WHERE queue = :queue AND key = :key AND task_id = :task_id;

-- name: rate_start_put
INSERT OR REPLACE INTO rate_limit_grants (queue, key, task_id, granted_at)
VALUES (:queue, :key, :task_id, :at);

-- name: window_get
SELECT window_start FROM rate_limit_windows WHERE queue = :queue AND key = :key;

-- name: window_put
INSERT OR REPLACE INTO rate_limit_windows (queue, key, window_start) VALUES (:queue, :key, :start);

-- name: window_delete
DELETE FROM rate_limit_windows WHERE queue = :queue AND key = :key;

-- name: window_starts
SELECT task_id, started_at FROM rate_limit_window_starts WHERE queue = :queue AND key = :key;

-- name: window_start_delete
DELETE FROM rate_limit_window_starts WHERE queue = :queue AND key = :key AND task_id = :task_id;

-- name: window_start_put
INSERT OR REPLACE INTO rate_limit_window_starts (queue, key, task_id, started_at)
VALUES (:queue, :key, :task_id, :at);

-- name: workflow_version
SELECT version FROM workflows WHERE queue = :queue AND id = :id;

-- name: workflow_upsert
INSERT INTO workflows (queue, id, version, finished, data) VALUES (:queue, :id, :version, :finished, :data)
ON CONFLICT (queue, id) DO UPDATE SET
    version = excluded.version, finished = excluded.finished, data = excluded.data;

-- name: workflow_pending_clear
DELETE FROM workflow_pending WHERE queue = :queue AND workflow_id = :id;

-- name: workflow_pending_fill
INSERT OR IGNORE INTO workflow_pending (queue, workflow_id, task_id)
SELECT :queue, :id, value FROM json_each(:task_ids);

-- name: get_workflows
SELECT id, data FROM workflows WHERE queue = :queue AND id IN (SELECT value FROM json_each(:ids));

-- name: get_all_workflows
SELECT data FROM workflows WHERE queue = :queue ORDER BY id;

-- name: get_pending_workflows
SELECT data FROM workflows WHERE queue = :queue AND NOT finished ORDER BY id;

-- name: delete_workflow
DELETE FROM workflows WHERE queue = :queue AND id = :id RETURNING id;

-- name: workflow_task_done
DELETE FROM workflow_pending WHERE queue = :queue AND workflow_id = :id AND task_id = :task_id
RETURNING task_id;

-- name: workflow_pending_count
SELECT count(*) FROM workflow_pending WHERE queue = :queue AND workflow_id = :id;

-- name: get_workflow_results
SELECT id, data FROM tasks
WHERE queue = :queue AND workflow_id = :workflow_id AND state = 'finished'
  AND (expires_at IS NULL OR expires_at > :now);

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL NOT NULL);

-- name: schema_version
SELECT coalesce(max(version), 0) FROM schema_version;

-- name: record_migration
INSERT INTO schema_version (version, applied_at) VALUES (:version, :now);

-- name: list_tasks
-- One page of list_tasks (capability TASK_PAGES), newest first: the rows strictly before :upper_key/
-- :upper_id (the cursor, or `until` with the empty id) and from :since on; :limit is the page size + 1.
-- With no filter, the status index is read backwards once per status the column can hold (the nine
-- listable ones, and '' that store_result writes for any other) and the ordered streams are merged
-- (MERGE (UNION ALL)): about :limit + 10 rows are read, and no index of its own costs every insert one
-- more page write. (A row written behind the backend's back with another status value is not listed
-- without a filter.) The list_tasks_by_* variants read the index of their filter.
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'pending' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'processing' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'scheduled' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'retrying' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'completed' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'failed' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'cancelled' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'crashed' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = 'quarantined' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
UNION ALL
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = '' AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
ORDER BY listed_at DESC, id DESC LIMIT :limit;

-- name: list_tasks_by_status
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_status_listing
WHERE queue = :queue AND status = :status AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (expires_at IS NULL OR expires_at > :now)
ORDER BY listed_at DESC, id DESC LIMIT :limit;

-- name: list_tasks_by_func
-- Also with a status filter: then the status is checked on each row of the func's index.
SELECT listed_at, id, data FROM tasks INDEXED BY tasks_by_func_listing
WHERE queue = :queue AND func = :func AND (listed_at, id) < (:upper_key, :upper_id)
  AND listed_at >= :since AND (:status IS NULL OR status = :status)
  AND (expires_at IS NULL OR expires_at > :now)
ORDER BY listed_at DESC, id DESC LIMIT :limit;

-- name: count_by_status
-- get_stats' counts, each read up to :bound (cap + 1) rows: places through tasks_by_state, finished
-- statuses through tasks_by_status_listing.
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE queue = :queue AND state = 'queued'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound)),
    (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE queue = :queue AND state = 'claimed'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound)),
    (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE queue = :queue AND state = 'scheduled'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound)),
    (SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_by_status_listing
        WHERE queue = :queue AND status = 'completed' AND state = 'finished'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound)),
    (SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_by_status_listing
        WHERE queue = :queue AND status = 'failed' AND state = 'finished'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound)),
    (SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_by_status_listing
        WHERE queue = :queue AND status = 'cancelled' AND state = 'finished'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound)),
    (SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_by_status_listing
        WHERE queue = :queue AND status = 'crashed' AND state = 'finished'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound)),
    (SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_by_status_listing
        WHERE queue = :queue AND status = 'quarantined' AND state = 'finished'
        AND (expires_at IS NULL OR expires_at > :now) LIMIT :bound));

-- name: oldest_ready
-- The head of the queue (the row pop claims next among the queued ones) and the three times that say
-- when it became ready; NULL times when its data is not a task record of its id.
SELECT CASE WHEN ok THEN json_extract(data, '$.created_at') END,
       CASE WHEN ok THEN json_extract(data, '$.scheduled_at') END,
       CASE WHEN ok THEN json_extract(data, '$.next_retry_at') END, ok
FROM (SELECT data, CASE WHEN NOT json_valid(data) THEN 0 WHEN json_type(data) IS NOT 'object' THEN 0
                        ELSE json_extract(data, '$.id') IS id END AS ok
      FROM tasks WHERE queue = :queue AND state = 'queued' ORDER BY seq LIMIT 1);

-- name: register_worker
-- Store or replace a worker's record, alive for :ttl seconds from now on SQLite's clock.
INSERT INTO workers (id, expires_at, data)
VALUES (:id, (julianday('now') - 2440587.5) * 86400.0 + :ttl, :data)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, data = excluded.data;

-- name: purge_workers
-- Workers whose ttl passed (killed without unregistering): dropped by the next register_worker.
DELETE FROM workers WHERE expires_at <= (julianday('now') - 2440587.5) * 86400.0;

-- name: unregister_worker
-- Also drops an expired record, but only an unexpired one counts as there.
DELETE FROM workers WHERE id = :id
RETURNING expires_at > (julianday('now') - 2440587.5) * 86400.0;

-- name: list_workers
SELECT data FROM workers WHERE expires_at > (julianday('now') - 2440587.5) * 86400.0 ORDER BY id;
