-- Piece 41: the pending-log reader, the other half of the fold (rollup.c).
--
-- The logs a node has not folded in yet (the pending condition below) are
-- counted by the views from the raw logs, aggregated like the rollups, so
-- that a view equals the same GROUP BY over the raw logs at any moment.
-- _usage_live and _usage_customer_day_live are the rollups plus these
-- pending logs, in the rollups' shapes; _usage_day is the per-day totals.
-- Everything here is a plain view, which Citus pushes down: one snapshot
-- reads a customer's rollup rows and its pending logs (one shard task on a
-- cluster).  See src/README.md, "How the views stay exact".

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

-- The logs not folded in yet (the pending condition above, with a
-- customer), aggregated like usage_daily (the same aggregates as the
-- fold's).  A view, grouped by customer_identifier first, so that Citus
-- pushes it down to the shards; the pending functions run on the node of
-- each shard task and read that node's state.  The time zone is read once
-- per statement (an uncorrelated subquery; on a cluster every node keeps the
-- same one).  On a single node the planner reads the pending ids by the
-- primary key (the functions are evaluated once per scan, so they are index
-- conditions).
CREATE VIEW analytics._usage_pending AS
SELECT l.customer_identifier,
       (l.created_at AT TIME ZONE (SELECT s.timezone FROM analytics.rollup_state s))::date AS day,
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
       pg_catalog.max(l.created_at) AS last_seen,
       pg_catalog.sum(l.cached_tokens) AS cached_tokens
       -- end rollup columns
  FROM analytics.logs l
 WHERE ((l.id OPERATOR(pg_catalog.>) analytics._fold_watermark()
         AND l.id OPERATOR(pg_catalog.<=) analytics._fold_id_last())
        OR l.id OPERATOR(pg_catalog.=) ANY (analytics._fold_gap_ids()))
   -- with a customer: not null, nor '' (a log without one on a Citus
   -- cluster, src/shards.c)
   AND l.customer_identifier OPERATOR(pg_catalog.<>) ''
 GROUP BY l.customer_identifier, 2, l.model;
COMMENT ON VIEW analytics._usage_pending IS
    'Internal: the logs not folded in yet (src/pending.c), aggregated per customer, day and model like usage_daily.';
COMMENT ON COLUMN analytics._usage_pending.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_pending.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics._usage_pending.model IS 'Model name as logged.';
-- rollup columns: comments all _usage_pending
COMMENT ON COLUMN analytics._usage_pending.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_pending.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_pending.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_pending.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_pending.cost IS 'Sum of cost (USD, before markup).';
COMMENT ON COLUMN analytics._usage_pending.latency_sum IS 'Sum of non-null latency.';
COMMENT ON COLUMN analytics._usage_pending.latency_count IS 'Logs with a latency.';
COMMENT ON COLUMN analytics._usage_pending.ttft_sum IS 'Sum of non-null time_to_first_token.';
COMMENT ON COLUMN analytics._usage_pending.ttft_count IS 'Logs with a time_to_first_token.';
COMMENT ON COLUMN analytics._usage_pending.first_seen IS 'Earliest created_at.';
COMMENT ON COLUMN analytics._usage_pending.last_seen IS 'Latest created_at.';
COMMENT ON COLUMN analytics._usage_pending.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns

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
       d.last_seen,
       d.cached_tokens
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
       p.last_seen,
       p.cached_tokens
       -- end rollup columns
  FROM analytics._usage_pending p;

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
COMMENT ON COLUMN analytics._usage_live.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns

-- The pending logs per customer and day, with whether the pair is a new
-- active day (no usage_customer_day row yet): a join on the customer, so
-- that on a cluster the rollup row and the pending logs of a customer are
-- read by one shard task, in one snapshot.  A caller that does not use
-- new_day has the join removed (the key of usage_customer_day).
CREATE VIEW analytics._usage_customer_day_pending AS
SELECT p.customer_identifier, p.day,
       -- rollup columns: list per_day p
       p.requests,
       p.errors,
       p.prompt_tokens,
       p.completion_tokens,
       p.cost,
       -- end rollup columns
       x.customer_identifier IS NULL AS new_day
  FROM (SELECT q.customer_identifier, q.day,
               -- rollup columns: merge per_day q last
               pg_catalog.sum(q.requests)::pg_catalog.int8 AS requests,
               pg_catalog.sum(q.errors)::pg_catalog.int8 AS errors,
               pg_catalog.sum(q.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
               pg_catalog.sum(q.completion_tokens)::pg_catalog.int8 AS completion_tokens,
               pg_catalog.sum(q.cost) AS cost
               -- end rollup columns
          FROM analytics._usage_pending q
         GROUP BY q.customer_identifier, q.day) p
  LEFT JOIN analytics.usage_customer_day x
         ON x.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
        AND x.day OPERATOR(pg_catalog.=) p.day;
COMMENT ON VIEW analytics._usage_customer_day_pending IS
    'Internal: the logs not folded in yet per customer and day, and whether the customer had no rollup row for that day yet.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.day IS 'Calendar day of created_at in the rollup time zone.';
-- rollup columns: comments per_day _usage_customer_day_pending
COMMENT ON COLUMN analytics._usage_customer_day_pending.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.cost IS 'Sum of cost (USD, before markup).';
-- end rollup columns
COMMENT ON COLUMN analytics._usage_customer_day_pending.new_day IS 'True when usage_customer_day has no row for the customer and day yet: one more active day.';

-- The keys of the pending logs, for the outer condition of analytics.users
-- and analytics.cost_by_user (50_views.sql), which drops the rollup rows
-- that their pending arm replaces: the customers, and the (customer, day)
-- pairs, with logs not folded in yet.  The condition must stay a hashed
-- subplan (one hash table, a probe per row), whatever the planner expects
-- of the pending logs: estimated large (after a bulk load, all of it
-- pending) it would be a plain subplan, a scan of the whole list per row,
-- quadratic over the Users page.  So on a single node the keys come from a
-- set-returning function estimated at 100 rows; the hash table holds what
-- it returns, however many.  STABLE: it reads the caller's snapshot.  (A
-- Citus cluster reads users and cost_by_user in another shape, which does
-- not use these: 50_views.sql.)
CREATE FUNCTION analytics._pending_customer_keys()
RETURNS TABLE (customer_identifier text)
LANGUAGE plpgsql STABLE ROWS 100 SET search_path = pg_catalog, analytics AS $$
BEGIN
    RETURN QUERY SELECT DISTINCT g.customer_identifier FROM analytics._usage_pending g;
END;
$$;
COMMENT ON FUNCTION analytics._pending_customer_keys() IS
    'Internal: the customers with logs not folded in yet (estimated small, so that the condition reading it stays a hashed subplan).';
CREATE FUNCTION analytics._pending_customer_day_keys()
RETURNS TABLE (customer_identifier text, day date)
LANGUAGE plpgsql STABLE ROWS 100 SET search_path = pg_catalog, analytics AS $$
BEGIN
    RETURN QUERY SELECT DISTINCT g.customer_identifier, g.day FROM analytics._usage_pending g;
END;
$$;
COMMENT ON FUNCTION analytics._pending_customer_day_keys() IS
    'Internal: the (customer, day) pairs with logs not folded in yet (estimated small, so that the condition reading it stays a hashed subplan).';
CREATE VIEW analytics._pending_customers AS
SELECT k.customer_identifier FROM analytics._pending_customer_keys() k;
COMMENT ON VIEW analytics._pending_customers IS
    'Internal: the customers with logs not folded in yet.';
COMMENT ON COLUMN analytics._pending_customers.customer_identifier IS 'The customer.';
CREATE VIEW analytics._pending_customer_days AS
SELECT k.customer_identifier, k.day FROM analytics._pending_customer_day_keys() k;
COMMENT ON VIEW analytics._pending_customer_days IS
    'Internal: the (customer, day) pairs with logs not folded in yet.';
COMMENT ON COLUMN analytics._pending_customer_days.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._pending_customer_days.day IS 'Calendar day of created_at in the rollup time zone.';

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
  FROM analytics._usage_customer_day_pending p;
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

-- The per-day totals of the rollups (every customer), with
-- customer_identifier null.  On a single node usage_day; analytics.distribute()
-- replaces it by the rows of usage_customer_day (one active user each, with
-- their customer), as usage_day is node-local and not kept on a cluster.
-- Consumers sum per day: with the customer in the same place as in the
-- pending views, Citus pushes a UNION ALL of the two down to the shards, so
-- that each shard task reads its rollup rows and its pending logs in one
-- snapshot and the coordinator adds the shards' per-day sums.
CREATE VIEW analytics._usage_day AS
SELECT NULL::text AS customer_identifier, d.day, d.active_users,
       -- rollup columns: list per_day d last
       d.requests,
       d.errors,
       d.prompt_tokens,
       d.completion_tokens,
       d.cost
       -- end rollup columns
  FROM analytics.usage_day d;
COMMENT ON VIEW analytics._usage_day IS
    'Internal: the per-day totals of the rollups (usage_day; on a Citus cluster the rows of usage_customer_day), to be summed per day.';
COMMENT ON COLUMN analytics._usage_day.customer_identifier IS 'Null on a single node (the row covers every customer); on a cluster the customer of the row.';
COMMENT ON COLUMN analytics._usage_day.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics._usage_day.active_users IS 'Customers with at least one folded log that day.';
-- rollup columns: comments per_day _usage_day
COMMENT ON COLUMN analytics._usage_day.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_day.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_day.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_day.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_day.cost IS 'Sum of cost (USD, before markup).';
-- end rollup columns
