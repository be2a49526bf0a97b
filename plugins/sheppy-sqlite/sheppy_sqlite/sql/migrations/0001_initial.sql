-- Schema version 1: tasks, queues, crons, rate limits and workflows.
--
-- One row per task. `state` says where the task is (the contract's "where a task is"):
--   queued    waiting to be claimed, claim order = `seq`
--   claimed   held under a lease until `lease_until` (Unix seconds) by `claimed_by`
--   scheduled waiting for `due_at` (Unix seconds)
--   finished  `finished_at` set; removed by the purge once `expires_at` (Unix seconds) has passed
--   released  acknowledged: neither queued, claimed, scheduled nor finished
-- `seq` is AUTOINCREMENT so a number is never reused: every (re-)queue moves a task to the tail by giving
-- it max(seq) + 1, which keeps FIFO order without a separate queue table.

CREATE TABLE tasks (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'claimed', 'scheduled', 'finished', 'released')),
    status       TEXT,
    due_at       REAL,
    lease_until  REAL,
    claimed_by   TEXT,
    redelivered  INTEGER NOT NULL DEFAULT 0,
    expires_at   REAL,
    workflow_id  TEXT,
    data         TEXT    NOT NULL,
    UNIQUE (queue, id)
);

-- pop, size, get_pending: the head of a queue (and counts by state).
CREATE INDEX tasks_by_state ON tasks (queue, state, seq);
-- pop: claims whose lease has expired, found without scanning the live ones.
CREATE INDEX tasks_by_lease ON tasks (queue, lease_until) WHERE state = 'claimed';
-- pop_scheduled, get_scheduled, next_scheduled_at.
CREATE INDEX tasks_by_due ON tasks (queue, due_at) WHERE state = 'scheduled';
-- The periodic purge of expired finished records.
CREATE INDEX tasks_by_expiry ON tasks (expires_at) WHERE expires_at IS NOT NULL;
-- get_workflow_results.
CREATE INDEX tasks_by_workflow ON tasks (queue, workflow_id) WHERE workflow_id IS NOT NULL;

-- Every queue that has had a task appended or scheduled and was not cleared since (list_queues).
CREATE TABLE queues (
    name TEXT PRIMARY KEY
) WITHOUT ROWID;

-- A trigger rather than a second statement in append/schedule: registering the queue costs no round trip.
CREATE TRIGGER tasks_register_queue AFTER INSERT ON tasks
BEGIN
    INSERT OR IGNORE INTO queues (name) VALUES (new.queue);
END;

CREATE TABLE crons (
    queue TEXT NOT NULL,
    id    TEXT NOT NULL,
    data  TEXT NOT NULL,
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;

-- Sliding-window rate limits: one row per grant still inside some window.
CREATE TABLE rate_limit_grants (
    queue      TEXT NOT NULL,
    key        TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    granted_at REAL NOT NULL,
    PRIMARY KEY (queue, key, task_id)
) WITHOUT ROWID;

-- Fixed-window rate limits: the current window index of a key and the grants made in it.
CREATE TABLE rate_limit_windows (
    queue  TEXT    NOT NULL,
    key    TEXT    NOT NULL,
    window_index INTEGER NOT NULL,
    grants INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;

CREATE TABLE workflows (
    queue    TEXT    NOT NULL,
    id       TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    data     TEXT    NOT NULL,
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;

-- The ids a workflow still waits for; rows are removed one by one by mark_workflow_task_complete.
CREATE TABLE workflow_pending (
    queue       TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    PRIMARY KEY (queue, workflow_id, task_id)
) WITHOUT ROWID;
