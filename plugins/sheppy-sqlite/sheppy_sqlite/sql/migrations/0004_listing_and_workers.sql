-- Schema version 4: the operator inspection API (list_tasks, count_by_status, the worker registry).
--
-- `listed_at` is the listing key (sheppy_core.backend.listing_key: created_at in microseconds since the
-- epoch), fixed when append/schedule store a row; `func` is the record's spec.func, also written only
-- then. Two indexes serve list_tasks' order (listing key, then id, descending: SQLite's BINARY collation
-- compares UTF-8 bytes, which is code-point order), read backwards from the cursor: by status (also for
-- no filter, merging the statuses' streams, and to bound count_by_status) and by func. Each index is one
-- more page written per insert, so there is no third one for the unfiltered order.
--
-- Rows stored before this version get both from their stored data: `sheppy_listing_key` is a Python
-- function the migration registers on its connection (listing_key itself, so the keys are exactly the
-- ones append would have given; the migration time for a record without a readable created_at).

ALTER TABLE tasks ADD COLUMN listed_at INTEGER NOT NULL DEFAULT 0;

ALTER TABLE tasks ADD COLUMN func TEXT;

UPDATE tasks SET
    listed_at = sheppy_listing_key(data),
    func = CASE WHEN json_valid(data) AND json_type(data) = 'object' AND json_extract(data, '$.id') IS id
                     AND json_type(data, '$.spec.func') = 'text'
                THEN json_extract(data, '$.spec.func') END;

-- The status column holds a listable status or '' (see store_result), so that the unfiltered listing,
-- which reads the status index once per value, finds every row.
UPDATE tasks SET status = '' WHERE status IS NULL OR status NOT IN
    ('pending', 'processing', 'scheduled', 'retrying', 'completed', 'failed', 'cancelled', 'crashed',
     'quarantined');

CREATE INDEX tasks_by_status_listing ON tasks (queue, status, listed_at, id);
CREATE INDEX tasks_by_func_listing ON tasks (queue, func, listed_at, id);

-- The worker registry: one row per worker (not per queue), alive until `expires_at` (Unix seconds, on
-- SQLite's clock: every process on the file reads the same one). Expired rows are ignored by every
-- read and deleted by the next register_worker.
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    data       TEXT NOT NULL
) WITHOUT ROWID;
