-- Piece 50: the views and functions for people and BI tools (SPEC section 6).
--
-- Every figure is real time: it reads the rollups (the logs folded in,
-- including those purge_logs() removed since) plus the logs not folded in
-- yet (41_rollup_pending.sql), in one statement: one snapshot sees both
-- sides of a fold-in or neither.  No function here reads the fold's state
-- into a variable and queries later: under READ COMMITTED a fold-in could
-- commit in between and count logs twice.
--
-- Everything here plans on a Citus cluster through the coordinator:
-- per-customer work is grouped or joined by customer_identifier (pushed
-- down, a customer's rollup rows and pending logs in one shard task), no
-- set-returning function reads a distributed table in FROM, and the
-- functions that read tables with parameters are plpgsql (Citus plans
-- their statements; it cannot plan a LANGUAGE sql function's).
--
-- A day is a calendar day in rollup_state.timezone.  Functions taking
-- since/until count every day that overlaps [since, until) in full: the day
-- containing since counts, the day containing until counts unless until is
-- exactly its midnight.  A null since or until is unbounded.

-- Raise the house error for a bad argument of the functions below.  Declared
-- IMMUTABLE so that SQL functions calling it stay inlinable.
CREATE FUNCTION analytics._argument_error(argument text, got text, expected text)
RETURNS void LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
BEGIN
    RAISE EXCEPTION 'invalid value for argument "%"', argument
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('Got %s.', coalesce('"' || got || '"', 'null')),
              HINT = format('Use %s.', expected);
END;
$$;
COMMENT ON FUNCTION analytics._argument_error(text, text, text) IS
    'Internal: raises SQLSTATE 22023 naming a bad argument of a view function.';

-- {start, end} of the budget period containing as_of (C, views.c).
-- Marked expensive so that analytics.users computes it only for the rows
-- it returns after ORDER BY ... LIMIT.
CREATE FUNCTION analytics._period_bounds(anchor timestamptz, duration text,
                                         as_of timestamptz, zone text)
RETURNS timestamptz[]
AS 'MODULE_PATHNAME', 'views_period_bounds'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100;
COMMENT ON FUNCTION analytics._period_bounds(timestamptz, text, timestamptz, text) IS
    'Internal: {start, end} of the budget period containing as_of, in calendar arithmetic on local time in the given zone.';

-- The budget period [anchor + k*d, anchor + (k+1)*d) that contains as_of,
-- in calendar arithmetic on local time in the rollup time zone: an anchor
-- on Jan 31 gives Feb 28 (29), Mar 31, Apr 30...
CREATE FUNCTION analytics.current_period(anchor timestamptz, duration text,
                                         as_of timestamptz DEFAULT now())
RETURNS TABLE (period_start timestamptz, period_end timestamptz)
LANGUAGE sql STABLE AS $$
SELECT b.b[1], b.b[2]
  FROM (SELECT analytics._period_bounds(anchor, duration, as_of,
                                        (SELECT s.timezone FROM analytics.rollup_state s)) AS b
        OFFSET 0) b
$$;
COMMENT ON FUNCTION analytics.current_period(timestamptz, text, timestamptz) IS
    'The budget period [anchor + k*duration, anchor + (k+1)*duration) containing as_of, in calendar arithmetic in the rollup time zone.';

-- The model with the most requests in a group, ties to the first name in
-- sort order (C, views.c): one pass over the rollups for analytics.users.
CREATE FUNCTION analytics._top_model_step(internal, text, bigint) RETURNS internal
AS 'MODULE_PATHNAME', 'views_top_model_step' LANGUAGE C CALLED ON NULL INPUT;
COMMENT ON FUNCTION analytics._top_model_step(internal, text, bigint) IS
    'Internal: transition function of analytics._top_model.';
CREATE FUNCTION analytics._top_model_final(internal) RETURNS text
AS 'MODULE_PATHNAME', 'views_top_model_final' LANGUAGE C;
COMMENT ON FUNCTION analytics._top_model_final(internal) IS
    'Internal: final function of analytics._top_model.';
CREATE AGGREGATE analytics._top_model(text, bigint) (
    SFUNC = analytics._top_model_step,
    STYPE = internal,
    FINALFUNC = analytics._top_model_final
);
COMMENT ON AGGREGATE analytics._top_model(text, bigint) IS
    'Internal: the model with the most requests (summed per model), ties to the first name in sort order.';

-- The model with the most requests among the given (model, requests)
-- pairs.  analytics.users passes a customer's usage_daily pairs and its
-- pending ones; SQL that reads no table, so it runs wherever the row is.
CREATE FUNCTION analytics._top_model_in(models text[], requests bigint[])
RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT analytics._top_model(t.model, t.requests) FROM unnest(models, requests) t(model, requests)
$$;
COMMENT ON FUNCTION analytics._top_model_in(text[], bigint[]) IS
    'Internal: the model with the most requests among the given (model, requests) pairs.';

-- The five models with the highest cost among the given (model, requests,
-- cost) triples, summed per model: a jsonb array of {"model", "requests",
-- "cost"} by cost, then requests, descending, then model name in byte order
-- (COLLATE "C": the same on every node whatever the database's collation);
-- [] for no triples.  Five at most: a writer names the models, and a
-- customer with a million of them must not make one row of analytics.users
-- huge.  The cost is the exact numeric sum (jsonb keeps numeric values).
-- analytics.users passes a customer's usage_daily rows and its pending ones,
-- as for _top_model_in: SQL that reads no table, so it runs wherever the
-- row is.
CREATE FUNCTION analytics._top_models_in(models text[], requests bigint[], costs numeric[])
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                    'model', t.model, 'requests', t.requests, 'cost', t.cost)
                ORDER BY t.cost DESC, t.requests DESC, t.model COLLATE "C"),
                '[]'::jsonb)
  FROM (SELECT u.model, pg_catalog.sum(u.requests)::bigint AS requests, pg_catalog.sum(u.cost) AS cost
          FROM unnest(models, requests, costs) u(model, requests, cost)
         WHERE u.model IS NOT NULL
         GROUP BY u.model
         ORDER BY 3 DESC, 2 DESC, u.model COLLATE "C"
         LIMIT 5) t
$$;
COMMENT ON FUNCTION analytics._top_models_in(text[], bigint[], numeric[]) IS
    'Internal: the 5 models with the highest cost among the given (model, requests, cost) triples, summed per model, as a jsonb array of {"model", "requests", "cost"}; [] for none.';

-- The calendar months (in the given time zone) from the month of since
-- through the month of as_of, both counted: 1 when they are the same month,
-- and when since is later (a log created in the future); null for a null
-- since.  The divisor of analytics.users.average_monthly_cost.
CREATE FUNCTION analytics._calendar_months(since timestamptz, as_of timestamptz, zone text)
RETURNS integer LANGUAGE sql IMMUTABLE AS $$
SELECT pg_catalog.int4larger(1,
           ((pg_catalog.date_part('year', as_of AT TIME ZONE zone)
             - pg_catalog.date_part('year', since AT TIME ZONE zone)) * 12
            + pg_catalog.date_part('month', as_of AT TIME ZONE zone)
            - pg_catalog.date_part('month', since AT TIME ZONE zone) + 1)::integer)
$$;
COMMENT ON FUNCTION analytics._calendar_months(timestamptz, timestamptz, text) IS
    'Internal: calendar months in the given time zone from the month of since through the month of as_of, both included (at least 1; null for a null since).';

-- One row per customer, as two arms of a UNION ALL joined to customers:
--   x1, usage_customer alone (every customer has a row, zeros without
--       logs: 40_rollup.sql), for the customers without pending logs;
--   x2, the customers with pending logs: their usage_customer row plus the
--       pending logs aggregated per customer (a pending (customer, day)
--       without a usage_customer_day row is one more active day).
-- Why this shape: the first page, ORDER BY <column> ... LIMIT 50 for the
-- sort columns of the Users page, is then a merge of an index scan of
-- usage_customer (whose indexes are on exactly these expressions, with the
-- customer) and the few pending customers sorted: the planner flattens the
-- UNION ALL into an append relation because x1 is one table without a
-- WHERE clause, and the outer condition, which drops from x1 the customers
-- that x2 has (a hashed subplan over the pending logs), becomes a filter of
-- that index scan.  The cost of a page depends on the pending logs, not on
-- the number of customers.  Both arms carry the customer in the same place
-- and join customers on it, so a shard task of a Citus cluster reads all of
-- a customer's parts.
-- The pending customers read their usage_customer row and their
-- usage_customer_day rows by primary key probes, one per customer and day
-- (a lateral subquery that cannot be flattened, a correlated NOT EXISTS),
-- never a scan of those tables: a hash join would read every customer.
-- On a Citus cluster distribute() makes this view read _users_on_cluster,
-- the shape Citus pushes down (a LEFT JOIN by customer).
-- top_model, top_models and period_spend are correlated subqueries on the
-- customer (index scans of usage_daily and of the raw logs by
-- (customer_identifier, created_at)), expensive enough that the planner
-- evaluates them after ORDER BY ... LIMIT; period_spend reads the raw logs,
-- the same sum and markup as check_budget() (30_budget.sql).
-- average_monthly_cost divides by the calendar months of the customer in
-- the rollup time zone (_calendar_months).
CREATE VIEW analytics.users AS
SELECT c.customer_identifier,
       c.name,
       c.email,
       c.metadata,
       c.created_at,
       x.first_seen,
       x.last_active,
       x.active_days,
       x.requests,
       x.errors,
       x.prompt_tokens,
       x.completion_tokens,
       x.total_tokens,
       x.cost,
       x.cost * (1 + c.markup_percentage / 100) AS billed_cost,
       x.latency_sum / nullif(x.latency_count, 0) AS avg_latency,
       x.ttft_sum / nullif(x.ttft_count, 0) AS avg_ttft,
       analytics._top_model_in(
           (SELECT pg_catalog.array_agg(d.model ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || x.models,
           (SELECT pg_catalog.array_agg(d.requests ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || x.model_requests)
           AS top_model,
       c.period_budget,
       c.budget_duration,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1] AS period_start,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2] AS period_end,
       analytics._budget_billed(
           (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
             WHERE l.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier
               AND l.created_at >= (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1]
               AND l.created_at < (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2]),
           c.markup_percentage) AS period_spend,
       c.total_budget,
       x.cost * (1 + c.markup_percentage / 100) AS total_spend,
       c.blocked,
       x.cached_tokens,
       x.cached_tokens::numeric / nullif(x.prompt_tokens, 0) AS cache_hit_rate,
       (SELECT analytics._top_models_in(pg_catalog.array_agg(d.model) || x.models,
                                        pg_catalog.array_agg(d.requests) || x.model_requests,
                                        pg_catalog.array_agg(d.cost) || x.model_costs)
          FROM analytics.usage_daily d
         WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) AS top_models,
       x.cost / analytics._calendar_months(x.first_seen, now(), z.timezone) AS average_monthly_cost
  FROM (SELECT u.customer_identifier,
               u.first_seen,
               u.last_seen AS last_active,
               u.active_days,
               u.requests,
               u.errors,
               u.prompt_tokens,
               u.completion_tokens,
               u.prompt_tokens + u.completion_tokens AS total_tokens,
               u.cost,
               u.latency_sum,
               u.latency_count,
               u.ttft_sum,
               u.ttft_count,
               u.cached_tokens,
               NULL::text[] AS models,
               NULL::bigint[] AS model_requests,
               NULL::numeric[] AS model_costs,
               false AS pending
          FROM analytics.usage_customer u
        UNION ALL
        SELECT p.customer_identifier,
               LEAST(u.first_seen, p.first_seen),
               GREATEST(u.last_seen, p.last_seen),
               coalesce(u.active_days, 0) + p.new_days,
               coalesce(u.requests, 0) + p.requests,
               coalesce(u.errors, 0) + p.errors,
               coalesce(u.prompt_tokens, 0) + p.prompt_tokens,
               coalesce(u.completion_tokens, 0) + p.completion_tokens,
               coalesce(u.prompt_tokens + u.completion_tokens, 0) + p.prompt_tokens + p.completion_tokens,
               coalesce(u.cost, 0) + p.cost,
               coalesce(u.latency_sum, 0) + p.latency_sum,
               coalesce(u.latency_count, 0) + p.latency_count,
               coalesce(u.ttft_sum, 0) + p.ttft_sum,
               coalesce(u.ttft_count, 0) + p.ttft_count,
               coalesce(u.cached_tokens, 0) + p.cached_tokens,
               p.models,
               p.model_requests,
               p.model_costs,
               true
          FROM (SELECT g.customer_identifier,
                       min(g.first_seen) AS first_seen,
                       max(g.last_seen) AS last_seen,
                       count(DISTINCT g.day) FILTER (
                           WHERE NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day d
                                              WHERE d.customer_identifier OPERATOR(pg_catalog.=) g.customer_identifier
                                                AND d.day OPERATOR(pg_catalog.=) g.day)) AS new_days,
                       sum(g.requests)::bigint AS requests,
                       sum(g.errors)::bigint AS errors,
                       sum(g.prompt_tokens)::bigint AS prompt_tokens,
                       sum(g.completion_tokens)::bigint AS completion_tokens,
                       sum(g.cost) AS cost,
                       sum(g.latency_sum) AS latency_sum,
                       sum(g.latency_count)::bigint AS latency_count,
                       sum(g.ttft_sum) AS ttft_sum,
                       sum(g.ttft_count)::bigint AS ttft_count,
                       sum(g.cached_tokens)::bigint AS cached_tokens,
                       array_agg(g.model) AS models,
                       array_agg(g.requests) AS model_requests,
                       array_agg(g.cost) AS model_costs
                  FROM analytics._usage_pending g
                 GROUP BY g.customer_identifier) p
          LEFT JOIN LATERAL (SELECT u.* FROM analytics.usage_customer u
                              WHERE u.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
                             OFFSET 0) u ON true) x
  JOIN analytics.customers c ON c.customer_identifier = x.customer_identifier
 CROSS JOIN (SELECT s.timezone FROM analytics.rollup_state s) z
 WHERE x.pending
    OR x.customer_identifier NOT IN (SELECT k.customer_identifier FROM analytics._pending_customers k);

COMMENT ON VIEW analytics.users IS
    'The Users page: one row per customer, including customers with no logs, with usage over all time (real time: rollups plus pending logs). Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON COLUMN analytics.users.customer_identifier IS 'The application''s id for the end user.';
COMMENT ON COLUMN analytics.users.name IS 'Display name.';
COMMENT ON COLUMN analytics.users.email IS 'Email address.';
COMMENT ON COLUMN analytics.users.metadata IS 'The customer''s free-form JSON.';
COMMENT ON COLUMN analytics.users.created_at IS 'When the customer row was created.';
COMMENT ON COLUMN analytics.users.first_seen IS 'created_at of the customer''s first log; null without logs.';
COMMENT ON COLUMN analytics.users.last_active IS 'created_at of the customer''s latest log; null without logs.';
COMMENT ON COLUMN analytics.users.active_days IS 'Calendar days (rollup time zone) with at least one log.';
COMMENT ON COLUMN analytics.users.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.users.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.users.prompt_tokens IS 'Sum of prompt tokens.';
COMMENT ON COLUMN analytics.users.completion_tokens IS 'Sum of completion tokens.';
COMMENT ON COLUMN analytics.users.total_tokens IS 'Sum of prompt and completion tokens.';
COMMENT ON COLUMN analytics.users.cost IS 'USD, sum of log cost before markup.';
COMMENT ON COLUMN analytics.users.billed_cost IS 'USD, cost * (1 + markup_percentage / 100) with the customer''s current markup.';
COMMENT ON COLUMN analytics.users.avg_latency IS 'Mean latency in seconds over logs that have one.';
COMMENT ON COLUMN analytics.users.avg_ttft IS 'Mean time to first token in seconds over logs that have one.';
COMMENT ON COLUMN analytics.users.top_model IS 'Model with the most requests; ties go to the first name in sort order.';
COMMENT ON COLUMN analytics.users.period_budget IS 'USD budget per period (billed cost); null means none.';
COMMENT ON COLUMN analytics.users.budget_duration IS 'Length of a budget period: daily, weekly, monthly or yearly.';
COMMENT ON COLUMN analytics.users.period_start IS 'Start of the current budget period (see analytics.current_period).';
COMMENT ON COLUMN analytics.users.period_end IS 'End (exclusive) of the current budget period.';
COMMENT ON COLUMN analytics.users.period_spend IS 'USD, billed cost of the logs created in the current budget period.';
COMMENT ON COLUMN analytics.users.total_budget IS 'Lifetime USD budget (billed cost); null means none.';
COMMENT ON COLUMN analytics.users.total_spend IS 'USD, billed cost over all time.';
COMMENT ON COLUMN analytics.users.blocked IS 'True when the customer''s new logs are rejected.';
COMMENT ON COLUMN analytics.users.cached_tokens IS 'Prompt tokens read from a prompt cache (part of prompt_tokens, priced at the cached price).';
COMMENT ON COLUMN analytics.users.cache_hit_rate IS 'cached_tokens / prompt_tokens, a numeric from 0 to 1, not rounded (numeric division, at least 16 significant digits); null when prompt_tokens is 0 (no logs, or none with prompt tokens).';
COMMENT ON COLUMN analytics.users.top_models IS 'jsonb array of the 5 models (at most) with the highest cost over all time, each {"model": text, "requests": number (bigint), "cost": number (the exact numeric USD sum before markup)}, ordered by cost, then requests, descending, then model name in byte order; [] without logs. Capped at 5 because writers choose model names.';
COMMENT ON COLUMN analytics.users.average_monthly_cost IS 'USD (numeric, not rounded), cost divided by the calendar months (rollup time zone) from the month of first_seen through the current month, both included; null without logs.';

-- Window usage of the given customers: their usage_customer_day rows and,
-- when with_pending, their pending logs of the days in [d0, d1), one row
-- per customer with any, grouped by customer (pushed down on a cluster).
-- By the primary key of usage_customer_day (one descent per customer).  A
-- false with_pending skips reading the pending logs (a one-time filter).
CREATE FUNCTION analytics._usage_window(customers text[], d0 date, d1 date,
                                        with_pending boolean)
RETURNS TABLE (customer_identifier text, requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
BEGIN
    IF NOT with_pending THEN
        -- Two statements, not a constant-false branch: Citus on PostgreSQL
        -- 15 refuses an outer join next to a pseudoconstant qual.
        RETURN QUERY
        SELECT x.customer_identifier, sum(x.requests)::bigint,
               sum(x.prompt_tokens + x.completion_tokens)::bigint, sum(x.cost)
          FROM analytics.usage_customer_day x
         WHERE x.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
           AND x.day >= d0 AND x.day < d1
         GROUP BY x.customer_identifier;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT w.customer_identifier, sum(w.requests)::bigint, sum(w.total_tokens)::bigint, sum(w.cost)
      FROM (SELECT x.customer_identifier, x.requests,
                   x.prompt_tokens + x.completion_tokens AS total_tokens, x.cost
              FROM analytics.usage_customer_day x
             WHERE x.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
               AND x.day >= d0 AND x.day < d1
            UNION ALL
            SELECT p.customer_identifier, p.requests,
                   p.prompt_tokens + p.completion_tokens, p.cost
              FROM analytics._usage_customer_day_pending p
             WHERE p.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
               AND p.day >= d0 AND p.day < d1) w
     GROUP BY w.customer_identifier;
END;
$$;
COMMENT ON FUNCTION analytics._usage_window(text[], date, date, boolean) IS
    'Internal: requests, tokens and cost of the given customers over the days in [d0, d1), rollups plus (with_pending) the pending logs.';

-- The calendar days [d0, d1) of the rollup time zone that overlap
-- [since, until) (null: unbounded), in the caller's snapshot.
CREATE FUNCTION analytics._window_days(since timestamptz, until timestamptz,
                                       OUT d0 date, OUT d1 date)
LANGUAGE sql STABLE AS $$
SELECT (coalesce(since, '-infinity') AT TIME ZONE s.timezone)::date,
       ((coalesce(until, 'infinity') AT TIME ZONE s.timezone) - interval '1 microsecond')::date + 1
  FROM analytics.rollup_state s
$$;
COMMENT ON FUNCTION analytics._window_days(timestamptz, timestamptz) IS
    'Internal: the calendar days [d0, d1) of the rollup time zone that overlap [since, until).';

-- The text of a top_users metric over a row of usage_customer (all_time,
-- alias u) or of _usage_window (alias a): one of fixed texts pasted into a
-- query, never a value.
CREATE FUNCTION analytics._top_users_metric(metric text, all_time boolean)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN all_time
            THEN CASE metric WHEN 'cost' THEN 'u.cost' WHEN 'requests' THEN 'u.requests'
                             ELSE '(u.prompt_tokens + u.completion_tokens)' END
            ELSE CASE metric WHEN 'cost' THEN 'a.cost' WHEN 'requests' THEN 'a.requests'
                             ELSE 'a.total_tokens' END
       END
$$;
COMMENT ON FUNCTION analytics._top_users_metric(text, boolean) IS
    'Internal: the expression of a top_users metric over usage_customer (u) or _usage_window (a).';

-- The customers with logs not folded in yet in the days [d0, d1) that can
-- reach the threshold (see top_users): those whose all-time value, plus
-- the most that any one customer has pending in the window, reaches it (an
-- index range scan of usage_customer joined to the pending customers).  A
-- customer's value over the window is at most its folded all-time value
-- plus its own pending value.
CREATE FUNCTION analytics._top_users_near(d0 date, d1 date, metric text, threshold numeric)
RETURNS text[] LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    near text[];
BEGIN
    EXECUTE format(
        'WITH p AS MATERIALIZED ('
        '       SELECT p.customer_identifier, sum(%s) AS v '
        '         FROM analytics._usage_customer_day_pending p '
        '        WHERE p.day >= $1 AND p.day < $2 '
        '        GROUP BY p.customer_identifier) '
        'SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
        '              WHERE %s >= ($3 - (SELECT coalesce(max(p.v), 0) FROM p))::%s '
        '                AND u.customer_identifier IN (SELECT p.customer_identifier FROM p))',
        CASE metric WHEN 'cost' THEN 'p.cost' WHEN 'requests' THEN 'p.requests'
                    ELSE 'p.prompt_tokens + p.completion_tokens' END,
        analytics._top_users_metric(metric, true),
        CASE metric WHEN 'cost' THEN 'numeric' ELSE 'bigint' END)
       INTO near USING d0, d1, threshold;
    RETURN near;
END;
$$;
COMMENT ON FUNCTION analytics._top_users_near(date, date, text, numeric) IS
    'Internal: the customers with logs not folded in yet in the days [d0, d1) that can reach the threshold of top_users.';

-- Step one of the threshold top-n (see top_users): the window values of the
-- k customers with the highest all-time value, from their folded rows; when
-- n of them are active in the window, the n-th best is the threshold T.
-- Otherwise k grows x4.  Null when every customer was taken (or k passed a
-- million) before n were found.
CREATE FUNCTION analytics._top_users_threshold(d0 date, d1 date, metric text, n integer)
RETURNS numeric LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    top text[];
    k integer := n;
    found_n bigint;
    threshold numeric;
BEGIN
    LOOP
        EXECUTE format('SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
                       'WHERE u.requests OPERATOR(pg_catalog.>) 0 ORDER BY %s DESC LIMIT $1)',
                       analytics._top_users_metric(metric, true))
           INTO top USING k;
        EXECUTE format('SELECT count(*), min(t.v) FROM (SELECT %s AS v '
                       'FROM analytics._usage_window($1, $2, $3, false) a ORDER BY 1 DESC LIMIT $4) t',
                       analytics._top_users_metric(metric, false))
           INTO found_n, threshold USING top, d0, d1, n;
        IF found_n >= n THEN
            RETURN threshold;
        END IF;
        EXIT WHEN cardinality(top) < k OR k >= 1000000;
        k := k * 4;
    END LOOP;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION analytics._top_users_threshold(date, date, text, integer) IS
    'Internal: the n-th best window value among the customers of highest all-time value (top_users'' threshold), or null.';

-- Step two: only customers whose all-time value is at least the threshold
-- (an index range scan of usage_customer) and the pending ones that can
-- reach it (near) can be in the first n rows or rank above one of them;
-- their window values, with their pending logs, ranked.
CREATE FUNCTION analytics._top_users_above(d0 date, d1 date, metric text, n integer,
                                           near text[], threshold numeric)
RETURNS TABLE (rank bigint, customer_identifier text, name text, email text,
               requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    top text[];
BEGIN
    EXECUTE format('SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
                   'WHERE %s >= $1::%s AND u.requests OPERATOR(pg_catalog.>) 0)',
                   analytics._top_users_metric(metric, true),
                   CASE metric WHEN 'cost' THEN 'numeric' ELSE 'bigint' END)
       INTO top USING threshold;
    -- Every candidate has a customers row (a usage_customer row), so the
    -- join can come after the LIMIT.  The ranked rows are a materialized CTE:
    -- computed first (on a cluster, on the coordinator from the window's
    -- per-customer rows) and then joined to customers.
    RETURN QUERY EXECUTE format(
        'WITH r AS MATERIALIZED ('
        '       SELECT rank() OVER (ORDER BY %s DESC) AS rank, a.customer_identifier, '
        '              a.requests, a.total_tokens, a.cost '
        '         FROM analytics._usage_window($1, $2, $3, $5) a '
        '        ORDER BY 1, a.customer_identifier '
        '        LIMIT $4) '
        'SELECT r.rank, r.customer_identifier, c.name, c.email, '
        '       r.requests, r.total_tokens, r.cost '
        '  FROM r JOIN analytics.customers c ON c.customer_identifier OPERATOR(pg_catalog.=) r.customer_identifier '
        ' ORDER BY r.rank, r.customer_identifier', analytics._top_users_metric(metric, false))
    USING top || near, d0, d1, n, true;
END;
$$;
COMMENT ON FUNCTION analytics._top_users_above(date, date, text, integer, text[], numeric) IS
    'Internal: top_users ranked among the customers whose all-time value reaches the threshold, plus the pending ones that can reach it.';

-- When every customer active in the days [d0, d1) is ranked: whether to
-- read them as all-time totals minus the rows outside the window rather
-- than from usage_customer_day in the window (_usage_window_all), whichever
-- reads fewer rows (_usage_day's active_users counts the rows of each day).
CREATE FUNCTION analytics._top_users_reads_totals(d0 date, d1 date)
RETURNS boolean LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    totals numeric;
BEGIN
    SELECT greatest(r.reltuples, 0)::numeric INTO totals FROM pg_catalog.pg_class r
     WHERE r.oid OPERATOR(pg_catalog.=) 'analytics.usage_customer'::pg_catalog.regclass;
    RETURN (SELECT coalesce(sum(d.active_users) FILTER (WHERE d.day < d0 OR d.day >= d1), 0) + totals
                   < coalesce(sum(d.active_users) FILTER (WHERE d.day >= d0 AND d.day < d1), 0)
              FROM analytics._usage_day d);
END;
$$;
COMMENT ON FUNCTION analytics._top_users_reads_totals(date, date) IS
    'Internal: whether ranking every customer over [d0, d1) reads fewer rows from all-time totals than from the window''s days.';

-- Window usage of every customer active in the days [d0, d1), read from
-- all-time totals minus the rows outside the window (from_totals; numeric
-- and integer sums, so the difference is exact) or from the window's rows
-- of usage_customer_day, plus the pending logs of the window either way.
-- Grouped by customer, so pushed down on a cluster.
CREATE FUNCTION analytics._usage_window_all(d0 date, d1 date, from_totals boolean)
RETURNS TABLE (customer_identifier text, requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
BEGIN
    IF from_totals THEN
        RETURN QUERY
        SELECT a.customer_identifier, a.requests, a.total_tokens, a.cost
          FROM (SELECT coalesce(u.customer_identifier, p.customer_identifier) AS customer_identifier,
                       coalesce(u.requests, 0) - coalesce(o.requests, 0)
                           + coalesce(p.requests, 0) AS requests,
                       coalesce(u.prompt_tokens + u.completion_tokens, 0) - coalesce(o.total_tokens, 0)
                           + coalesce(p.total_tokens, 0) AS total_tokens,
                       coalesce(u.cost, 0) - coalesce(o.cost, 0) + coalesce(p.cost, 0) AS cost
                  FROM analytics.usage_customer u
                  LEFT JOIN (SELECT x.customer_identifier,
                                    sum(x.requests)::bigint AS requests,
                                    sum(x.prompt_tokens + x.completion_tokens)::bigint AS total_tokens,
                                    sum(x.cost) AS cost
                               FROM analytics.usage_customer_day x
                              WHERE x.day < d0 OR x.day >= d1
                              GROUP BY x.customer_identifier) o
                         ON o.customer_identifier = u.customer_identifier
                  FULL JOIN (SELECT q.customer_identifier,
                                    sum(q.requests)::bigint AS requests,
                                    sum(q.prompt_tokens + q.completion_tokens)::bigint AS total_tokens,
                                    sum(q.cost) AS cost
                               FROM analytics._usage_customer_day_pending q
                              WHERE q.day >= d0 AND q.day < d1
                              GROUP BY q.customer_identifier) p
                         ON p.customer_identifier = u.customer_identifier) a
         WHERE a.requests > 0;
    ELSE
        RETURN QUERY
        SELECT u.customer_identifier,
               sum(u.requests)::bigint,
               sum(u.prompt_tokens + u.completion_tokens)::bigint,
               sum(u.cost)
          FROM analytics._usage_customer_day_live u
         WHERE u.day >= d0 AND u.day < d1
         GROUP BY u.customer_identifier;
    END IF;
END;
$$;
COMMENT ON FUNCTION analytics._usage_window_all(date, date, boolean) IS
    'Internal: requests, tokens and cost of every customer active in the days [d0, d1), from all-time totals minus the rows outside or from the window''s rows.';

-- Customers ranked by a metric over the days overlapping [since, until).
--
-- With n given, the threshold algorithm (exact): a customer's all-time
-- value (usage_customer, indexed by each metric) bounds its value over
-- any window, every metric being a sum of non-negative numbers.  Take the k
-- customers with the highest all-time values and compute their window
-- values from their folded rows (at most their true values); if n of them
-- are active in the window, the n-th best value T is a lower bound of the
-- n-th best overall (_top_users_threshold), so only customers whose
-- all-time value is at least T, and customers with pending logs whose
-- all-time value plus the largest pending value of a customer reaches T
-- (_top_users_near), can be in the first n rows or rank above one of them;
-- their window values with their pending logs are ranked
-- (_top_users_above).  A row's rank counts the
-- customers with a strictly higher value, all of which are candidates; ties
-- at the n-th value are all candidates too, so the order by
-- customer_identifier among them is the same.  When every customer was
-- taken before n were found, or n is null, every customer active in the
-- window is ranked (_top_users_reads_totals picks how).  One snapshot for
-- every statement (STABLE): the rollups, the watermark and the zone agree.
CREATE FUNCTION analytics.top_users(since timestamptz, until timestamptz,
                                    metric text DEFAULT 'cost', n integer DEFAULT 10)
RETURNS TABLE (rank bigint, customer_identifier text, name text, email text,
               requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
DECLARE
    d0 date;
    d1 date;
    threshold numeric;
    from_totals boolean;
BEGIN
    IF metric IS NULL OR metric NOT IN ('cost', 'requests', 'tokens') THEN
        PERFORM analytics._argument_error('metric', metric, 'cost, requests or tokens');
    END IF;
    IF n < 0 THEN
        PERFORM analytics._argument_error('n', n::text, 'a number of rows, at least 0, or null for all');
    END IF;
    IF n = 0 THEN
        RETURN;
    END IF;
    SELECT w.d0, w.d1 INTO d0, d1 FROM analytics._window_days(since, until) w;
    IF n IS NOT NULL THEN
        -- The threshold from the folded rows alone: the n-th best window
        -- value of customers read without their pending logs is at most the
        -- true one, so it bounds the rows to rank; the pending customers
        -- are ranked only when they can reach it (_top_users_near).
        threshold := analytics._top_users_threshold(d0, d1, metric, n);
        IF threshold IS NOT NULL THEN
            RETURN QUERY SELECT * FROM analytics._top_users_above(
                d0, d1, metric, n, analytics._top_users_near(d0, d1, metric, threshold), threshold);
            RETURN;
        END IF;
    END IF;
    from_totals := analytics._top_users_reads_totals(d0, d1);
    -- Ranked first (a materialized CTE), then joined to customers.
    RETURN QUERY
    WITH r AS MATERIALIZED (
        SELECT rank() OVER (ORDER BY CASE metric WHEN 'cost' THEN a.cost
                                                 WHEN 'requests' THEN a.requests
                                                 ELSE a.total_tokens END DESC) AS rank,
               a.customer_identifier, a.requests, a.total_tokens, a.cost
          FROM analytics._usage_window_all(d0, d1, from_totals) a
         ORDER BY 1, a.customer_identifier
         LIMIT n)
    SELECT r.rank, r.customer_identifier, c.name, c.email, r.requests, r.total_tokens, r.cost
      FROM r JOIN analytics.customers c ON c.customer_identifier = r.customer_identifier
     ORDER BY r.rank, r.customer_identifier;
END;
$$;
COMMENT ON FUNCTION analytics.top_users(timestamptz, timestamptz, text, integer) IS
    'The n customers with the most cost, requests or tokens over the calendar days (rollup time zone) overlapping [since, until); null n means all.';

CREATE VIEW analytics.top_users AS
SELECT t.rank, t.customer_identifier, t.name, t.email, t.requests, t.total_tokens, t.cost
  FROM analytics.top_users(
           (SELECT ((now() AT TIME ZONE s.timezone)::date - 29)::timestamp AT TIME ZONE s.timezone
              FROM analytics.rollup_state s),
           now(), 'cost', 10) t;
COMMENT ON VIEW analytics.top_users IS
    'The 10 customers with the highest cost in the last 30 calendar days (today and the 29 before, rollup time zone), in (rank, customer_identifier) order; analytics.top_users(since, until, metric, n) gives other windows, metrics and counts. Names need not be unique: key on customer_identifier. Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON COLUMN analytics.top_users.rank IS 'Rank by cost, 1 for the highest; equal costs share a rank.';
COMMENT ON COLUMN analytics.top_users.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.top_users.name IS 'Display name.';
COMMENT ON COLUMN analytics.top_users.email IS 'Email address.';
COMMENT ON COLUMN analytics.top_users.requests IS 'Number of logs in the 30 days.';
COMMENT ON COLUMN analytics.top_users.total_tokens IS 'Prompt plus completion tokens in the 30 days.';
COMMENT ON COLUMN analytics.top_users.cost IS 'USD before markup in the 30 days.';

-- The per-day totals plus the pending logs, summed per day; a pending
-- (customer, day) without a usage_customer_day row is one more active user
-- that day.  Both arms carry the customer in the same place, so on a
-- cluster each shard task reads its rollup rows and its pending logs in one
-- snapshot and the coordinator adds the shards' per-day sums.
CREATE VIEW analytics.daily_active_users AS
SELECT g.day, g.active_users, g.requests, g.cost,
       g.day >= (SELECT (now() AT TIME ZONE s.timezone)::date
                   FROM analytics.rollup_state s) AS is_partial
  FROM (SELECT a.day,
               sum(a.active_users)::bigint AS active_users,
               sum(a.requests)::bigint AS requests,
               sum(a.cost) AS cost
          FROM (SELECT d.customer_identifier, d.day, d.active_users, d.requests, d.cost
                  FROM analytics._usage_day d
                UNION ALL
                SELECT p.customer_identifier, p.day, p.new_day::integer, p.requests, p.cost
                  FROM analytics._usage_customer_day_pending p) a
         GROUP BY a.day) g;
COMMENT ON VIEW analytics.daily_active_users IS
    'Per calendar day (rollup time zone) with any log: distinct customers, requests and cost, and whether the day is still going on (is_partial). Filter on day. Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON COLUMN analytics.daily_active_users.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics.daily_active_users.active_users IS 'Distinct customers with at least one log that day.';
COMMENT ON COLUMN analytics.daily_active_users.requests IS 'Number of logs of customers that day.';
COMMENT ON COLUMN analytics.daily_active_users.cost IS 'USD before markup that day.';
COMMENT ON COLUMN analytics.daily_active_users.is_partial IS 'True for the current day in the rollup time zone (and a later one): the day is not over and its figures still grow.';

-- Whether this node keeps the gap counters usage_day_gaps: true on a single
-- node; analytics.distribute() makes it false on every node of a Citus
-- cluster, where they are not kept (a view, replaced as _usage_day is).
CREATE VIEW analytics._day_gaps_kept AS SELECT true AS kept;
COMMENT ON VIEW analytics._day_gaps_kept IS
    'Internal: whether usage_day_gaps is kept on this node (false on a Citus cluster).';
COMMENT ON COLUMN analytics._day_gaps_kept.kept IS 'True on a single node, false after analytics.distribute().';

-- Distinct customers per day, week (ISO, from Monday) or month: days from
-- daily_active_users.  Weeks and months on a single node from the gap
-- counters (usage_day_gaps): each bucket clipped to the window, R = [a, e),
-- counts the folded customers by one indexed sum (those active in R whose
-- previous active day is before a), plus the customers with pending logs in
-- R and no usage_customer_day row in R; requests and cost from usage_day
-- and the pending logs.  On a Citus cluster counted distinct over
-- usage_customer_day and the pending logs.  A bucket is partial unless all
-- its days are over (before today in the rollup time zone) and inside the
-- window: the current day, week or month, and a first or last bucket that
-- the window cuts.
CREATE FUNCTION analytics.active_users(since timestamptz, until timestamptz,
                                       bucket text DEFAULT 'day')
RETURNS TABLE (bucket_start date, active_users bigint, requests bigint, cost numeric,
               is_partial boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
DECLARE
    d0 date;
    d1 date;
BEGIN
    IF bucket IS NULL OR bucket NOT IN ('day', 'week', 'month') THEN
        PERFORM analytics._argument_error('bucket', bucket, 'day, week or month');
    END IF;
    -- One snapshot for every statement (STABLE).
    SELECT w.d0, w.d1 INTO d0, d1 FROM analytics._window_days(since, until) w;
    IF bucket = 'day' THEN
        -- A day inside the window is partial only while it is not over.
        RETURN QUERY
        SELECT a.day, a.active_users, a.requests, a.cost, a.is_partial
          FROM analytics.daily_active_users a
         WHERE a.day >= d0 AND a.day < d1
         ORDER BY 1;
        RETURN;
    END IF;
    IF (SELECT k.kept FROM analytics._day_gaps_kept k) THEN
        -- The buckets with a day of usage_day or of pending logs in the
        -- window (usage_day has a row per day with a folded log), each
        -- clipped to it.
        RETURN QUERY
        WITH b AS MATERIALIZED (
            SELECT k.b, greatest(k.b, d0) AS a, least((k.b + ('1 ' || bucket)::interval)::date, d1) AS e
              FROM (SELECT DISTINCT date_trunc(bucket, x.day::timestamp)::date AS b
                      FROM (SELECT d.day FROM analytics.usage_day d
                             WHERE d.day >= d0 AND d.day < d1
                            UNION
                            SELECT p.day FROM analytics._usage_customer_day_pending p
                             WHERE p.day >= d0 AND p.day < d1) x) k),
        p AS MATERIALIZED (
            SELECT q.customer_identifier, q.day, q.requests, q.cost
              FROM analytics._usage_customer_day_pending q
             WHERE q.day >= d0 AND q.day < d1)
        SELECT b.b,
               coalesce((SELECT sum(g.customers) FROM analytics.usage_day_gaps g
                          WHERE g.day >= b.a AND g.day < b.e AND g.prev_day < b.a), 0)::bigint
               + (SELECT count(DISTINCT p.customer_identifier) FROM p
                   WHERE p.day >= b.a AND p.day < b.e
                     AND NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day x
                                      WHERE x.customer_identifier = p.customer_identifier
                                        AND x.day >= b.a AND x.day < b.e)),
               (coalesce((SELECT sum(d.requests) FROM analytics.usage_day d
                           WHERE d.day >= b.a AND d.day < b.e), 0)
                + coalesce((SELECT sum(p.requests) FROM p WHERE p.day >= b.a AND p.day < b.e), 0))::bigint,
               coalesce((SELECT sum(d.cost) FROM analytics.usage_day d
                          WHERE d.day >= b.a AND d.day < b.e), 0)
               + coalesce((SELECT sum(p.cost) FROM p WHERE p.day >= b.a AND p.day < b.e), 0),
               b.b < d0 OR (b.b + ('1 ' || bucket)::interval)::date
                           > least(d1, (SELECT (now() AT TIME ZONE s.timezone)::date
                                          FROM analytics.rollup_state s))
          FROM b
         ORDER BY 1;
        RETURN;
    END IF;
    -- On a cluster: distinct (bucket, customer) pairs first (a hash
    -- aggregate), then counted per bucket.
    RETURN QUERY
    SELECT g.b, count(*), sum(g.requests)::bigint, sum(g.cost),
           g.b < d0 OR (g.b + ('1 ' || bucket)::interval)::date
                       > least(d1, (SELECT (now() AT TIME ZONE s.timezone)::date
                                      FROM analytics.rollup_state s))
      FROM (SELECT date_trunc(bucket, u.day::timestamp)::date AS b,
                   u.customer_identifier,
                   sum(u.requests) AS requests,
                   sum(u.cost) AS cost
              FROM analytics._usage_customer_day_live u
             WHERE u.day >= d0 AND u.day < d1
             GROUP BY 1, 2) g
     GROUP BY 1
     ORDER BY 1;
END;
$$;
COMMENT ON FUNCTION analytics.active_users(timestamptz, timestamptz, text) IS
    'Distinct customers, requests and cost per day, week (from Monday) or month, over the calendar days (rollup time zone) overlapping [since, until); buckets without logs are left out. is_partial is true for a bucket whose figures are not final or not whole: it holds today (rollup time zone) or a later day, or the window leaves out some of its days. Counts are bigint and cost numeric (exact; node-postgres returns both as strings).';

-- usage_customer_day rows without pending logs, and the pending (customer,
-- day) pairs with their folded part added: one row per customer and day
-- either way.  The shape of analytics.users (see there): the first arm is
-- the table alone, so that the costliest rows (ORDER BY cost DESC ...
-- LIMIT n) are read in the order of its cost index, merged with the pending
-- pairs sorted, and the outer condition drops from the first arm the pairs
-- of the second (a hashed subplan).  The pending pairs read their folded
-- part by primary key probes (a lateral subquery that cannot be
-- flattened).  Quals on day and customer_identifier reach both arms.  On a
-- Citus cluster distribute() makes this view read
-- _cost_by_user_on_cluster, the shape Citus pushes down.
CREATE VIEW analytics.cost_by_user AS
SELECT x.day, x.customer_identifier, x.requests, x.prompt_tokens, x.completion_tokens, x.cost
  FROM (SELECT x.day, x.customer_identifier, x.requests, x.prompt_tokens, x.completion_tokens,
               x.cost, false AS pending
          FROM analytics.usage_customer_day x
        UNION ALL
        SELECT p.day, p.customer_identifier,
               p.requests + coalesce(x.requests, 0),
               p.prompt_tokens + coalesce(x.prompt_tokens, 0),
               p.completion_tokens + coalesce(x.completion_tokens, 0),
               p.cost + coalesce(x.cost, 0),
               true
          FROM analytics._usage_customer_day_pending p
          LEFT JOIN LATERAL (SELECT x.* FROM analytics.usage_customer_day x
                              WHERE x.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
                                AND x.day OPERATOR(pg_catalog.=) p.day
                             OFFSET 0) x ON true) x
 WHERE x.pending
    OR (x.customer_identifier, x.day) NOT IN (SELECT k.customer_identifier, k.day
                                                FROM analytics._pending_customer_days k);
COMMENT ON VIEW analytics.cost_by_user IS
    'LLM usage per calendar day (rollup time zone) and customer. Filter on day and customer_identifier. Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON COLUMN analytics.cost_by_user.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics.cost_by_user.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.cost_by_user.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.cost_by_user.prompt_tokens IS 'Sum of prompt tokens.';
COMMENT ON COLUMN analytics.cost_by_user.completion_tokens IS 'Sum of completion tokens.';
COMMENT ON COLUMN analytics.cost_by_user.cost IS 'USD before markup.';

-- The shapes of analytics.users and analytics.cost_by_user that a Citus
-- cluster pushes down to the shards: customers, usage_customer and the
-- pending logs per customer LEFT JOINed by customer (a shard task reads all
-- of a customer's parts); the same rows as the views above, which
-- distribute() points at these (70_distribute.sql).  The single-node shapes
-- are not planned by Citus: an uncorrelated NOT IN over distributed tables
-- becomes a subplan whose result goes to every shard, and a lateral
-- subquery with OFFSET is not pushed down.
CREATE VIEW analytics._users_on_cluster AS
SELECT c.customer_identifier,
       c.name,
       c.email,
       c.metadata,
       c.created_at,
       LEAST(u.first_seen, p.first_seen) AS first_seen,
       GREATEST(u.last_seen, p.last_seen) AS last_active,
       coalesce(u.active_days, 0) + coalesce(p.new_days, 0) AS active_days,
       coalesce(u.requests, 0) + coalesce(p.requests, 0) AS requests,
       coalesce(u.errors, 0) + coalesce(p.errors, 0) AS errors,
       coalesce(u.prompt_tokens, 0) + coalesce(p.prompt_tokens, 0) AS prompt_tokens,
       coalesce(u.completion_tokens, 0) + coalesce(p.completion_tokens, 0) AS completion_tokens,
       coalesce(u.prompt_tokens + u.completion_tokens, 0)
           + coalesce(p.prompt_tokens + p.completion_tokens, 0) AS total_tokens,
       coalesce(u.cost, 0) + coalesce(p.cost, 0) AS cost,
       (coalesce(u.cost, 0) + coalesce(p.cost, 0)) * (1 + c.markup_percentage / 100) AS billed_cost,
       (coalesce(u.latency_sum, 0) + coalesce(p.latency_sum, 0))
           / nullif(coalesce(u.latency_count, 0) + coalesce(p.latency_count, 0), 0) AS avg_latency,
       (coalesce(u.ttft_sum, 0) + coalesce(p.ttft_sum, 0))
           / nullif(coalesce(u.ttft_count, 0) + coalesce(p.ttft_count, 0), 0) AS avg_ttft,
       analytics._top_model_in(
           (SELECT pg_catalog.array_agg(d.model ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || p.models,
           (SELECT pg_catalog.array_agg(d.requests ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || p.model_requests)
           AS top_model,
       c.period_budget,
       c.budget_duration,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1] AS period_start,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2] AS period_end,
       analytics._budget_billed(
           (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
             WHERE l.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier
               AND l.created_at >= (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1]
               AND l.created_at < (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2]),
           c.markup_percentage) AS period_spend,
       c.total_budget,
       (coalesce(u.cost, 0) + coalesce(p.cost, 0)) * (1 + c.markup_percentage / 100) AS total_spend,
       c.blocked,
       coalesce(u.cached_tokens, 0) + coalesce(p.cached_tokens, 0) AS cached_tokens,
       (coalesce(u.cached_tokens, 0) + coalesce(p.cached_tokens, 0))::numeric
           / nullif(coalesce(u.prompt_tokens, 0) + coalesce(p.prompt_tokens, 0), 0) AS cache_hit_rate,
       (SELECT analytics._top_models_in(pg_catalog.array_agg(d.model) || p.models,
                                        pg_catalog.array_agg(d.requests) || p.model_requests,
                                        pg_catalog.array_agg(d.cost) || p.model_costs)
          FROM analytics.usage_daily d
         WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) AS top_models,
       (coalesce(u.cost, 0) + coalesce(p.cost, 0))
           / analytics._calendar_months(LEAST(u.first_seen, p.first_seen), now(), z.timezone)
           AS average_monthly_cost
  FROM analytics.customers c
 CROSS JOIN (SELECT s.timezone FROM analytics.rollup_state s) z
  LEFT JOIN analytics.usage_customer u ON u.customer_identifier = c.customer_identifier
  LEFT JOIN (SELECT g.customer_identifier,
                    min(g.first_seen) AS first_seen,
                    max(g.last_seen) AS last_seen,
                    count(DISTINCT g.day) FILTER (WHERE x.customer_identifier IS NULL) AS new_days,
                    sum(g.requests)::bigint AS requests,
                    sum(g.errors)::bigint AS errors,
                    sum(g.prompt_tokens)::bigint AS prompt_tokens,
                    sum(g.completion_tokens)::bigint AS completion_tokens,
                    sum(g.cost) AS cost,
                    sum(g.latency_sum) AS latency_sum,
                    sum(g.latency_count)::bigint AS latency_count,
                    sum(g.ttft_sum) AS ttft_sum,
                    sum(g.ttft_count)::bigint AS ttft_count,
                    sum(g.cached_tokens)::bigint AS cached_tokens,
                    array_agg(g.model) AS models,
                    array_agg(g.requests) AS model_requests,
                    array_agg(g.cost) AS model_costs
               FROM analytics._usage_pending g
               LEFT JOIN analytics.usage_customer_day x
                      ON x.customer_identifier OPERATOR(pg_catalog.=) g.customer_identifier
                     AND x.day OPERATOR(pg_catalog.=) g.day
              GROUP BY g.customer_identifier) p
         ON p.customer_identifier = c.customer_identifier;

CREATE VIEW analytics._cost_by_user_on_cluster AS
SELECT x.day, x.customer_identifier, x.requests, x.prompt_tokens, x.completion_tokens, x.cost
  FROM analytics.usage_customer_day x
  LEFT JOIN analytics._usage_customer_day_pending p
         ON p.customer_identifier = x.customer_identifier AND p.day = x.day
 WHERE p.customer_identifier IS NULL
UNION ALL
SELECT p.day, p.customer_identifier,
       p.requests + coalesce(x.requests, 0),
       p.prompt_tokens + coalesce(x.prompt_tokens, 0),
       p.completion_tokens + coalesce(x.completion_tokens, 0),
       p.cost + coalesce(x.cost, 0)
  FROM analytics._usage_customer_day_pending p
  LEFT JOIN analytics.usage_customer_day x
         ON x.customer_identifier = p.customer_identifier AND x.day = p.day;
COMMENT ON VIEW analytics._users_on_cluster IS
    'Internal: analytics.users in the shape a Citus cluster pushes down (read by analytics.users after distribute()).';
COMMENT ON VIEW analytics._cost_by_user_on_cluster IS
    'Internal: analytics.cost_by_user in the shape a Citus cluster pushes down (read by analytics.cost_by_user after distribute()).';
-- Their columns carry the comments of the views they stand for.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT v.relname AS view, a.attname, d.description
               FROM pg_catalog.pg_class v
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) v.oid
               JOIN pg_catalog.pg_description d ON d.objoid OPERATOR(pg_catalog.=) v.oid
                    AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objsubid OPERATOR(pg_catalog.=) a.attnum
              WHERE v.oid IN ('analytics.users'::pg_catalog.regclass, 'analytics.cost_by_user'::pg_catalog.regclass)
    LOOP
        EXECUTE pg_catalog.format('COMMENT ON COLUMN analytics.%I.%I IS %L',
                                  CASE r.view WHEN 'users' THEN '_users_on_cluster' ELSE '_cost_by_user_on_cluster' END,
                                  r.attname, r.description);
    END LOOP;
END;
$$;

CREATE VIEW analytics.logs_with_customer AS
SELECT l.id, l.created_at, l.customer_identifier, l.model,
       l.prompt_tokens, l.completion_tokens, l.total_tokens, l.cost,
       l.latency, l.time_to_first_token, l.status_code, l.error_message,
       l.thread_identifier, l.custom_identifier, l.metadata,
       CASE WHEN (SELECT pg_catalog.has_column_privilege('analytics.logs', 'prompt_messages', 'SELECT'))
            THEN l.prompt_messages END AS prompt_messages,
       CASE WHEN (SELECT pg_catalog.has_column_privilege('analytics.logs', 'completion_message', 'SELECT'))
            THEN l.completion_message END AS completion_message,
       c.name, c.email, c.metadata AS customer_metadata,
       l.cached_tokens, l.cache_write_tokens, l.reasoning_tokens,
       l.admission_id, l.request_id
  FROM analytics.logs l
  LEFT JOIN analytics.customers c ON c.customer_identifier = l.customer_identifier;
COMMENT ON VIEW analytics.logs_with_customer IS
    'Each log with its customer''s name, email and metadata (the log detail side panel). The id is bigint and cost numeric (exact, as sent); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON COLUMN analytics.logs_with_customer.id IS 'Log id.';
COMMENT ON COLUMN analytics.logs_with_customer.created_at IS 'When the request finished.';
COMMENT ON COLUMN analytics.logs_with_customer.customer_identifier IS 'The end user; null for requests of no end user.';
COMMENT ON COLUMN analytics.logs_with_customer.model IS 'Model name.';
COMMENT ON COLUMN analytics.logs_with_customer.prompt_tokens IS 'Prompt (input) tokens.';
COMMENT ON COLUMN analytics.logs_with_customer.completion_tokens IS 'Completion (output) tokens.';
COMMENT ON COLUMN analytics.logs_with_customer.total_tokens IS 'prompt_tokens + completion_tokens.';
COMMENT ON COLUMN analytics.logs_with_customer.cost IS 'USD before markup.';
COMMENT ON COLUMN analytics.logs_with_customer.latency IS 'Seconds from request to last token.';
COMMENT ON COLUMN analytics.logs_with_customer.time_to_first_token IS 'Seconds from request to first token.';
COMMENT ON COLUMN analytics.logs_with_customer.status_code IS 'HTTP-style status; 400 and above is an error.';
COMMENT ON COLUMN analytics.logs_with_customer.error_message IS 'Provider error message, if any.';
COMMENT ON COLUMN analytics.logs_with_customer.thread_identifier IS 'Conversation thread id.';
COMMENT ON COLUMN analytics.logs_with_customer.custom_identifier IS 'Application-defined id.';
COMMENT ON COLUMN analytics.logs_with_customer.metadata IS 'The log''s free-form JSON.';
COMMENT ON COLUMN analytics.logs_with_customer.prompt_messages IS 'Request messages; null unless the current role may SELECT analytics.logs.prompt_messages (analytics_reader may not).';
COMMENT ON COLUMN analytics.logs_with_customer.completion_message IS 'Response message; null unless the current role may SELECT analytics.logs.completion_message (analytics_reader may not).';
COMMENT ON COLUMN analytics.logs_with_customer.name IS 'The customer''s display name.';
COMMENT ON COLUMN analytics.logs_with_customer.email IS 'The customer''s email address.';
COMMENT ON COLUMN analytics.logs_with_customer.customer_metadata IS 'The customer''s free-form JSON.';
COMMENT ON COLUMN analytics.logs_with_customer.cached_tokens IS 'Prompt tokens read from a prompt cache (part of prompt_tokens).';
COMMENT ON COLUMN analytics.logs_with_customer.cache_write_tokens IS 'Prompt tokens written to a prompt cache (part of prompt_tokens).';
COMMENT ON COLUMN analytics.logs_with_customer.reasoning_tokens IS 'Completion tokens spent on reasoning (part of completion_tokens).';
COMMENT ON COLUMN analytics.logs_with_customer.admission_id IS 'The analytics.admit() admission the log settled, if any.';
COMMENT ON COLUMN analytics.logs_with_customer.request_id IS 'The caller''s id of the request, unique per customer, if given.';

-- One customer's logs, newest first, by the (customer_identifier,
-- created_at) index.  plpgsql, whose statement Citus plans (a router query
-- to the customer's shard).  It reads logs_with_customer (whose join the
-- planner removes), so the message bodies are null for a role that may not
-- read them (analytics_reader).
CREATE FUNCTION analytics.customer_logs(customer_identifier text,
                                        since timestamptz DEFAULT NULL,
                                        until timestamptz DEFAULT NULL,
                                        lim integer DEFAULT 100)
RETURNS SETOF analytics.logs
LANGUAGE plpgsql STABLE ROWS 100 SET search_path = pg_catalog, analytics AS $$
BEGIN
    RETURN QUERY
    SELECT l.id, l.created_at, l.customer_identifier, l.model,
           l.prompt_tokens, l.completion_tokens, l.total_tokens, l.cost,
           l.latency, l.time_to_first_token, l.status_code, l.error_message,
           l.thread_identifier, l.custom_identifier, l.metadata,
           l.prompt_messages, l.completion_message,
           l.cached_tokens, l.cache_write_tokens, l.reasoning_tokens,
           l.admission_id, l.request_id
      FROM analytics.logs_with_customer l
     WHERE l.customer_identifier OPERATOR(pg_catalog.=) $1
       AND l.created_at >= coalesce($2, '-infinity')
       AND l.created_at < coalesce($3, 'infinity')
     ORDER BY l.created_at DESC, l.id DESC
     LIMIT $4;
END;
$$;
COMMENT ON FUNCTION analytics.customer_logs(text, timestamptz, timestamptz, integer) IS
    'A customer''s logs created in [since, until) (null: unbounded), newest first, at most lim (null: all).';
