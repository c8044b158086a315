-- analytics 1.0 -> 1.1.  Everything here is also in the pieces under
-- sql/install/, which build the 1.1 install script; test/upgrade.sh proves
-- that the two give the same schema.
\echo Use "ALTER EXTENSION analytics UPDATE TO '1.1'" to load this file. \quit

-- Hostile input (SPEC section 14) ------------------------------------------

-- Customers: name and email of at most 1000 characters.  Longer ones
-- recorded by 1.0 are cut to 1000 characters (with a warning), so that the
-- update cannot be stopped by what a writer once sent.
DO $$
DECLARE
    n bigint;
BEGIN
    UPDATE analytics.customers
       SET name = CASE WHEN length(name) > 1000 THEN left(name, 1000) ELSE name END,
           email = CASE WHEN length(email) > 1000 THEN left(email, 1000) ELSE email END
     WHERE length(name) > 1000 OR length(email) > 1000;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        RAISE WARNING 'analytics: cut the name or email of % customers to 1000 characters', n;
    END IF;
END;
$$;
ALTER TABLE analytics.customers
    ADD CONSTRAINT name_length CHECK (length(name) <= 1000),
    ADD CONSTRAINT email_length CHECK (length(email) <= 1000);

CREATE OR REPLACE FUNCTION analytics._param_text(params jsonb, key text)
RETURNS text LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    v jsonb := params -> key;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        PERFORM analytics._param_error(key, 'a string or null', v);
    END IF;
    IF length(v #>> '{}') > 1000 THEN
        PERFORM analytics._param_error(key, 'a string of at most 1000 characters', v);
    END IF;
    RETURN v #>> '{}';
END;
$$;

-- The rollup: a failed worker pass is kept in rollup_state, and logs that
-- cannot be folded are set aside.
ALTER TABLE analytics.rollup_state
    ADD COLUMN last_error text,
    ADD COLUMN last_error_at timestamptz;
COMMENT ON COLUMN analytics.rollup_state.last_error IS 'SQLSTATE and message of the last pass of the background worker that failed (null: none failed yet); see last_error_at.';
COMMENT ON COLUMN analytics.rollup_state.last_error_at IS 'When the last failed pass of the background worker ended.';

CREATE TABLE analytics.rollup_set_aside (
    log_id bigint PRIMARY KEY,
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    set_aside_at timestamptz NOT NULL DEFAULT now(),
    sqlstate text NOT NULL,
    error text NOT NULL
);
COMMENT ON TABLE analytics.rollup_set_aside IS 'Logs the rollup could not fold in: not counted by the rollups or the views. Removed with their customer.';
COMMENT ON COLUMN analytics.rollup_set_aside.log_id IS 'Id of the log in analytics.logs (the row may since have been purged).';
COMMENT ON COLUMN analytics.rollup_set_aside.customer_identifier IS 'The log''s customer.';
COMMENT ON COLUMN analytics.rollup_set_aside.set_aside_at IS 'When the fold set it aside.';
COMMENT ON COLUMN analytics.rollup_set_aside.sqlstate IS 'SQLSTATE of the error folding it raised.';
COMMENT ON COLUMN analytics.rollup_set_aside.error IS 'Message of that error (at most 1000 bytes).';
SELECT pg_catalog.pg_extension_config_dump('analytics.rollup_set_aside', '');

CREATE OR REPLACE VIEW analytics.status AS
SELECT s.watermark,
       (SELECT pg_catalog.count(*) FROM analytics.logs l
         WHERE l.id OPERATOR(pg_catalog.>) s.watermark) AS logs_pending,
       s.last_pass,
       s.last_pass_folded,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                WHERE a.backend_type OPERATOR(pg_catalog.=) 'analytics rollup'
                  AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) AS worker_running,
       s.timezone,
       s.retained_from,
       s.last_error,
       s.last_error_at,
       (SELECT pg_catalog.count(*) FROM analytics.rollup_set_aside) AS logs_set_aside
  FROM analytics.rollup_state s;
COMMENT ON COLUMN analytics.status.last_error IS 'SQLSTATE and message of the last failed pass of the background worker; null when none failed. Compare last_error_at with last_pass.';
COMMENT ON COLUMN analytics.status.last_error_at IS 'When the last failed pass of the background worker ended.';
COMMENT ON COLUMN analytics.status.logs_set_aside IS 'Logs the rollup could not fold in and does not count (listed in analytics.rollup_set_aside).';

CREATE OR REPLACE FUNCTION analytics.replace_on_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
BEGIN
    IF TG_TABLE_NAME = 'model_prices' THEN
        UPDATE analytics.model_prices
           SET prompt_per_million = NEW.prompt_per_million,
               completion_per_million = NEW.completion_per_million
         WHERE model OPERATOR(pg_catalog.=) NEW.model;
    ELSIF TG_TABLE_NAME = 'rollup_state' THEN
        UPDATE analytics.rollup_state
           SET (watermark, last_pass, last_pass_folded, timezone, retained_from,
                last_error, last_error_at)
             = (NEW.watermark, NEW.last_pass, NEW.last_pass_folded, NEW.timezone, NEW.retained_from,
                NEW.last_error, NEW.last_error_at)
         WHERE singleton;
    ELSE
        RAISE EXCEPTION 'replace_on_insert is not meant for table %', TG_TABLE_NAME;
    END IF;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;
