-- Piece 45: the fold-in and retention functions (rollup.c) and the status
-- view.  See src/README.md for the fold-in protocol.

CREATE FUNCTION analytics.rollup_now() RETURNS bigint
    AS 'MODULE_PATHNAME', 'rollup_now' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION analytics.rollup_now() IS
    'Folds every committed log not yet rolled up into usage_daily and the coarser rollups, in the calling (READ COMMITTED) transaction; returns how many logs with a customer it folded.';

CREATE FUNCTION analytics.purge_logs(older_than timestamptz) RETURNS bigint
    AS 'MODULE_PATHNAME', 'rollup_purge_logs' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics.purge_logs(timestamptz) IS
    'Retention: folds pending logs in, then deletes the raw logs created before the start of older_than''s day (rollup time zone); usage_daily keeps their counts. Returns the number of logs deleted.';
REVOKE ALL ON FUNCTION analytics.purge_logs(timestamptz) FROM PUBLIC;

CREATE FUNCTION analytics.delete_customer(customer_identifier text) RETURNS void
    AS 'MODULE_PATHNAME', 'rollup_delete_customer' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics.delete_customer(text) IS
    'Removes a customer, all its logs and its rollups; an unknown customer is an error (SQLSTATE 42704).';
REVOKE ALL ON FUNCTION analytics.delete_customer(text) FROM PUBLIC;

CREATE FUNCTION analytics.set_timezone(timezone text) RETURNS void
    AS 'MODULE_PATHNAME', 'rollup_set_timezone' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION analytics.set_timezone(text) IS
    'Sets the time zone whose calendar days rollups and budget periods use, and rebuilds usage_daily from the retained raw logs (days of purged logs stay as they were), then usage_customer_day, usage_day and usage_customer from usage_daily.';

-- Their node variants (rollup_admin.c): on a Citus cluster the functions
-- above run these on every node, each on the node's own shards.
CREATE FUNCTION analytics._purge_logs_node(older_than timestamptz) RETURNS bigint
    AS 'MODULE_PATHNAME', 'rollup_purge_logs_node' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics._purge_logs_node(timestamptz) IS
    'Internal: purge_logs() on this node''s logs shards (Citus).';
CREATE FUNCTION analytics._delete_customer_node(customer_identifier text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'rollup_delete_customer_node' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics._delete_customer_node(text) IS
    'Internal: delete_customer() on this node (Citus); false when the customer''s shard is on another node.';
CREATE FUNCTION analytics._set_timezone_node(timezone text) RETURNS void
    AS 'MODULE_PATHNAME', 'rollup_set_timezone_node' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics._set_timezone_node(text) IS
    'Internal: set_timezone() on this node''s shards and rollup state (Citus).';

CREATE FUNCTION analytics._worker_status(OUT last_served timestamptz, OUT waiting_since timestamptz)
    AS 'MODULE_PATHNAME', 'worker_database_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION analytics._worker_status() IS
    'When a rollup worker last finished a pass in this database, and since when committed logs wait for one (null: none wait); read by analytics.status.';

CREATE VIEW analytics.status AS
SELECT s.watermark,
       (SELECT pg_catalog.count(*) FROM analytics.logs l
         WHERE (l.id OPERATOR(pg_catalog.>) analytics._fold_watermark()
                AND l.id OPERATOR(pg_catalog.<=) analytics._fold_id_last())
               OR l.id OPERATOR(pg_catalog.=) ANY (analytics._fold_gap_ids())) AS logs_pending,
       s.last_pass,
       s.last_pass_folded,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                WHERE a.backend_type OPERATOR(pg_catalog.=) 'analytics rollup'
                  AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) AS worker_running,
       s.timezone,
       s.retained_from,
       s.last_error,
       s.last_error_at,
       (SELECT pg_catalog.count(*) FROM analytics.rollup_set_aside) AS logs_set_aside,
       w.last_served,
       w.waiting_since,
       (SELECT pg_catalog.count(*) FROM analytics.rollup_gaps) AS gaps
  FROM analytics.rollup_state s, analytics._worker_status() w;
COMMENT ON VIEW analytics.status IS 'Progress of the rollup and whether its background worker runs in this database.';
COMMENT ON COLUMN analytics.status.watermark IS 'Every log with id at most this and outside the gaps is counted in usage_daily.';
COMMENT ON COLUMN analytics.status.logs_pending IS 'Logs not folded in yet: above the watermark, or inside a gap and committed since the last pass (views still count them, from the raw logs).';
COMMENT ON COLUMN analytics.status.last_pass IS 'When the last fold-in pass (worker or rollup_now) committed.';
COMMENT ON COLUMN analytics.status.last_pass_folded IS 'How many logs the last pass folded in.';
COMMENT ON COLUMN analytics.status.worker_running IS 'Whether a rollup worker is connected to this database now (workers come when there are logs to fold and leave when idle: see last_served).';
COMMENT ON COLUMN analytics.status.timezone IS 'Time zone whose calendar days the rollups use.';
COMMENT ON COLUMN analytics.status.retained_from IS 'Rollup days from here on are backed by raw logs; earlier days include purged logs. Null: nothing purged yet.';
COMMENT ON COLUMN analytics.status.last_error IS 'SQLSTATE and message of the last failed pass of the background worker; null when none failed. Compare last_error_at with last_pass.';
COMMENT ON COLUMN analytics.status.last_error_at IS 'When the last failed pass of the background worker ended.';
COMMENT ON COLUMN analytics.status.logs_set_aside IS 'Logs the rollup could not fold in and does not count (listed in analytics.rollup_set_aside).';
COMMENT ON COLUMN analytics.status.last_served IS 'When a rollup worker last finished a pass in this database (null: none since the server started, or the database is not served: analytics.databases).';
COMMENT ON COLUMN analytics.status.waiting_since IS 'Since when logs committed here wait for a worker''s pass; null when none wait. Lagging well behind now() means too few workers for the databases (analytics.max_workers).';
COMMENT ON COLUMN analytics.status.gaps IS 'Ranges of ids below the watermark not seen committed yet (analytics.rollup_gaps): transactions that were writing logs when a pass ran. Many that stay mean a transaction left open.';

-- Rebuild usage_customer_day, usage_day, usage_day_gaps and usage_customer
-- from usage_daily, with the zero rows of the customers without logs
-- (set_timezone calls it after refolding usage_daily by the new zone's
-- days).  The caller holds the rollup_state row lock, so no fold runs
-- meanwhile.
CREATE FUNCTION analytics._rollup_rebuild_summaries() RETURNS void
LANGUAGE sql SET search_path = pg_catalog, analytics AS $$
DELETE FROM analytics.usage_day;
-- Emptied first: the deletion trigger of usage_customer_day then leaves it.
DELETE FROM analytics.usage_day_gaps;
DELETE FROM analytics.usage_customer_day;
DELETE FROM analytics.usage_customer;
INSERT INTO analytics.usage_customer_day (
    customer_identifier, day,
    -- rollup columns: list per_day - last
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost
    -- end rollup columns
)
SELECT d.customer_identifier, d.day,
       -- rollup columns: merge per_day d last
       pg_catalog.sum(d.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(d.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(d.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(d.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(d.cost) AS cost
       -- end rollup columns
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier, d.day;
INSERT INTO analytics.usage_day (
    day, active_users,
    -- rollup columns: list per_day - last
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost
    -- end rollup columns
)
SELECT x.day, pg_catalog.count(*),
       -- rollup columns: merge per_day x last
       pg_catalog.sum(x.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(x.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(x.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(x.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(x.cost) AS cost
       -- end rollup columns
  FROM analytics.usage_customer_day x
 GROUP BY x.day;
INSERT INTO analytics.usage_day_gaps (day, prev_day, customers)
SELECT g.day, g.prev_day, pg_catalog.count(*)
  FROM (SELECT x.day,
               COALESCE(pg_catalog.lag(x.day) OVER (PARTITION BY x.customer_identifier ORDER BY x.day),
                        '-infinity'::pg_catalog.date) AS prev_day
          FROM analytics.usage_customer_day x) g
 GROUP BY g.day, g.prev_day;
INSERT INTO analytics.usage_customer (
    customer_identifier,
    -- rollup columns: list all -
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost,
    latency_sum,
    latency_count,
    ttft_sum,
    ttft_count,
    first_seen,
    last_seen,
    cached_tokens,
    -- end rollup columns
    active_days
)
SELECT d.customer_identifier,
       -- rollup columns: merge all d
       pg_catalog.sum(d.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(d.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(d.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(d.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(d.cost) AS cost,
       pg_catalog.sum(d.latency_sum) AS latency_sum,
       pg_catalog.sum(d.latency_count)::pg_catalog.int8 AS latency_count,
       pg_catalog.sum(d.ttft_sum) AS ttft_sum,
       pg_catalog.sum(d.ttft_count)::pg_catalog.int8 AS ttft_count,
       pg_catalog.min(d.first_seen) AS first_seen,
       pg_catalog.max(d.last_seen) AS last_seen,
       pg_catalog.sum(d.cached_tokens)::pg_catalog.int8 AS cached_tokens,
       -- end rollup columns
       pg_catalog.count(DISTINCT d.day)
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier;
INSERT INTO analytics.usage_customer (customer_identifier)
SELECT c.customer_identifier
  FROM analytics.customers c
 WHERE NOT EXISTS (SELECT 1 FROM analytics.usage_customer u
                    WHERE u.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier);
$$;
COMMENT ON FUNCTION analytics._rollup_rebuild_summaries() IS
    'Internal: rebuilds usage_customer_day, usage_day, usage_day_gaps and usage_customer from usage_daily (usage_customer with a row of zeros for each customer without logs).';
