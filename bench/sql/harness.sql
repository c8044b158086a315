-- Benchmark harness: the schema "bench" with the timing helpers, the
-- results table and the log generator.  Loaded into every benchmark
-- database by bench/run.sh; nothing here is part of the extension.

CREATE SCHEMA bench;

-- Every measurement: one row per run of one side of one figure.
CREATE TABLE bench.samples (
    figure text NOT NULL,
    side text NOT NULL CHECK (side IN ('ours', 'baseline')),
    rep integer NOT NULL,
    value double precision NOT NULL,   -- ms for times, rows/s for rates
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The medians of one figure's samples, each side.
CREATE FUNCTION bench.medians(fig text, OUT ours double precision, OUT baseline double precision)
LANGUAGE sql STABLE AS $$
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FILTER (WHERE side = 'ours'),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FILTER (WHERE side = 'baseline')
    FROM bench.samples WHERE figure = fig
$$;

-- A median as a table cell: rate (rows/s) or time (ms).
CREATE FUNCTION bench.fmt(value double precision, kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind WHEN 'rate' THEN round(value)::text || ' rows/s'
                     ELSE round(value::numeric, 2) || ' ms' END
$$;

-- Elapsed milliseconds of one statement with side effects (INSERT, COPY, a
-- function call), run to completion in the caller's transaction.
CREATE FUNCTION bench.time_exec(q text) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE q;
    RETURN 1000 * extract(epoch FROM clock_timestamp() - t0);
END;
$$;

-- Elapsed milliseconds of one query run twice in one session: the first
-- run in a fresh session (caches cold; on Citus, the connections to the
-- workers opened by the query) and the second (as a pooled application's
-- session would run it).  Rows computed, none sent.
CREATE FUNCTION bench.time_exec_twice(q text, OUT first_ms double precision, OUT again_ms double precision)
LANGUAGE plpgsql AS $$
BEGIN
    first_ms := bench.time_exec(q);
    again_ms := bench.time_exec(q);
END;
$$;

-- Planning plus execution milliseconds of one query, every row and column
-- computed but none sent anywhere (EXPLAIN ANALYZE, per-node timing off so
-- the instrumentation costs next to nothing; parallel plans allowed).
CREATE FUNCTION bench.time_query(q text) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) ' || q INTO plan;
    RETURN (plan -> 0 ->> 'Planning Time')::float8 + (plan -> 0 ->> 'Execution Time')::float8;
END;
$$;

-- Rows that are in one query's result and not in the other's, counted both
-- ways with multiplicity: 0 means the results are equal as multisets.
CREATE FUNCTION bench.result_diff(a text, b text, OUT diff bigint, OUT rows_a bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM (%s) x EXCEPT ALL SELECT * FROM (%s) y)'
                   ' UNION ALL (SELECT * FROM (%s) y EXCEPT ALL SELECT * FROM (%s) x)) d',
                   a, b, b, a) INTO diff;
    EXECUTE format('SELECT count(*) FROM (%s) x', a) INTO rows_a;
END;
$$;

-- One query's result as a digest of its rows (as JSON, sorted, without a
-- column id: each server draws its own log ids) and a count: equal digests
-- on two servers mean equal results as multisets.
CREATE FUNCTION bench.result_digest(q text, OUT digest text, OUT nrows bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT md5(coalesce(string_agg(j, E''\n'' ORDER BY j), '''')), count(*)'
                   ' FROM (SELECT (to_jsonb(r) - ''id'')::text AS j FROM (%s) r) d', q) INTO digest, nrows;
END;
$$;

-- Whether the object a figure needs exists: a relation, or a function when
-- the name ends with "(".
CREATE FUNCTION bench.object_exists(name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN right(name, 1) = '('
                THEN EXISTS (SELECT 1 FROM pg_proc
                             WHERE pronamespace = split_part(name, '.', 1)::regnamespace
                               AND proname = rtrim(split_part(name, '.', 2), '('))
                ELSE to_regclass(name) IS NOT NULL END
$$;

-- Fold every pending log into the rollups when the extension can
-- (analytics.rollup_now, once it exists); returns the logs folded, or null
-- when there is nothing to call.
CREATE FUNCTION bench.settle() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    total bigint := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_proc
                   WHERE proname = 'rollup_now'
                     AND pronamespace = 'analytics'::regnamespace) THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. 1000 LOOP
        EXECUTE 'SELECT analytics.rollup_now()' INTO n;
        EXIT WHEN coalesce(n, 0) = 0;
        total := total + n;
    END LOOP;
    RETURN total;
END;
$$;

-- Customers 1..n as cust-1 .. cust-n (a name, an email, no budget).  The
-- count goes into the statement's text: Citus plans no parameter of an SQL
-- function in a distributed INSERT.
CREATE FUNCTION bench.gen_customers(n integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$
        INSERT INTO analytics.customers (customer_identifier, name, email, metadata)
        SELECT 'cust-' || i, 'Customer ' || i, 'user' || i || '@example.com',
               jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + i %% 3])
        FROM generate_series(1, %s) i
        ON CONFLICT DO NOTHING$q$, n);
END;
$$;

-- The reference traffic, n logs for customers 1..ncust, as a query text to
-- put after INSERT ... (columns) or inside COPY (...) TO.
--
-- Time: uniform from midnight (UTC) 29 days ago to now, so every log lies in
-- "the last 30 days" whatever the exact definition.
-- Customers: each day, a heavy-tailed pick among a quarter of the customers:
-- rank r = floor(A * u^3) with A = ncust / 4 (the top 1% of ranks take about
-- a fifth of the traffic, rank 0 about 3%).  The first 1% of customers are
-- the same every day (the heavy users); the other ranks map to a window of
-- the tail that moves by 1/30 of the tail each day, so about 25% of the
-- customers are active on a given day and nearly all of them in the month.
-- Models: 4, all priced in analytics.model_prices (one by prefix).
-- Errors: 2% (1% 429, 1% 500).  with_cost: compute cost here (for tables
-- without the trigger) instead of leaving it to the trigger.
CREATE FUNCTION bench.gen_logs_sql(n bigint, ncust integer, with_cost boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a integer := greatest(ncust / 4, 1);
    h integer := greatest(ncust / 100, 1);
    tail integer := greatest(ncust - greatest(ncust / 100, 1), 1);
    step integer := greatest((ncust - greatest(ncust / 100, 1)) / 30, 1);
BEGIN
    RETURN format($q$
SELECT created_at, 'cust-' || (1 + CASE WHEN r < %2$s THEN r
                                     ELSE %2$s + ((r - %2$s) + d * %4$s) %% %3$s END) AS customer_identifier,
       model, prompt_tokens, completion_tokens, %6$s AS cost, latency, time_to_first_token,
       status_code, error_message
FROM (
    SELECT created_at,
           floor(extract(epoch FROM created_at - t0) / 86400)::int AS d,
           least(floor(%1$s * power(u, 3))::int, %1$s - 1) AS r,
           CASE WHEN mv < 0.5 THEN 'gpt-4o-mini'
                WHEN mv < 0.7 THEN 'gpt-4o-2024-08-06'
                WHEN mv < 0.9 THEN 'claude-3-5-haiku'
                ELSE 'gemini-2.0-flash' END AS model,
           CASE WHEN mv < 0.5 THEN 'gpt-4o-mini'
                WHEN mv < 0.7 THEN 'gpt-4o'
                WHEN mv < 0.9 THEN 'claude-3-5-haiku'
                ELSE 'gemini-2.0-flash' END AS price_key,
           prompt_tokens, completion_tokens,
           round((0.2 + completion_tokens * 0.012 * (0.5 + lv))::numeric, 3)::float8 AS latency,
           round((0.05 + 0.3 * lv)::numeric, 3)::float8 AS time_to_first_token,
           CASE WHEN sv < 0.01 THEN 429 WHEN sv < 0.02 THEN 500 ELSE 200 END AS status_code,
           CASE WHEN sv < 0.01 THEN 'Rate limit reached' WHEN sv < 0.02 THEN 'Internal server error' END AS error_message
    FROM (
        SELECT t0, t0 + random() * (now() - t0) AS created_at,
               random() AS u, random() AS mv, random() AS sv, random() AS lv,
               50 + floor(-ln(1 - random()) * 600)::int AS prompt_tokens,
               10 + floor(-ln(1 - random()) * 250)::int AS completion_tokens
        FROM generate_series(1, %5$s) g,
             (SELECT date_trunc('day', now()) - interval '29 days' AS t0) w
        OFFSET 0
    ) s
    OFFSET 0
) x$q$, a, h, tail, step, n,
        CASE WHEN with_cost
             THEN '(SELECT (prompt_tokens * p.prompt_per_million + completion_tokens * p.completion_per_million) / 1000000'
                  ' FROM analytics.model_prices p WHERE p.model = x.price_key)'
             ELSE 'NULL::numeric' END);
END;
$$;

-- The column list that goes with gen_logs_sql().
CREATE FUNCTION bench.log_columns() RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'created_at, customer_identifier, model, prompt_tokens, completion_tokens, cost, '
           'latency, time_to_first_token, status_code, error_message'
$$;
