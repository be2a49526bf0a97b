-- sheppy-postgres schema, version 4: rate limits reserve the start of a deferred task, and a fixed
-- window begins with its first start (as sheppy's) instead of at a multiple of the period.
--
-- A deferral stores the start it reserved, as a row of rate_limit_grants dated in the future, in the
-- same call: the deferred task is granted when it comes back, tasks deferred after it queue behind it,
-- and each deferral comes no sooner than the previous pending reservation + period / max_rate (the
-- rule of sheppy_core/backend/_rate_limits.py). Fixed-window starts are rows of rate_limit_grants too,
-- under the key 'fixed' || chr(31) || key; rate_limit_windows keeps when the current window began. The
-- old window counters are not carried over: at worst one window's budget is granted again after the
-- upgrade.

ALTER TABLE rate_limit_windows ADD COLUMN window_start timestamptz;

CREATE OR REPLACE FUNCTION acquire_rate_limit(
    p_queue text, p_key text, p_max integer, p_period double precision, p_task text, p_strategy text
) RETURNS double precision
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
DECLARE
    v_fixed  boolean := p_strategy = 'fixed_window';
    v_key    text := CASE WHEN p_strategy = 'fixed_window' THEN 'fixed' || chr(31) || p_key ELSE p_key END;
    -- Window boundaries tolerate the microsecond rounding of timestamptz.
    v_eps    double precision := greatest(p_period * 1e-9, 0.00001);
    v_now    double precision;
    v_at     double precision;
    v_start  double precision;
    v_latest double precision;
    v_slot   double precision;
    v_count  integer;
    v_index  bigint;
BEGIN
    -- Key hash collisions only make two keys wait for each other briefly; they never share a budget.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_queue || chr(31) || v_key, 7));
    v_now := extract(epoch FROM clock_timestamp());  -- read after the lock: a waiter must not use an old time

    IF v_fixed THEN
        SELECT extract(epoch FROM window_start) INTO v_start
            FROM rate_limit_windows WHERE queue = p_queue AND key = p_key;
        IF v_start IS NOT NULL AND v_now >= v_start + p_period THEN
            v_at := v_start + floor((v_now - v_start) / p_period + 1e-9) * p_period;
            SELECT extract(epoch FROM max(granted_at)) INTO v_latest
                FROM rate_limit_grants WHERE queue = p_queue AND key = v_key;
            IF v_latest IS NOT NULL AND v_latest >= v_at - v_eps THEN
                -- Reservations reach into this window: windows follow one another without a gap.
                v_start := v_at;
                DELETE FROM rate_limit_grants
                    WHERE queue = p_queue AND key = v_key AND granted_at < to_timestamp(v_start - v_eps);
            ELSE
                v_start := NULL;
                DELETE FROM rate_limit_grants WHERE queue = p_queue AND key = v_key;
            END IF;
        END IF;
        IF v_start IS NULL THEN
            v_start := v_now;
        END IF;
        INSERT INTO rate_limit_windows AS w (queue, key, window_index, grants, expires_at, window_start)
        VALUES (p_queue, p_key, 0, 0, to_timestamp(v_start + p_period), to_timestamp(v_start))
        ON CONFLICT (queue, key) DO UPDATE
            SET window_start = EXCLUDED.window_start,
                expires_at = greatest(w.expires_at, EXCLUDED.expires_at);
    ELSE
        DELETE FROM rate_limit_grants
            WHERE queue = p_queue AND key = v_key AND granted_at <= to_timestamp(v_now - p_period);
    END IF;

    SELECT extract(epoch FROM granted_at) INTO v_at
        FROM rate_limit_grants WHERE queue = p_queue AND key = v_key AND task_id = p_task;
    IF FOUND THEN
        -- Granted before (a redelivery is not charged twice), or holding a reservation.
        IF v_at <= v_now THEN
            RETURN NULL;
        END IF;
        RETURN greatest(v_at - v_now, 0.001);
    END IF;

    IF v_fixed THEN
        SELECT count(*) INTO v_count FROM rate_limit_grants
            WHERE queue = p_queue AND key = v_key AND granted_at < to_timestamp(v_start + p_period - v_eps);
    ELSE
        SELECT count(*) INTO v_count FROM rate_limit_grants WHERE queue = p_queue AND key = v_key;
    END IF;
    IF v_count < p_max THEN
        INSERT INTO rate_limit_grants (queue, key, task_id, granted_at, expires_at)
        VALUES (p_queue, v_key, p_task, to_timestamp(v_now), to_timestamp(v_now + p_period));
        RETURN NULL;
    END IF;

    SELECT extract(epoch FROM max(granted_at)) INTO v_latest
        FROM rate_limit_grants WHERE queue = p_queue AND key = v_key;
    IF v_fixed THEN
        v_slot := v_start + p_period;
    ELSE
        -- The budget frees up when the p_max-th latest start (or reservation) leaves the window.
        SELECT extract(epoch FROM granted_at) + p_period INTO v_slot FROM rate_limit_grants
            WHERE queue = p_queue AND key = v_key ORDER BY granted_at DESC OFFSET p_max - 1 LIMIT 1;
    END IF;
    IF v_latest > v_now THEN
        v_slot := greatest(v_slot, v_latest + p_period / p_max);
    END IF;
    v_slot := greatest(v_slot, v_now + 0.001);
    IF v_fixed THEN
        LOOP
            v_index := floor((v_slot - v_start) / p_period + 1e-9)::bigint;
            SELECT count(*) INTO v_count FROM rate_limit_grants
                WHERE queue = p_queue AND key = v_key
                  AND granted_at >= to_timestamp(v_start + v_index * p_period - v_eps)
                  AND granted_at < to_timestamp(v_start + (v_index + 1) * p_period - v_eps);
            EXIT WHEN v_count < p_max;
            v_slot := v_start + (v_index + 1) * p_period;
        END LOOP;
        UPDATE rate_limit_windows SET expires_at = greatest(expires_at, to_timestamp(v_slot + p_period))
            WHERE queue = p_queue AND key = p_key;
    END IF;
    INSERT INTO rate_limit_grants (queue, key, task_id, granted_at, expires_at)
    VALUES (p_queue, v_key, p_task, to_timestamp(v_slot), to_timestamp(v_slot + p_period));
    RETURN v_slot - v_now;
END
$fn$;
