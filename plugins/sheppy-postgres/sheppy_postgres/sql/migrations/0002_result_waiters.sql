-- sheppy-postgres schema, version 2: who is waiting for results.
--
-- A NOTIFY costs every committing transaction a turn on a cluster-wide lock, and most finished tasks
-- have nobody waiting for them. get_results registers here while it waits; store_result and cancel
-- only NOTIFY when a row for their queue exists. UNLOGGED: the rows are short-lived and worthless
-- after a crash (waiters re-register, and the fallback poll covers the gap).

CREATE UNLOGGED TABLE result_waiters (
    token uuid        PRIMARY KEY,
    queue text        NOT NULL,
    pid   integer     NOT NULL,  -- server pid of the waiter's LISTEN session: rows of dead sessions are purged
    since timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX result_waiters_queue ON result_waiters (queue);
