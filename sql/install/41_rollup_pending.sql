-- Piece 41: the pending-log reader, the other half of the fold (rollup.c).
--
-- The logs above rollup_state.watermark, and those inside a range of
-- rollup_gaps, are not folded in yet; the views count them from the raw
-- logs, aggregated like the rollups, so that a view equals the same GROUP
-- BY over the raw logs at any moment.  _usage_live and
-- _usage_customer_day_live are the rollups plus these pending logs, in the
-- rollups' shapes.  One snapshot must read the watermark, the gaps and the
-- rollups: see src/README.md, "How the views stay exact".

-- The ids of the logs inside a gap that the caller's snapshot sees (those
-- committed since the fold recorded the gap), or null.  One statement, one
-- index range scan per gap (LATERAL keeps the gaps outside: a join the other
-- way round reads every gap for every log); jit off, since the gaps table is
-- rarely analyzed and a guess of its size can make a query that reads
-- nothing look worth compiling.
CREATE FUNCTION analytics._rollup_gap_ids() RETURNS bigint[]
LANGUAGE sql STABLE SET search_path = pg_catalog, analytics SET jit = off AS $$
SELECT CASE WHEN pg_catalog.count(x.id) OPERATOR(pg_catalog.>) 0 THEN pg_catalog.array_agg(x.id) END
  FROM analytics.rollup_gaps g CROSS JOIN LATERAL (
       SELECT l.id FROM analytics.logs l
        WHERE l.id OPERATOR(pg_catalog.>=) g.lo AND l.id OPERATOR(pg_catalog.<=) g.hi
       OFFSET 0) x
$$;
COMMENT ON FUNCTION analytics._rollup_gap_ids() IS
    'Internal: the ids of the logs inside a rollup gap that the caller sees (null: none).';

-- The logs not folded in yet (id above the watermark or inside a gap, with
-- a customer), aggregated like usage_daily (the same aggregates as the
-- fold's).  plpgsql so that the watermark and the ids of the logs in gaps
-- (a few: those committed since the last fold) are known values when the
-- query is planned: the planner then reads the few pending logs through the
-- primary key (or all logs, when nothing is folded) instead of guessing.
-- STABLE: every statement runs in the caller's snapshot, so the watermark
-- and gaps read here match the usage_daily the caller reads.  EXECUTE
-- passes the values as parameters; only one of two fixed conditions is
-- pasted in.
CREATE FUNCTION analytics._pending_usage()
RETURNS TABLE (
    customer_identifier text, day date, model text,
    -- rollup columns: returns all last
    requests bigint,
    errors bigint,
    prompt_tokens bigint,
    completion_tokens bigint,
    cost numeric,
    latency_sum double precision,
    latency_count bigint,
    ttft_sum double precision,
    ttft_count bigint,
    first_seen timestamptz,
    last_seen timestamptz
    -- end rollup columns
)
LANGUAGE plpgsql STABLE ROWS 1000 SET search_path = pg_catalog, analytics AS $$
DECLARE
    wm bigint;
    tz text;
    gap_ids bigint[];
BEGIN
    SELECT s.watermark, s.timezone INTO wm, tz FROM analytics.rollup_state s;
    gap_ids := analytics._rollup_gap_ids();
    RETURN QUERY EXECUTE $q$
        SELECT l.customer_identifier,
               (l.created_at AT TIME ZONE $2)::date,
               l.model,
               -- rollup columns: log all last
               pg_catalog.count(*) AS requests,
               pg_catalog.count(*) FILTER (WHERE l.status_code OPERATOR(pg_catalog.>=) 400) AS errors,
               pg_catalog.sum(l.prompt_tokens) AS prompt_tokens,
               pg_catalog.sum(l.completion_tokens) AS completion_tokens,
               pg_catalog.sum(l.cost) AS cost,
               COALESCE(pg_catalog.sum(l.latency), 0) AS latency_sum,
               pg_catalog.count(l.latency) AS latency_count,
               COALESCE(pg_catalog.sum(l.time_to_first_token), 0) AS ttft_sum,
               pg_catalog.count(l.time_to_first_token) AS ttft_count,
               pg_catalog.min(l.created_at) AS first_seen,
               pg_catalog.max(l.created_at) AS last_seen
               -- end rollup columns
          FROM analytics.logs l
         WHERE $q$ || CASE WHEN gap_ids IS NULL THEN 'l.id OPERATOR(pg_catalog.>) $1'
                           ELSE '(l.id OPERATOR(pg_catalog.>) $1 OR l.id OPERATOR(pg_catalog.=) ANY ($3))'
                      END || $q$
           AND l.customer_identifier IS NOT NULL
         GROUP BY 1, 2, 3$q$
    USING wm, tz, gap_ids;
END;
$$;
COMMENT ON FUNCTION analytics._pending_usage() IS
    'Internal: the logs not folded in yet (above the rollup watermark or inside a gap), aggregated per customer, day and model like usage_daily.';

-- usage_daily plus the logs not folded in yet, in the shape of usage_daily.
-- A (customer, day, model) may appear twice, once folded and once pending:
-- callers sum.  Quals on customer_identifier, day or model reach
-- usage_daily's indexes; the pending part is small and read whole.
CREATE VIEW analytics._usage_live AS
SELECT d.customer_identifier, d.day, d.model,
       -- rollup columns: list all d last
       d.requests,
       d.errors,
       d.prompt_tokens,
       d.completion_tokens,
       d.cost,
       d.latency_sum,
       d.latency_count,
       d.ttft_sum,
       d.ttft_count,
       d.first_seen,
       d.last_seen
       -- end rollup columns
  FROM analytics.usage_daily d
UNION ALL
SELECT p.customer_identifier, p.day, p.model,
       -- rollup columns: list all p last
       p.requests,
       p.errors,
       p.prompt_tokens,
       p.completion_tokens,
       p.cost,
       p.latency_sum,
       p.latency_count,
       p.ttft_sum,
       p.ttft_count,
       p.first_seen,
       p.last_seen
       -- end rollup columns
  FROM analytics._pending_usage() p;

COMMENT ON VIEW analytics._usage_live IS
    'Internal: usage_daily plus the logs not folded in yet, same columns; a (customer, day, model) may appear in two rows, sum them.';
COMMENT ON COLUMN analytics._usage_live.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_live.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics._usage_live.model IS 'Model name as logged.';
-- rollup columns: comments all _usage_live
COMMENT ON COLUMN analytics._usage_live.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_live.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_live.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_live.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_live.cost IS 'Sum of cost (USD, before markup).';
COMMENT ON COLUMN analytics._usage_live.latency_sum IS 'Sum of non-null latency.';
COMMENT ON COLUMN analytics._usage_live.latency_count IS 'Logs with a latency.';
COMMENT ON COLUMN analytics._usage_live.ttft_sum IS 'Sum of non-null time_to_first_token.';
COMMENT ON COLUMN analytics._usage_live.ttft_count IS 'Logs with a time_to_first_token.';
COMMENT ON COLUMN analytics._usage_live.first_seen IS 'Earliest created_at.';
COMMENT ON COLUMN analytics._usage_live.last_seen IS 'Latest created_at.';
-- end rollup columns

-- The pending logs per customer and day, with whether the pair is a new
-- active day (no usage_customer_day row yet).  SQL, so the planner inlines
-- it; the NOT EXISTS reads usage_customer_day in the caller's snapshot, the
-- one _pending_usage() reads the watermark in.
CREATE FUNCTION analytics._pending_customer_day()
RETURNS TABLE (
    customer_identifier text, day date,
    -- rollup columns: returns per_day
    requests bigint,
    errors bigint,
    prompt_tokens bigint,
    completion_tokens bigint,
    cost numeric,
    -- end rollup columns
    new_day boolean
)
LANGUAGE sql STABLE ROWS 1000 AS $$
SELECT p.customer_identifier, p.day,
       -- rollup columns: merge per_day p
       pg_catalog.sum(p.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(p.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(p.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(p.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(p.cost) AS cost,
       -- end rollup columns
       NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day x
                    WHERE x.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
                      AND x.day OPERATOR(pg_catalog.=) p.day)
  FROM analytics._pending_usage() p
 GROUP BY p.customer_identifier, p.day
$$;
COMMENT ON FUNCTION analytics._pending_customer_day() IS
    'Internal: the logs not folded in yet per customer and day, and whether the customer had no rollup row for that day yet.';

-- usage_customer_day plus the logs not folded in yet, in its shape.  A
-- (customer, day) may appear twice: callers sum.
CREATE VIEW analytics._usage_customer_day_live AS
SELECT x.customer_identifier, x.day,
       -- rollup columns: list per_day x last
       x.requests,
       x.errors,
       x.prompt_tokens,
       x.completion_tokens,
       x.cost
       -- end rollup columns
  FROM analytics.usage_customer_day x
UNION ALL
SELECT p.customer_identifier, p.day,
       -- rollup columns: list per_day p last
       p.requests,
       p.errors,
       p.prompt_tokens,
       p.completion_tokens,
       p.cost
       -- end rollup columns
  FROM analytics._pending_customer_day() p;
COMMENT ON VIEW analytics._usage_customer_day_live IS
    'Internal: usage_customer_day plus the logs not folded in yet, same columns; a (customer, day) may appear in two rows, sum them.';
COMMENT ON COLUMN analytics._usage_customer_day_live.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_customer_day_live.day IS 'Calendar day of created_at in the rollup time zone.';
-- rollup columns: comments per_day _usage_customer_day_live
COMMENT ON COLUMN analytics._usage_customer_day_live.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_customer_day_live.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_customer_day_live.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_live.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_live.cost IS 'Sum of cost (USD, before markup).';
-- end rollup columns

-- The pending condition, node by node (src/pending.c): a log l is not
-- folded in yet when
--   (l.id > analytics._fold_watermark() AND l.id <= analytics._fold_id_last())
--   OR l.id = ANY (analytics._fold_gap_ids())
-- On a Citus cluster these run on the node of each shard task and read that
-- node's state.
CREATE FUNCTION analytics._fold_watermark() RETURNS bigint
    AS 'MODULE_PATHNAME', 'pending_watermark' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION analytics._fold_watermark() IS
    'Internal: this node''s rollup watermark (the pending condition, src/pending.c).';
CREATE FUNCTION analytics._fold_id_last() RETURNS bigint
    AS 'MODULE_PATHNAME', 'pending_id_last' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION analytics._fold_id_last() IS
    'Internal: the greatest log id this node draws (the greatest bigint on a single node).';
CREATE FUNCTION analytics._fold_gap_ids() RETURNS bigint[]
    AS 'MODULE_PATHNAME', 'pending_gap_ids' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION analytics._fold_gap_ids() IS
    'Internal: the ids of this node''s logs inside a rollup gap that the caller sees (null: none).';
