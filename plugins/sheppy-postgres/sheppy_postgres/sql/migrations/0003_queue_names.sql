-- sheppy-postgres schema, version 3: names of any length.
--
-- A b-tree key holds at most about 2700 bytes, so queue names, task ids and other names longer than
-- 1000 bytes are stored as a hash (see sheppy_postgres/_records.py). list_queues must still return
-- the name itself: the queues table keeps it, unhashed, beside the key. Nullable on purpose: a worker
-- still running the previous version during a rolling upgrade inserts rows without it, and
-- list_queues falls back to the key (which, for such a worker, is the name).

ALTER TABLE queues ADD COLUMN name text;
