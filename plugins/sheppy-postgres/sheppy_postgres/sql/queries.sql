-- Named queries of the sheppy-postgres backend.
--
-- Each block starts with `-- name: <name>` and a one-line description. `{schema}` is replaced by the
-- quoted schema name when a backend is built; every value (queue names, task ids, JSON, times) is a
-- bind parameter, never part of the text. Queries that return task rows return the same columns
-- (id, status, data, claimed_by, lease_expires_at, deliveries), which the backend turns into records.
-- "Live" rows are those whose expires_at has not passed: expired finished records are invisible to
-- every read even before the purge deletes them.

-- name: schema_version
-- The highest applied migration version (or 0) and the server's version string.
SELECT coalesce(max(version), 0) AS version, current_setting('server_version') AS server
FROM {schema}.schema_version

-- name: append
-- Store records of queue $1 (named $9; ids $2, JSON $3, deliveries $4, workflow ids $5, listing keys $10, funcs $11, in list order) and queue them; $6: replace existing ones; notify $7 with $8 when any was queued. The ids stored, or NULL when all were (the usual case: no ids travel back).
WITH registered AS (
    INSERT INTO {schema}.queues (queue, name) VALUES ($1, $9) ON CONFLICT DO NOTHING
), inserted AS (
    INSERT INTO {schema}.tasks AS t (queue, id, state, status, data, deliveries, workflow_id, listed_at, func)
    SELECT $1, i.id, 'queued', 'pending', i.data, i.deliveries, i.workflow_id, i.listed_at, i.func
    FROM unnest($2::text[], $3::text[], $4::integer[], $5::text[], $10::bigint[], $11::text[])
         WITH ORDINALITY AS i (id, data, deliveries, workflow_id, listed_at, func, ord)
    ORDER BY i.ord
    ON CONFLICT (queue, id) DO UPDATE
        SET seq = DEFAULT, state = 'queued', status = 'pending', data = EXCLUDED.data, due_at = NULL,
            claimed_by = NULL, lease_expires_at = NULL, deliveries = EXCLUDED.deliveries,
            expires_at = NULL, workflow_id = EXCLUDED.workflow_id, listed_at = EXCLUDED.listed_at,
            func = EXCLUDED.func
        WHERE $6 OR (t.expires_at IS NOT NULL AND t.expires_at <= now())
    RETURNING t.id
)
SELECT CASE WHEN (SELECT count(*) FROM inserted) = cardinality($2::text[]) THEN NULL
            ELSE array(SELECT id FROM inserted) END AS ids,
       (SELECT pg_notify($7, $8) WHERE EXISTS (SELECT 1 FROM inserted))::text AS notified

-- name: schedule
-- Store record $2 (JSON $3, due $4, deliveries $5, workflow id $6, listing key $9, func $10) of queue $1 (named $8) as scheduled; $7: replace an existing one.
WITH registered AS (
    INSERT INTO {schema}.queues (queue, name) VALUES ($1, $8) ON CONFLICT DO NOTHING
), inserted AS (
    INSERT INTO {schema}.tasks AS t (queue, id, state, status, data, due_at, deliveries, workflow_id, listed_at, func)
    VALUES ($1, $2, 'scheduled', 'scheduled', $3, $4, $5, $6, $9, $10)
    ON CONFLICT (queue, id) DO UPDATE
        SET seq = DEFAULT, state = 'scheduled', status = 'scheduled', data = EXCLUDED.data,
            due_at = EXCLUDED.due_at, claimed_by = NULL, lease_expires_at = NULL,
            deliveries = EXCLUDED.deliveries, expires_at = NULL, workflow_id = EXCLUDED.workflow_id,
            listed_at = EXCLUDED.listed_at, func = EXCLUDED.func
        WHERE $7 OR (t.expires_at IS NOT NULL AND t.expires_at <= now())
    RETURNING t.id
)
SELECT count(*) FROM inserted

-- name: claim_tasks
-- Claim up to $2 tasks of queue $1 for worker $3 and $4 seconds: expired leases first, then the queue head in FIFO order; SKIP LOCKED makes concurrent claimers take disjoint rows. The UPDATE finds the picked rows again by key, not by ctid: a row updated by another transaction between this statement's snapshot and its lock is locked in its newest version, which a ctid from the snapshot would miss.
WITH expired AS (
    SELECT id, 0 AS priority FROM {schema}.tasks
    WHERE queue = $1 AND state = 'claimed' AND lease_expires_at <= now()
    ORDER BY lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), fresh AS (
    SELECT id, 1 AS priority FROM {schema}.tasks
    WHERE queue = $1 AND state = 'queued'
    ORDER BY seq
    LIMIT $2 - (SELECT count(*) FROM expired)
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id, priority FROM expired UNION ALL SELECT id, priority FROM fresh
)
UPDATE {schema}.tasks AS t
SET state = 'claimed', status = 'processing', claimed_by = $3,
    lease_expires_at = now() + make_interval(secs => $4), deliveries = coalesce(t.deliveries, 0) + 1
FROM picked
WHERE t.queue = $1 AND t.id = picked.id
RETURNING t.id, t.status, t.data, t.claimed_by, t.lease_expires_at, t.deliveries, picked.priority, t.seq

-- name: quarantine_claimed
-- Set aside claims of queue $1 that pop could not read as tasks (ids $2, held by $3 at deliveries $4): finished, status 'quarantined', data $5 (the stand-in keeping the stored text), kept $6 seconds or for ever if NULL; the ids set aside; notify $7 with $8 if any was and anyone waits for results of the queue.
WITH stored AS (
    UPDATE {schema}.tasks AS t
    SET state = 'finished', status = 'quarantined', data = i.data, due_at = NULL, claimed_by = NULL,
        lease_expires_at = NULL, expires_at = now() + make_interval(secs => i.keep)
    FROM unnest($2::text[], $4::integer[], $5::text[], $6::float8[]) AS i (id, deliveries, data, keep)
    WHERE t.queue = $1 AND t.id = i.id AND t.state = 'claimed' AND t.claimed_by = $3
      AND t.deliveries = i.deliveries
    RETURNING t.id
)
SELECT array(SELECT id FROM stored) AS ids,
       (SELECT pg_notify($7, $8)
        WHERE EXISTS (SELECT 1 FROM stored)
          AND EXISTS (SELECT 1 FROM {schema}.result_waiters WHERE queue = $1))::text AS notified

-- name: release_tasks
-- Give back claims of queue $1 (ids $2, held by $3) that a cancelled pop made but never handed out.
UPDATE {schema}.tasks
SET state = 'queued', status = 'pending', claimed_by = NULL, lease_expires_at = NULL,
    deliveries = nullif(deliveries - 1, 0)
WHERE queue = $1 AND id = ANY($2::text[]) AND state = 'claimed' AND claimed_by = $3

-- name: acknowledge
-- Release the claim on task $2 of queue $1 and drop it from the queue for good (its record keeps its status).
UPDATE {schema}.tasks SET state = 'acked', claimed_by = NULL, lease_expires_at = NULL
WHERE queue = $1 AND id = $2 AND state = 'claimed'
RETURNING id

-- name: heartbeat
-- Extend to now + $4 seconds the leases of queue $1 among ids $2 that worker $3 still holds.
UPDATE {schema}.tasks SET lease_expires_at = now() + make_interval(secs => $4)
WHERE queue = $1 AND id = ANY($2::text[]) AND state = 'claimed' AND claimed_by = $3
RETURNING id

-- name: store_finished
-- Store the finished record $2 of queue $1 (status $3, JSON $4, deliveries $5, workflow id $6, kept $7 seconds or for ever if NULL); notify $8 with $9 if anyone waits for results of the queue.
WITH stored AS (
    UPDATE {schema}.tasks
    SET state = 'finished', status = $3, data = $4, deliveries = $5, workflow_id = $6, due_at = NULL,
        claimed_by = NULL, lease_expires_at = NULL, expires_at = now() + make_interval(secs => $7)
    WHERE queue = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > now())
    RETURNING id
)
SELECT (SELECT count(*) FROM stored) AS stored,
       (SELECT pg_notify($8, $9)
        WHERE EXISTS (SELECT 1 FROM stored)
          AND EXISTS (SELECT 1 FROM {schema}.result_waiters WHERE queue = $1))::text AS notified

-- name: store_finished_many
-- Store finished records of queue $1 in one statement (distinct ids $2, statuses $3, JSON $4, deliveries $5, workflow ids $6, kept $7 seconds or for ever if NULL), each exactly as store_finished would; the ids stored; notify $8 with $9 if any was stored and anyone waits for results of the queue.
WITH stored AS (
    UPDATE {schema}.tasks AS t
    SET state = 'finished', status = i.status, data = i.data, deliveries = i.deliveries,
        workflow_id = i.workflow_id, due_at = NULL, claimed_by = NULL, lease_expires_at = NULL,
        expires_at = now() + make_interval(secs => i.keep)
    FROM unnest($2::text[], $3::text[], $4::text[], $5::integer[], $6::text[], $7::float8[])
         AS i (id, status, data, deliveries, workflow_id, keep)
    WHERE t.queue = $1 AND t.id = i.id AND (t.expires_at IS NULL OR t.expires_at > now())
    RETURNING t.id
)
SELECT array(SELECT id FROM stored) AS ids,
       (SELECT pg_notify($8, $9)
        WHERE EXISTS (SELECT 1 FROM stored)
          AND EXISTS (SELECT 1 FROM {schema}.result_waiters WHERE queue = $1))::text AS notified

-- name: store_requeued
-- Store record $2 of queue $1 (JSON $3, deliveries $4, workflow id $5) as pending at the tail of the queue, releasing its claim, and notify $6 with $7.
WITH stored AS (
    UPDATE {schema}.tasks
    SET state = 'queued', status = 'pending', seq = DEFAULT, data = $3, deliveries = $4,
        workflow_id = $5, due_at = NULL, claimed_by = NULL, lease_expires_at = NULL, expires_at = NULL
    WHERE queue = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > now())
    RETURNING id
)
SELECT (SELECT count(*) FROM stored) AS stored,
       (SELECT pg_notify($6, $7) WHERE EXISTS (SELECT 1 FROM stored))::text AS notified

-- name: store_rescheduled
-- Store record $2 of queue $1 (status $3, JSON $4, due $5, deliveries $6, workflow id $7) as scheduled, releasing its claim.
UPDATE {schema}.tasks
SET state = 'scheduled', status = $3, seq = DEFAULT, data = $4, due_at = $5, deliveries = $6,
    workflow_id = $7, claimed_by = NULL, lease_expires_at = NULL, expires_at = NULL
WHERE queue = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > now())
RETURNING id

-- name: get_results
-- The live finished records of queue $1 among ids $2.
SELECT id, status, data, claimed_by, lease_expires_at, deliveries FROM {schema}.tasks
WHERE queue = $1 AND id = ANY($2::text[]) AND state = 'finished'
  AND (expires_at IS NULL OR expires_at > now())

-- name: get_tasks
-- The live records of queue $1 among ids $2, in any state.
SELECT id, status, data, claimed_by, lease_expires_at, deliveries FROM {schema}.tasks
WHERE queue = $1 AND id = ANY($2::text[]) AND (expires_at IS NULL OR expires_at > now())

-- name: get_all_tasks
-- Every live record of queue $1.
SELECT id, status, data, claimed_by, lease_expires_at, deliveries FROM {schema}.tasks
WHERE queue = $1 AND (expires_at IS NULL OR expires_at > now())

-- name: get_pending
-- Up to $2 queued records of queue $1 from the head, in claim order.
SELECT id, status, data, claimed_by, lease_expires_at, deliveries FROM {schema}.tasks
WHERE queue = $1 AND state = 'queued'
ORDER BY seq
LIMIT $2

-- name: get_scheduled
-- Every scheduled record of queue $1, earliest due first.
SELECT id, status, data, claimed_by, lease_expires_at, deliveries FROM {schema}.tasks
WHERE queue = $1 AND state = 'scheduled'
ORDER BY due_at, seq

-- name: next_scheduled_at
-- When the earliest scheduled task of queue $1 is due (NULL if none).
SELECT min(due_at) FROM {schema}.tasks WHERE queue = $1 AND state = 'scheduled'

-- name: size
-- The number of queued, unclaimed tasks of queue $1.
SELECT count(*) FROM {schema}.tasks WHERE queue = $1 AND state = 'queued'

-- name: get_stats
-- Live records of queue $1 counted by state and status.
SELECT state, status, count(*) AS n FROM {schema}.tasks
WHERE queue = $1 AND (expires_at IS NULL OR expires_at > now())
GROUP BY state, status

-- name: list_tasks
-- Up to $5 live records of queue $1 in listing order (listed_at, then id in code-point order, descending) with listed_at >= $2 and (listed_at, id) < ($3, $4): a backward scan of tasks_listing (rows not claimed) merged with the claimed rows, sorted (as many as there are tasks in flight; claims never write the listing indexes).
SELECT * FROM (
    (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM {schema}.tasks
     WHERE queue = $1 AND state <> 'claimed' AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
    UNION ALL
    (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM {schema}.tasks
     WHERE queue = $1 AND state = 'claimed' AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
) AS listed
ORDER BY listed_at DESC, id COLLATE "C" DESC
LIMIT $5

-- name: list_tasks_by_status
-- list_tasks of the records with status $6: tasks_listing_status merged with the claimed rows.
SELECT * FROM (
    (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM {schema}.tasks
     WHERE queue = $1 AND state <> 'claimed' AND status = $6 AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
    UNION ALL
    (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM {schema}.tasks
     WHERE queue = $1 AND state = 'claimed' AND status = $6 AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
) AS listed
ORDER BY listed_at DESC, id COLLATE "C" DESC
LIMIT $5

-- name: list_tasks_by_func
-- list_tasks of the records of function $6 (stored form): tasks_listing_func merged with the claimed rows.
SELECT * FROM (
    (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM {schema}.tasks
     WHERE queue = $1 AND state <> 'claimed' AND func = $6 AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
    UNION ALL
    (SELECT id, status, data, claimed_by, lease_expires_at, deliveries, listed_at FROM {schema}.tasks
     WHERE queue = $1 AND state = 'claimed' AND func = $6 AND listed_at >= $2 AND (listed_at, id COLLATE "C") < ($3, $4)
       AND (expires_at IS NULL OR expires_at > now())
     ORDER BY listed_at DESC, id COLLATE "C" DESC LIMIT $5)
) AS listed
ORDER BY listed_at DESC, id COLLATE "C" DESC
LIMIT $5

-- name: list_tasks_by_status_func
-- list_tasks of the records with status $6 of function $7 (stored form), planned for these values (see the function in migration 0005).
SELECT * FROM {schema}.list_tasks_by_status_func($1, $2, $3, $4, $5, $6, $7)

-- name: count_by_status
-- Live records of queue $1 counted as get_stats counts them (by state, finished ones by status), each count reading at most $2 rows: the state partial indexes and tasks_listing_status (whose predicate, state <> 'claimed', is spelled out for the planner).
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND state = 'queued' LIMIT $2) AS c) AS pending,
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND state = 'claimed' LIMIT $2) AS c) AS processing,
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND state = 'scheduled' LIMIT $2) AS c) AS scheduled,
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND status = 'completed' AND state = 'finished' AND state <> 'claimed'
          AND (expires_at IS NULL OR expires_at > now()) LIMIT $2) AS c) AS completed,
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND status = 'failed' AND state = 'finished' AND state <> 'claimed'
          AND (expires_at IS NULL OR expires_at > now()) LIMIT $2) AS c) AS failed,
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND status = 'cancelled' AND state = 'finished' AND state <> 'claimed'
          AND (expires_at IS NULL OR expires_at > now()) LIMIT $2) AS c) AS cancelled,
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND status = 'crashed' AND state = 'finished' AND state <> 'claimed'
          AND (expires_at IS NULL OR expires_at > now()) LIMIT $2) AS c) AS crashed,
    (SELECT count(*) FROM (SELECT 1 FROM {schema}.tasks
        WHERE queue = $1 AND status = 'quarantined' AND state = 'finished' AND state <> 'claimed'
          AND (expires_at IS NULL OR expires_at > now()) LIMIT $2) AS c) AS quarantined

-- name: register_worker
-- Store worker $1 (JSON $2) until $3 seconds from now on the server's clock, replacing any record of that id.
INSERT INTO {schema}.workers (id, data, expires_at) VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at

-- name: unregister_worker
-- Delete worker $1; whether its record was there and unexpired.
WITH gone AS (
    DELETE FROM {schema}.workers WHERE id = $1 RETURNING expires_at
)
SELECT coalesce(bool_or(expires_at > clock_timestamp()), false) AS alive FROM gone

-- name: list_workers
-- Delete the workers whose record expired; the records of the others (the statement's snapshot predates the delete, so the expired are filtered out again).
WITH expired AS (
    DELETE FROM {schema}.workers WHERE expires_at <= clock_timestamp()
)
SELECT data FROM {schema}.workers WHERE expires_at > clock_timestamp()

-- name: list_queues
-- Every known queue (its name) with its number of queued tasks.
SELECT coalesce(q.name, q.queue) AS name,
       (SELECT count(*) FROM {schema}.tasks AS t WHERE t.queue = q.queue AND t.state = 'queued') AS size
FROM {schema}.queues AS q

-- name: clear
-- Delete everything of queue $1 in one statement; the number of live task records plus crons removed.
WITH tasks_gone AS (
    DELETE FROM {schema}.tasks WHERE queue = $1 RETURNING expires_at
), crons_gone AS (
    DELETE FROM {schema}.crons WHERE queue = $1 RETURNING 1
), grants_gone AS (
    DELETE FROM {schema}.rate_limit_grants WHERE queue = $1
), windows_gone AS (
    DELETE FROM {schema}.rate_limit_windows WHERE queue = $1
), workflows_gone AS (
    DELETE FROM {schema}.workflows WHERE queue = $1
), pending_gone AS (
    DELETE FROM {schema}.workflow_pending WHERE queue = $1
), queue_gone AS (
    DELETE FROM {schema}.queues WHERE queue = $1
)
SELECT (SELECT count(*) FROM tasks_gone WHERE expires_at IS NULL OR expires_at > now())
     + (SELECT count(*) FROM crons_gone)

-- name: pop_scheduled
-- Move the scheduled tasks of queue $1 due by $2 to the tail of the queue in due order (new positions from sequence $3) and notify $4 with $5.
WITH due AS (
    SELECT id FROM {schema}.tasks
    WHERE queue = $1 AND state = 'scheduled' AND due_at <= $2
    ORDER BY due_at, seq
    FOR UPDATE SKIP LOCKED
), numbered AS (
    SELECT id, nextval($3::regclass) AS new_seq FROM due
), moved AS (
    UPDATE {schema}.tasks AS t
    SET state = 'queued', status = 'pending', seq = numbered.new_seq, due_at = NULL
    FROM numbered
    WHERE t.queue = $1 AND t.id = numbered.id
    RETURNING t.id, t.status, t.data, t.claimed_by, t.lease_expires_at, t.deliveries, t.seq
)
SELECT moved.*, (SELECT pg_notify($4, $5) WHERE EXISTS (SELECT 1 FROM moved))::text AS notified
FROM moved
ORDER BY moved.seq

-- name: lock_task
-- Lock live task $2 of queue $1 and read its state (cancel decides on it).
SELECT state, status, data, deliveries FROM {schema}.tasks
WHERE queue = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > now())
FOR UPDATE

-- name: store_cancelled
-- Store task $2 of queue $1 as cancelled (JSON $3, kept $4 seconds or for ever if NULL).
UPDATE {schema}.tasks
SET state = 'finished', status = 'cancelled', data = $3, due_at = NULL, claimed_by = NULL,
    lease_expires_at = NULL, expires_at = now() + make_interval(secs => $4)
WHERE queue = $1 AND id = $2

-- name: store_quarantined
-- Set task $2 of queue $1 aside as quarantined (JSON $3: the stand-in keeping the stored text, kept $4 seconds or for ever if NULL).
UPDATE {schema}.tasks
SET state = 'finished', status = 'quarantined', data = $3, due_at = NULL, claimed_by = NULL,
    lease_expires_at = NULL, expires_at = now() + make_interval(secs => $4)
WHERE queue = $1 AND id = $2

-- name: notify_results
-- Notify channel $2 with $3 if anyone waits for results of queue $1 (delivered on commit).
SELECT pg_notify($2, $3)::text
WHERE EXISTS (SELECT 1 FROM {schema}.result_waiters WHERE queue = $1)

-- name: register_result_waiter
-- Record waiter $1 (LISTEN session pid $3) for results of queue $2.
INSERT INTO {schema}.result_waiters (token, queue, pid) VALUES ($1, $2, $3)

-- name: unregister_result_waiter
-- Forget waiter $1.
DELETE FROM {schema}.result_waiters WHERE token = $1

-- name: purge_result_waiters
-- Forget waiters whose LISTEN session no longer exists (their process died without unregistering).
DELETE FROM {schema}.result_waiters AS w
WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = w.pid)

-- name: delete_task
-- Delete live task $2 of queue $1 if it is finished; returns its state before (NULL: unknown).
WITH target AS (
    SELECT state FROM {schema}.tasks
    WHERE queue = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > now())
    FOR UPDATE
), deleted AS (
    DELETE FROM {schema}.tasks AS t
    WHERE t.queue = $1 AND t.id = $2 AND t.state = 'finished'
      AND (t.expires_at IS NULL OR t.expires_at > now())
    RETURNING 1
)
SELECT (SELECT state FROM target) AS state, (SELECT count(*) FROM deleted) AS deleted

-- name: get_unfinished_row
-- The live unfinished row of task $2 of queue $1 (delete_task reads its data when it was not finished).
SELECT id, status, data, claimed_by, lease_expires_at, deliveries, state, seq FROM {schema}.tasks
WHERE queue = $1 AND id = $2 AND state <> 'finished' AND (expires_at IS NULL OR expires_at > now())

-- name: delete_unfinished
-- Delete task $2 of queue $1 if it is still in state $3 at position $4 with data $5 (a record that reads as quarantined); the number deleted.
WITH deleted AS (
    DELETE FROM {schema}.tasks
    WHERE queue = $1 AND id = $2 AND state = $3 AND seq = $4 AND data = $5
    RETURNING 1
)
SELECT count(*) FROM deleted

-- name: purge_expired
-- Delete up to $1 finished records whose retention has passed; the number deleted.
WITH doomed AS (
    SELECT queue, id FROM {schema}.tasks
    WHERE expires_at <= now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM {schema}.tasks AS t USING doomed
    WHERE t.queue = doomed.queue AND t.id = doomed.id
    RETURNING 1
)
SELECT count(*) FROM deleted

-- name: purge_rate_limits
-- Delete rate-limit grants and windows that no longer count, and expired worker records.
WITH grants_gone AS (
    DELETE FROM {schema}.rate_limit_grants WHERE expires_at <= now()
), windows_gone AS (
    DELETE FROM {schema}.rate_limit_windows WHERE expires_at <= now()
), workers_gone AS (
    DELETE FROM {schema}.workers WHERE expires_at <= now()
)
SELECT 1

-- name: add_cron
-- Store cron definition $2 (JSON $3) of queue $1 unless that id exists.
INSERT INTO {schema}.crons (queue, id, data) VALUES ($1, $2, $3)
ON CONFLICT (queue, id) DO NOTHING
RETURNING id

-- name: delete_cron
-- Remove cron definition $2 of queue $1 and, in the same statement, its waiting occurrences: records scheduled with status scheduled whose stored (compact) JSON holds "cron_id":"$3". Matched as text, not parsed: a corrupt row must not fail the delete. $3 NULL matches none.
WITH gone AS (
    DELETE FROM {schema}.crons WHERE queue = $1 AND id = $2 RETURNING id
), occurrences AS (
    DELETE FROM {schema}.tasks AS t
    WHERE t.queue = $1 AND t.state = 'scheduled' AND t.status = 'scheduled'
      AND EXISTS (SELECT 1 FROM gone)
      AND strpos(t.data, '"cron_id":"' || $3 || '"') > 0
)
SELECT id FROM gone

-- name: get_crons
-- Every cron definition of queue $1.
SELECT data FROM {schema}.crons WHERE queue = $1 ORDER BY id

-- name: acquire_rate_limit
-- Take one start from the budget of key $2 in queue $1 ($3 per $4 seconds, task $5, strategy $6): NULL or the wait.
SELECT {schema}.acquire_rate_limit($1, $2, $3, $4, $5, $6)

-- name: store_workflow
-- Store workflow $2 of queue $1 (JSON $3, version $4) if its version is $5 (NULL: always); finished $6, pending ids $7.
SELECT {schema}.store_workflow($1, $2, $3, $4, $5, $6, $7::text[])

-- name: get_workflows
-- The workflow records of queue $1 among ids $2.
SELECT id, data FROM {schema}.workflows WHERE queue = $1 AND id = ANY($2::text[])

-- name: get_all_workflows
-- Every workflow record of queue $1.
SELECT data FROM {schema}.workflows WHERE queue = $1

-- name: get_pending_workflows
-- Every unfinished workflow record of queue $1.
SELECT data FROM {schema}.workflows WHERE queue = $1 AND NOT finished

-- name: delete_workflow
-- Delete workflow $2 of queue $1 and its pending set; the number of workflow rows deleted.
WITH pending_gone AS (
    DELETE FROM {schema}.workflow_pending WHERE queue = $1 AND workflow_id = $2
), gone AS (
    DELETE FROM {schema}.workflows WHERE queue = $1 AND id = $2 RETURNING 1
)
SELECT count(*) FROM gone

-- name: mark_workflow_task_complete
-- Remove task $3 from the pending set of workflow $2 in queue $1; the count left or -1.
SELECT {schema}.mark_workflow_task_complete($1, $2, $3)

-- name: get_workflow_results
-- The live finished task records of queue $1 that belong to workflow $2.
SELECT id, status, data, claimed_by, lease_expires_at, deliveries FROM {schema}.tasks
WHERE queue = $1 AND workflow_id = $2 AND state = 'finished'
  AND (expires_at IS NULL OR expires_at > now())
