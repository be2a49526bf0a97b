-- sheppy-postgres schema, version 1.
--
-- The migration runner executes this file inside one transaction, holding an advisory lock, with
-- search_path set to the configured schema: names here are unqualified on purpose, and the functions
-- capture that search_path (SET search_path FROM CURRENT) so they work whatever the caller's is.

-- Every queue that has had a task appended or scheduled, until cleared (list_queues).
CREATE TABLE queues (
    queue text PRIMARY KEY
);

-- One row per task record. `state` says where the task is: queued, claimed (under a lease), scheduled
-- (waiting for due_at), finished, or acked (acknowledged without a result: never delivered again, the
-- record kept as it was). `data` is the record's JSON as last written
-- by a client. The claim columns (status, claimed_by, lease_expires_at, deliveries) are authoritative
-- and laid over the JSON when a record is read, so a claim or a heartbeat never rewrites (or even
-- reads) a large payload: PostgreSQL keeps the TOASTed text as it is.
CREATE TABLE tasks (
    queue            text        NOT NULL,
    id               text        NOT NULL,
    seq              bigserial   NOT NULL,  -- FIFO position; a re-queue takes a fresh value (tail)
    state            text        NOT NULL
                     CHECK (state IN ('queued', 'claimed', 'scheduled', 'finished', 'acked')),
    status           text        NOT NULL,
    data             text        NOT NULL,
    due_at           timestamptz,          -- state 'scheduled': when it becomes due
    claimed_by       text,                 -- state 'claimed': the lease holder
    lease_expires_at timestamptz,
    deliveries       integer,              -- NULL: the record has no 'deliveries' field yet
    expires_at       timestamptz,          -- finished records only: reads ignore the row after this
    workflow_id      text,
    PRIMARY KEY (queue, id)
);

-- The claim query reads exactly these two partial indexes: the head of the queue in FIFO order, and
-- the claims whose lease ran out. Both stay small (only waiting/running tasks), however many finished
-- records the table keeps.
CREATE INDEX tasks_claimable_queued ON tasks (queue, seq) WHERE state = 'queued';
CREATE INDEX tasks_claimable_expired ON tasks (queue, lease_expires_at) WHERE state = 'claimed';
CREATE INDEX tasks_scheduled ON tasks (queue, due_at, seq) WHERE state = 'scheduled';
CREATE INDEX tasks_expiry ON tasks (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tasks_workflow ON tasks (queue, workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TABLE crons (
    queue text NOT NULL,
    id    text NOT NULL,
    data  text NOT NULL,
    PRIMARY KEY (queue, id)
);

-- Sliding-window rate limits: one row per grant still inside its window.
CREATE TABLE rate_limit_grants (
    queue      text        NOT NULL,
    key        text        NOT NULL,
    task_id    text        NOT NULL,
    granted_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (queue, key, task_id)
);
CREATE INDEX rate_limit_grants_window ON rate_limit_grants (queue, key, granted_at);
CREATE INDEX rate_limit_grants_expiry ON rate_limit_grants (expires_at);

-- Fixed-window rate limits: the current window of each key and how many grants it has given.
CREATE TABLE rate_limit_windows (
    queue        text        NOT NULL,
    key          text        NOT NULL,
    window_index bigint      NOT NULL,
    grants       integer     NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (queue, key)
);

CREATE TABLE workflows (
    queue    text    NOT NULL,
    id       text    NOT NULL,
    data     text    NOT NULL,
    version  bigint  NOT NULL,
    finished boolean NOT NULL,
    PRIMARY KEY (queue, id)
);

-- The ids a workflow still waits for (only while the workflow is unfinished).
CREATE TABLE workflow_pending (
    queue       text NOT NULL,
    workflow_id text NOT NULL,
    task_id     text NOT NULL,
    PRIMARY KEY (queue, workflow_id, task_id)
);

-- Take one start from a rate-limit budget. NULL: granted; otherwise the seconds to wait.
-- Atomic across clients: the fixed window is one upsert on the key's row (its row lock serialises
-- callers); the sliding window holds a transaction-scoped advisory lock on the key while it counts.
CREATE FUNCTION acquire_rate_limit(
    p_queue text, p_key text, p_max integer, p_period double precision, p_task text, p_strategy text
) RETURNS double precision
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
DECLARE
    v_now    timestamptz;
    v_epoch  double precision;
    v_index  bigint;
    v_count  integer;
    v_oldest timestamptz;
    v_period interval := make_interval(secs => p_period);
BEGIN
    IF p_strategy = 'fixed_window' THEN
        v_now := clock_timestamp();
        v_epoch := extract(epoch FROM v_now);
        v_index := floor(v_epoch / p_period)::bigint;
        INSERT INTO rate_limit_windows AS w (queue, key, window_index, grants, expires_at)
        VALUES (p_queue, p_key, v_index, 1, to_timestamp((v_index + 1) * p_period))
        ON CONFLICT (queue, key) DO UPDATE
            SET window_index = EXCLUDED.window_index,
                expires_at = EXCLUDED.expires_at,
                grants = CASE WHEN w.window_index = EXCLUDED.window_index THEN w.grants + 1 ELSE 1 END
            WHERE w.window_index <> EXCLUDED.window_index OR w.grants < p_max;
        IF FOUND THEN
            RETURN NULL;
        END IF;
        RETURN greatest((v_index + 1) * p_period - v_epoch, 0.001);
    END IF;

    -- Key hash collisions only make two keys wait for each other briefly; they never share a budget.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_queue || chr(31) || p_key, 7));
    v_now := clock_timestamp();  -- read after the lock: a caller that waited must not use an old time
    DELETE FROM rate_limit_grants
        WHERE queue = p_queue AND key = p_key AND granted_at <= v_now - v_period;
    IF EXISTS (SELECT 1 FROM rate_limit_grants WHERE queue = p_queue AND key = p_key AND task_id = p_task) THEN
        RETURN NULL;  -- a redelivered task is not charged twice
    END IF;
    SELECT count(*), min(granted_at) INTO v_count, v_oldest
        FROM rate_limit_grants WHERE queue = p_queue AND key = p_key;
    IF v_count < p_max THEN
        INSERT INTO rate_limit_grants (queue, key, task_id, granted_at, expires_at)
        VALUES (p_queue, p_key, p_task, v_now, v_now + v_period);
        RETURN NULL;
    END IF;
    RETURN greatest(extract(epoch FROM (v_oldest + v_period - v_now))::double precision, 0.001);
END
$fn$;

-- Store a workflow record, optionally compare-and-set on its version, and replace its pending set.
CREATE FUNCTION store_workflow(
    p_queue text, p_id text, p_data text, p_version bigint, p_if_version bigint, p_finished boolean,
    p_pending text[]
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
BEGIN
    IF p_if_version IS NULL OR p_if_version = 0 THEN
        -- A missing record counts as version 0, so if_version = 0 may insert.
        INSERT INTO workflows AS w (queue, id, data, version, finished)
        VALUES (p_queue, p_id, p_data, p_version, p_finished)
        ON CONFLICT (queue, id) DO UPDATE
            SET data = EXCLUDED.data, version = EXCLUDED.version, finished = EXCLUDED.finished
            WHERE p_if_version IS NULL OR w.version = 0;
    ELSE
        UPDATE workflows SET data = p_data, version = p_version, finished = p_finished
            WHERE queue = p_queue AND id = p_id AND version = p_if_version;
    END IF;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM workflow_pending WHERE queue = p_queue AND workflow_id = p_id;
    IF NOT p_finished THEN
        INSERT INTO workflow_pending (queue, workflow_id, task_id)
            SELECT p_queue, p_id, t FROM unnest(p_pending) AS t
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN true;
END
$fn$;

-- Remove one id from a workflow's pending set; the remaining count, or -1 if it was not there.
-- The workflow row lock serialises concurrent callers, and each statement here reads a fresh snapshot,
-- so exactly one of several callers removing the last ids sees 0.
CREATE FUNCTION mark_workflow_task_complete(p_queue text, p_id text, p_task text) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
DECLARE
    v_left integer;
BEGIN
    PERFORM 1 FROM workflows WHERE queue = p_queue AND id = p_id FOR UPDATE;
    DELETE FROM workflow_pending WHERE queue = p_queue AND workflow_id = p_id AND task_id = p_task;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    SELECT count(*) INTO v_left FROM workflow_pending WHERE queue = p_queue AND workflow_id = p_id;
    RETURN v_left;
END
$fn$;
