-- Schema version 2: `tasks.seq` becomes a plain rowid key (no AUTOINCREMENT).
--
-- AUTOINCREMENT made every insert also update `sqlite_sequence`: one more b-tree write and one more WAL
-- page per enqueue (~15% of an insert's cost). FIFO does not need it: a new row's rowid is already
-- max(seq) + 1, and re-queues set max(seq) + 1 themselves. A number can now be reused only after the
-- row holding the highest one is deleted, and no statement identifies a deleted row by its `seq`
-- (`unclaim` also requires state = 'claimed' and its own `claimed_by`, which a new row never has).
--
-- SQLite cannot drop AUTOINCREMENT in place: the table is rebuilt, rows and `seq` values kept, then the
-- indexes and the trigger of version 1 are created again unchanged.

CREATE TABLE tasks_v2 (
    seq          INTEGER PRIMARY KEY,
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

INSERT INTO tasks_v2 (seq, queue, id, state, status, due_at, lease_until, claimed_by, redelivered,
                      expires_at, workflow_id, data)
SELECT seq, queue, id, state, status, due_at, lease_until, claimed_by, redelivered,
       expires_at, workflow_id, data
FROM tasks ORDER BY seq;

-- Also drops version 1's indexes and trigger, and the table's row in sqlite_sequence.
DROP TABLE tasks;

ALTER TABLE tasks_v2 RENAME TO tasks;

CREATE INDEX tasks_by_state ON tasks (queue, state, seq);
CREATE INDEX tasks_by_lease ON tasks (queue, lease_until) WHERE state = 'claimed';
CREATE INDEX tasks_by_due ON tasks (queue, due_at) WHERE state = 'scheduled';
CREATE INDEX tasks_by_expiry ON tasks (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tasks_by_workflow ON tasks (queue, workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TRIGGER tasks_register_queue AFTER INSERT ON tasks
BEGIN
    INSERT OR IGNORE INTO queues (name) VALUES (new.queue);
END;
