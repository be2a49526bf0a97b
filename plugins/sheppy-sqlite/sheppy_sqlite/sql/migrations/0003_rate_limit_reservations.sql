-- Schema version 3: rate limits reserve the start of a deferred task, and a fixed window begins with
-- its first start (as sheppy's) instead of at a multiple of the period.
--
-- A deferral now stores the start it reserved (in `rate_limit_grants` for sliding windows, in
-- `rate_limit_window_starts` for fixed ones), so the deferred task is granted when it comes back and
-- tasks deferred after it queue behind it. The old fixed-window counters are dropped: at worst one
-- window's budget is granted again right after the upgrade.

DROP TABLE rate_limit_windows;

-- Fixed-window rate limits: when the current window of a key began.
CREATE TABLE rate_limit_windows (
    queue        TEXT NOT NULL,
    key          TEXT NOT NULL,
    window_start REAL NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;

-- Fixed-window rate limits: the starts made or reserved in the current window and later ones.
CREATE TABLE rate_limit_window_starts (
    queue      TEXT NOT NULL,
    key        TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    started_at REAL NOT NULL,
    PRIMARY KEY (queue, key, task_id)
) WITHOUT ROWID;
