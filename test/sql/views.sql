-- The views and functions of SPEC section 6, each compared with the same
-- GROUP BY over the raw logs: before any fold-in, partly folded, fully
-- folded, in a non-UTC rollup time zone, and with rollup rows whose logs
-- were purged.  Mismatches are printed as counts (0 = equal).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;

-- Stages 1 to 6 fold by hand and check the rollup state they set, so the
-- background worker must stay out: it waits for every transaction that
-- holds ROW EXCLUSIVE on analytics.logs before it folds, and this one does
-- until stage 7.
BEGIN;
LOCK TABLE analytics.logs IN ROW EXCLUSIVE MODE;

SELECT setseed(0.42);

-- 60 customers: 50 will have logs, 10 never do.
INSERT INTO analytics.customers (customer_identifier, name, email, metadata, markup_percentage)
SELECT 'cust_' || i, 'Customer ' || i, 'c' || i || '@example.com',
       jsonb_build_object('tier', i % 3), (i % 4) * 12.5
  FROM generate_series(1, 60) i;

-- Random logs over the last 40 days, with and without a given cost, some
-- errors, some null latencies, and some without a customer.
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cost, latency, time_to_first_token, status_code)
SELECT now() - random() * interval '40 days',
       CASE WHEN random() < 0.03 THEN NULL ELSE 'cust_' || (1 + floor(random() * random() * 50))::int END,
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'gemini-2.0-flash'])[1 + floor(random() * 4)::int],
       floor(random() * 2000)::int, floor(random() * 800)::int,
       round((random() * 0.05)::numeric, 6),
       CASE WHEN random() < 0.1 THEN NULL ELSE random() * 5 END,
       CASE WHEN random() < 0.2 THEN NULL ELSE random() END,
       CASE WHEN random() < 0.05 THEN 500 ELSE 200 END
  FROM generate_series(1, 1500);
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, latency, status_code)
SELECT now() - random() * interval '40 days',
       'cust_' || (1 + floor(random() * 50))::int,
       (ARRAY['gpt-4o', 'gpt-4.1-mini', 'o3-mini'])[1 + floor(random() * 3)::int],
       floor(random() * 5000)::int, floor(random() * 1000)::int,
       CASE WHEN random() < 0.1 THEN NULL ELSE random() * 5 END,
       CASE WHEN random() < 0.03 THEN 429 ELSE 200 END
  FROM generate_series(1, 1500);
-- Logs within a minute of midnight UTC and of midnight in New York.
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens, completion_tokens, cost)
SELECT (date_trunc('day', now() AT TIME ZONE z) - d * interval '1 day'
        + (random() * 120 - 60) * interval '1 second') AT TIME ZONE z,
       'cust_' || (1 + floor(random() * 50))::int, 'gpt-4o-mini', 100, 50, 0.001
  FROM unnest(ARRAY['UTC', 'America/New_York']) z, generate_series(1, 35) d,
       generate_series(1, 4);

-- Logs with prompt caching (SPEC section 12): cached and cache-write
-- tokens, parts of the prompt.
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cached_tokens, cache_write_tokens,
                            reasoning_tokens)
SELECT now() - r1 * interval '40 days', 'cust_' || (1 + floor(r2 * 50))::int,
       (ARRAY['gpt-4o', 'claude-sonnet-4'])[1 + floor(r2 * 2)::int],
       p, c, floor(p * r1 / 2)::int, floor(p * r2 / 2)::int, floor(c * r1)::int
  FROM (SELECT random() AS r1, random() AS r2, floor(random() * 8000)::int AS p,
               floor(random() * 900)::int AS c
          FROM generate_series(1, 200)) g;

-- For the Users page's top_models, cache_hit_rate and average_monthly_cost
-- (no random(): the draws above and below stay as they were).  cust_40 to
-- cust_45: a log in each of 2 to 7 months back, at 02:00 UTC on the first
-- of the month (the month before in New York, stage 5).  cust_51: seven
-- models, ties in cost (gpt-4o and o3-mini, broken by requests; alpha and
-- beta, broken by name) and more than five models.  cust_52: logs without
-- prompt tokens (cache_hit_rate null).  cust_53 to cust_60 have no logs.
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cached_tokens, cost)
SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - (i - 38) * interval '1 month'
        + interval '2 hours') AT TIME ZONE 'UTC',
       'cust_' || i, m, 1000, 100, 400, 0.5
  FROM generate_series(40, 45) i, unnest(ARRAY['gpt-4o', 'o3-mini']) m;
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cached_tokens, cost)
VALUES (now() - interval '95 days', 'cust_51', 'gpt-4o', 300, 20, 100, 0.25),
       (now() - interval '50 days', 'cust_51', 'gpt-4o', 300, 20, 0, 0.25),
       (now() - interval '50 days', 'cust_51', 'o3-mini', 300, 20, 0, 0.50),
       (now() - interval '2 days', 'cust_51', 'beta', 300, 20, 300, 0.50),
       (now() - interval '2 days', 'cust_51', 'alpha', 300, 20, 0, 0.50),
       (now() - interval '1 day', 'cust_51', 'zeta', 300, 20, 0, 0.10),
       (now() - interval '1 day', 'cust_51', 'omega', 300, 20, 0, 0.05),
       (now() - interval '1 hour', 'cust_51', 'Tiny', 300, 20, 0, 0.01),
       (now() - interval '70 days', 'cust_52', 'gpt-4o', 0, 20, 0, 0.02),
       (now() - interval '1 hour', 'cust_52', 'o3-mini', 0, 20, 0, 0.01);

SELECT count(*) AS logs, count(DISTINCT customer_identifier) AS customers_with_logs
  FROM analytics.logs;

-- Budgets on some customers, set after loading so that nothing was
-- rejected: monthly from a Jan 31 anchor, daily, weekly, yearly, and an
-- anchor in the future.
UPDATE analytics.customers SET period_budget = 10, budget_duration = 'monthly',
       period_start = '2025-01-31 10:00+00' WHERE customer_identifier IN ('cust_1', 'cust_2');
UPDATE analytics.customers SET period_budget = 1, budget_duration = 'daily',
       period_start = now() - interval '3 days 5 hours' WHERE customer_identifier = 'cust_3';
UPDATE analytics.customers SET period_budget = 5, budget_duration = 'weekly',
       period_start = now() - interval '17 days' WHERE customer_identifier = 'cust_4';
UPDATE analytics.customers SET total_budget = 100, budget_duration = 'yearly',
       period_start = '2024-02-29 00:00+00' WHERE customer_identifier = 'cust_5';
UPDATE analytics.customers SET budget_duration = 'weekly',
       period_start = now() + interval '20 days' WHERE customer_identifier = 'cust_6';
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'cust_7';

-- Test helper: a hand-made fold-in, doing what the rollup does.  Folds the
-- logs with watermark < id <= cut into usage_daily (adding to existing rows),
-- derives the coarser rollups from it, and moves the watermark to cut, in
-- one transaction.  (sql/rollup.sql checks that the real fold-in keeps the
-- coarser rollups equal to the raw logs; here they come from usage_daily so
-- that the tests can fold up to any id.)
CREATE FUNCTION pg_temp.fold_to(cut bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    wm bigint;
    tz text;
BEGIN
    SELECT watermark, timezone INTO wm, tz FROM analytics.rollup_state;
    INSERT INTO analytics.usage_daily AS d
    SELECT l.customer_identifier, (l.created_at AT TIME ZONE tz)::date, l.model,
           count(*), count(*) FILTER (WHERE l.status_code >= 400),
           sum(l.prompt_tokens), sum(l.completion_tokens), sum(l.cost),
           coalesce(sum(l.latency), 0), count(l.latency),
           coalesce(sum(l.time_to_first_token), 0), count(l.time_to_first_token),
           min(l.created_at), max(l.created_at), sum(l.cached_tokens)
      FROM analytics.logs l
     WHERE l.id > wm AND l.id <= cut AND l.customer_identifier IS NOT NULL
     GROUP BY 1, 2, 3
    ON CONFLICT (customer_identifier, day, model) DO UPDATE SET
        requests = d.requests + excluded.requests,
        errors = d.errors + excluded.errors,
        prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = d.completion_tokens + excluded.completion_tokens,
        cost = d.cost + excluded.cost,
        latency_sum = d.latency_sum + excluded.latency_sum,
        latency_count = d.latency_count + excluded.latency_count,
        ttft_sum = d.ttft_sum + excluded.ttft_sum,
        ttft_count = d.ttft_count + excluded.ttft_count,
        first_seen = least(d.first_seen, excluded.first_seen),
        last_seen = greatest(d.last_seen, excluded.last_seen),
        cached_tokens = d.cached_tokens + excluded.cached_tokens;
    PERFORM analytics._rollup_rebuild_summaries();
    UPDATE analytics.rollup_state SET watermark = greatest(wm, cut);
END;
$$;

-- Test helper: logs removed by a purge.  They stay in usage_daily; the raw
-- side of every comparison reads analytics.logs plus these rows.
CREATE TEMP TABLE purged (LIKE analytics.logs);
CREATE TEMP VIEW all_logs AS
SELECT customer_identifier, created_at, model, prompt_tokens, completion_tokens,
       total_tokens, cost, latency, time_to_first_token, status_code, cached_tokens,
       (created_at AT TIME ZONE (SELECT timezone FROM analytics.rollup_state))::date AS day
  FROM (SELECT customer_identifier, created_at, model, prompt_tokens, completion_tokens,
               total_tokens, cost, latency, time_to_first_token, status_code, cached_tokens
          FROM analytics.logs
        UNION ALL
        SELECT customer_identifier, created_at, model, prompt_tokens, completion_tokens,
               total_tokens, cost, latency, time_to_first_token, status_code, cached_tokens
          FROM purged) l
 WHERE customer_identifier IS NOT NULL;

-- Independent period arithmetic: step from the anchor one period at a time.
CREATE FUNCTION pg_temp.period_by_steps(anchor timestamptz, duration text, tz text)
RETURNS timestamptz[] LANGUAGE plpgsql AS $$
DECLARE
    d interval := CASE duration WHEN 'daily' THEN '1 day' WHEN 'weekly' THEN '7 days'
                                WHEN 'monthly' THEN '1 month' ELSE '1 year' END;
    a timestamp := anchor AT TIME ZONE tz;
    t timestamp := now() AT TIME ZONE tz;
    k integer := 0;
BEGIN
    WHILE a + k * d > t LOOP k := k - 1; END LOOP;
    WHILE a + (k + 1) * d <= t LOOP k := k + 1; END LOOP;
    RETURN ARRAY[(a + k * d) AT TIME ZONE tz, (a + (k + 1) * d) AT TIME ZONE tz];
END;
$$;

CREATE TEMP VIEW raw_users AS
SELECT c.customer_identifier, c.name, c.email, c.metadata, c.created_at,
       min(l.created_at) AS first_seen, max(l.created_at) AS last_active,
       count(DISTINCT l.day) AS active_days,
       count(l.model) AS requests,
       count(l.model) FILTER (WHERE l.status_code >= 400) AS errors,
       coalesce(sum(l.prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(l.completion_tokens), 0) AS completion_tokens,
       coalesce(sum(l.total_tokens), 0) AS total_tokens,
       coalesce(sum(l.cost), 0) AS cost,
       coalesce(sum(l.cost), 0) * (1 + c.markup_percentage / 100) AS billed_cost,
       round(avg(l.latency)::numeric, 8) AS avg_latency,
       round(avg(l.time_to_first_token)::numeric, 8) AS avg_ttft,
       (SELECT m.model FROM all_logs m WHERE m.customer_identifier = c.customer_identifier
         GROUP BY m.model ORDER BY count(*) DESC, m.model LIMIT 1) AS top_model,
       c.period_budget, c.budget_duration,
       p.b[1] AS period_start, p.b[2] AS period_end,
       (SELECT coalesce(sum(x.cost), 0) FROM analytics.logs x
         WHERE x.customer_identifier = c.customer_identifier
           AND x.created_at >= p.b[1] AND x.created_at < p.b[2])
           * (1 + c.markup_percentage / 100) AS period_spend,
       c.total_budget,
       coalesce(sum(l.cost), 0) * (1 + c.markup_percentage / 100) AS total_spend,
       c.blocked,
       coalesce(sum(l.cached_tokens), 0) AS cached_tokens,
       coalesce(sum(l.cached_tokens), 0)::numeric / nullif(coalesce(sum(l.prompt_tokens), 0), 0)
           AS cache_hit_rate,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('model', m.model, 'requests', m.n, 'cost', m.cost)
                                  ORDER BY m.cost DESC, m.n DESC, m.model COLLATE "C"), '[]')
          FROM (SELECT m.model, count(*) AS n, sum(m.cost) AS cost
                  FROM all_logs m WHERE m.customer_identifier = c.customer_identifier
                 GROUP BY m.model ORDER BY 3 DESC, 2 DESC, m.model COLLATE "C" LIMIT 5) m)
           AS top_models,
       -- The months counted one by one, from the month of the first log
       -- through the current one, in the rollup time zone.
       coalesce(sum(l.cost), 0)
           / nullif((SELECT count(*) FROM generate_series(
                         date_trunc('month', min(l.created_at) AT TIME ZONE (SELECT timezone FROM analytics.rollup_state)),
                         date_trunc('month', now() AT TIME ZONE (SELECT timezone FROM analytics.rollup_state)),
                         interval '1 month')), 0) AS average_monthly_cost
  FROM analytics.customers c
  LEFT JOIN all_logs l ON l.customer_identifier = c.customer_identifier
 CROSS JOIN LATERAL (SELECT pg_temp.period_by_steps(c.period_start, c.budget_duration,
                            (SELECT timezone FROM analytics.rollup_state)) AS b) p
 GROUP BY c.customer_identifier, p.b;

CREATE TEMP VIEW view_users AS
SELECT customer_identifier, name, email, metadata, created_at, first_seen, last_active,
       active_days, requests, errors, prompt_tokens, completion_tokens, total_tokens,
       cost, billed_cost, round(avg_latency::numeric, 8) AS avg_latency,
       round(avg_ttft::numeric, 8) AS avg_ttft, top_model, period_budget, budget_duration,
       period_start, period_end, period_spend, total_budget, total_spend, blocked,
       cached_tokens, cache_hit_rate, top_models, average_monthly_cost
  FROM analytics.users;

-- The first page (50 rows) of the Users page for each sort field, ascending
-- and descending, ties to customer_identifier, and the same page over a raw
-- GROUP BY (active_days: distinct calendar days in the rollup time zone).
CREATE TEMP VIEW raw_users_sort AS
SELECT c.customer_identifier,
       coalesce(sum(l.cost), 0) AS cost, count(l.model) AS requests,
       coalesce(sum(l.total_tokens), 0) AS total_tokens,
       max(l.created_at) AS last_active, min(l.created_at) AS first_seen,
       count(DISTINCT l.day) AS active_days
  FROM analytics.customers c
  LEFT JOIN all_logs l ON l.customer_identifier = c.customer_identifier
 GROUP BY c.customer_identifier;

-- Positions where the customer_identifier lists of two queries differ
-- (order matters), plus the difference in length.
CREATE FUNCTION pg_temp.page_diff(a text, b text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    x text[];
    y text[];
BEGIN
    EXECUTE format('SELECT array_agg(q.customer_identifier) FROM (%s) q', a) INTO x;
    EXECUTE format('SELECT array_agg(q.customer_identifier) FROM (%s) q', b) INTO y;
    RETURN (SELECT count(*) FILTER (WHERE i > cardinality(x) OR i > cardinality(y) OR x[i] <> y[i])
              FROM generate_series(1, greatest(cardinality(x), cardinality(y))) i);
END;
$$;

-- A day d counts for [since, until) when it overlaps it: d >= day of since
-- and d's midnight < until (both in the rollup time zone).
CREATE FUNCTION pg_temp.raw_top_users(since timestamptz, until timestamptz, metric text, n integer)
RETURNS TABLE (rank bigint, customer_identifier text, name text, email text,
               requests bigint, total_tokens bigint, cost numeric)
LANGUAGE sql AS $$
SELECT rank() OVER (ORDER BY CASE metric WHEN 'cost' THEN a.cost WHEN 'requests' THEN a.requests
                                         ELSE a.total_tokens END DESC),
       a.customer_identifier, c.name, c.email, a.requests, a.total_tokens, a.cost
  FROM (SELECT l.customer_identifier, count(*) AS requests,
               sum(l.total_tokens) AS total_tokens, sum(l.cost) AS cost
          FROM all_logs l
         WHERE (since IS NULL OR l.day >= (since AT TIME ZONE (SELECT timezone FROM analytics.rollup_state))::date)
           AND (until IS NULL OR l.day::timestamp < until AT TIME ZONE (SELECT timezone FROM analytics.rollup_state))
         GROUP BY 1) a
  JOIN analytics.customers c USING (customer_identifier)
 ORDER BY 1, 2
 LIMIT n
$$;

-- A bucket is complete when its first and last day count in the window and
-- its last day is over (before today in the rollup time zone).
CREATE FUNCTION pg_temp.raw_active_users(since timestamptz, until timestamptz, bucket text)
RETURNS TABLE (bucket_start date, active_users bigint, requests bigint, cost numeric,
               is_partial boolean)
LANGUAGE sql AS $$
SELECT b.first_day, b.active_users, b.requests, b.cost,
       NOT ((since IS NULL OR b.first_day >= (since AT TIME ZONE b.tz)::date)
            AND (until IS NULL OR b.last_day::timestamp < until AT TIME ZONE b.tz)
            AND b.last_day < (now() AT TIME ZONE b.tz)::date)
  FROM (SELECT a.first_day,
               CASE bucket WHEN 'day' THEN a.first_day
                           WHEN 'week' THEN a.first_day + 6
                           ELSE (a.first_day + interval '1 month' - interval '1 day')::date END AS last_day,
               a.active_users, a.requests, a.cost, a.tz
          FROM (SELECT CASE bucket WHEN 'day' THEN l.day
                                   WHEN 'week' THEN l.day - (extract(isodow FROM l.day)::int - 1)
                                   ELSE make_date(extract(year FROM l.day)::int, extract(month FROM l.day)::int, 1) END
                           AS first_day,
                       count(DISTINCT l.customer_identifier) AS active_users, count(*) AS requests,
                       sum(l.cost) AS cost, (SELECT timezone FROM analytics.rollup_state) AS tz
                  FROM all_logs l
                 WHERE (since IS NULL OR l.day >= (since AT TIME ZONE (SELECT timezone FROM analytics.rollup_state))::date)
                   AND (until IS NULL OR l.day::timestamp < until AT TIME ZONE (SELECT timezone FROM analytics.rollup_state))
                 GROUP BY 1) a) b
$$;

-- Rows in a and not in b plus rows in b and not in a, as counts.
CREATE FUNCTION pg_temp.diff(a text, b text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n1 bigint;
    n2 bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (%s EXCEPT ALL %s) x', a, b) INTO n1;
    EXECUTE format('SELECT count(*) FROM (%s EXCEPT ALL %s) x', b, a) INTO n2;
    RETURN n1 + n2;
END;
$$;

-- Every comparison, one row each; mismatches must be 0.
CREATE FUNCTION pg_temp.check_all() RETURNS TABLE (item text, mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
    tz text := (SELECT timezone FROM analytics.rollup_state);
    -- since/until pairs: 10 days back at a random hour to 3 days back, a
    -- window starting and ending at midnight in the rollup zone, unbounded.
    win text[] := ARRAY[
        format('now() - interval %L, now() - interval %L', '10 days 7 hours', '3 days 2 hours'),
        format('(date_trunc(%L, now() AT TIME ZONE %L) - interval %L) AT TIME ZONE %L, '
               '(date_trunc(%L, now() AT TIME ZONE %L) - interval %L) AT TIME ZONE %L',
               'day', tz, '20 days', tz, 'day', tz, '6 days', tz),
        'NULL, NULL',
        format('now() - interval %L, now()', '45 days')];
    w text;
    m text;
    k integer;
BEGIN
    item := 'users'; mismatches := pg_temp.diff('SELECT * FROM view_users', 'SELECT * FROM raw_users');
    RETURN NEXT;
    item := 'users rows'; mismatches := abs((SELECT count(*) FROM analytics.users) - 60);
    RETURN NEXT;
    FOREACH m IN ARRAY ARRAY['cost', 'requests', 'total_tokens', 'last_active', 'first_seen',
                             'active_days'] LOOP
        FOREACH w IN ARRAY ARRAY['ASC', 'DESC'] LOOP
            item := format('users page by %s %s', m, w);
            mismatches := pg_temp.page_diff(
                format('SELECT customer_identifier FROM analytics.users ORDER BY %I %s, customer_identifier LIMIT 50', m, w),
                format('SELECT customer_identifier FROM raw_users_sort ORDER BY %I %s, customer_identifier LIMIT 50', m, w));
            RETURN NEXT;
        END LOOP;
    END LOOP;
    item := 'top_users view';
    mismatches := pg_temp.diff('SELECT * FROM analytics.top_users',
        format('SELECT * FROM pg_temp.raw_top_users(((now() AT TIME ZONE %L)::date - 29)::timestamp AT TIME ZONE %L, now(), %L, 10)',
               tz, tz, 'cost'));
    RETURN NEXT;
    FOREACH w IN ARRAY win LOOP
        FOREACH m IN ARRAY ARRAY['cost', 'requests', 'tokens'] LOOP
            item := format('top_users(%s, %s)', w, m);
            mismatches := pg_temp.diff(format('SELECT * FROM analytics.top_users(%s, %L, 7)', w, m),
                                       format('SELECT * FROM pg_temp.raw_top_users(%s, %L, 7)', w, m));
            RETURN NEXT;
        END LOOP;
        FOREACH m IN ARRAY ARRAY['day', 'week', 'month'] LOOP
            item := format('active_users(%s, %s)', w, m);
            mismatches := pg_temp.diff(format('SELECT * FROM analytics.active_users(%s, %L)', w, m),
                                       format('SELECT * FROM pg_temp.raw_active_users(%s, %L)', w, m));
            RETURN NEXT;
        END LOOP;
    END LOOP;
    -- Small and large n over a short window: few of the customers with the
    -- highest totals are active in it, ties on requests are common.
    FOREACH m IN ARRAY ARRAY['cost', 'requests', 'tokens'] LOOP
        FOREACH k IN ARRAY ARRAY[1, 3, 40] LOOP
            item := format('top_users(2 days, %s, %s)', m, k);
            mismatches := pg_temp.diff(
                format('SELECT * FROM analytics.top_users(now() - interval %L, now(), %L, %s)', '2 days', m, k),
                format('SELECT * FROM pg_temp.raw_top_users(now() - interval %L, now(), %L, %s)', '2 days', m, k));
            RETURN NEXT;
        END LOOP;
    END LOOP;
    item := 'top_users(all, n null)';
    mismatches := pg_temp.diff('SELECT * FROM analytics.top_users(NULL, NULL, ''cost'', NULL)',
                               'SELECT * FROM pg_temp.raw_top_users(NULL, NULL, ''cost'', NULL)');
    RETURN NEXT;
    item := 'daily_active_users';
    mismatches := pg_temp.diff('SELECT * FROM analytics.daily_active_users',
        'SELECT day, count(DISTINCT customer_identifier), count(*), sum(cost), '
        '       day >= (now() AT TIME ZONE (SELECT timezone FROM analytics.rollup_state))::date '
        '  FROM all_logs GROUP BY day');
    RETURN NEXT;
    item := 'daily_active_users, 7 days';
    mismatches := pg_temp.diff('SELECT * FROM analytics.daily_active_users WHERE day > current_date - 7',
        'SELECT day, count(DISTINCT customer_identifier), count(*), sum(cost), '
        '       day >= (now() AT TIME ZONE (SELECT timezone FROM analytics.rollup_state))::date '
        '  FROM all_logs WHERE day > current_date - 7 GROUP BY day');
    RETURN NEXT;
    item := 'cost_by_user';
    mismatches := pg_temp.diff('SELECT * FROM analytics.cost_by_user',
        'SELECT day, customer_identifier, count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost) FROM all_logs GROUP BY 1, 2');
    RETURN NEXT;
    item := 'cost_by_user, one customer';
    mismatches := pg_temp.diff('SELECT * FROM analytics.cost_by_user WHERE customer_identifier = ''cust_2''',
        'SELECT day, customer_identifier, count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost) FROM all_logs WHERE customer_identifier = ''cust_2'' GROUP BY 1, 2');
    RETURN NEXT;
    RETURN;
END;
$$;

-- Summary of a check: how many comparisons ran and which ones failed.
CREATE FUNCTION pg_temp.check_summary() RETURNS TABLE (comparisons bigint, failed text[])
LANGUAGE sql AS $$
SELECT count(*), coalesce(array_agg(item || ': ' || mismatches) FILTER (WHERE mismatches <> 0), '{}')
  FROM pg_temp.check_all()
$$;

-- 1. Nothing folded in: everything comes from the pending logs.
SELECT watermark FROM analytics.rollup_state;
SELECT * FROM pg_temp.check_summary();
-- The new Users page columns by hand (check_all compares every row with
-- the raw logs): top_models breaks the ties in cost by requests, then by
-- name, and keeps five models of seven; no prompt tokens, no rate; a
-- customer without logs.  cust_45's first log is 7 months back: its cost
-- is divided by 8 months, this one included.
CREATE FUNCTION pg_temp.new_columns() RETURNS TABLE (customer text, cache_hit_rate numeric,
                                                     top_models jsonb, months numeric)
LANGUAGE sql AS $$
SELECT customer_identifier, round(cache_hit_rate, 6), top_models,
       CASE WHEN customer_identifier = 'cust_45' THEN round(cost / average_monthly_cost) END
  FROM analytics.users WHERE customer_identifier IN ('cust_45', 'cust_51', 'cust_52', 'cust_53')
 ORDER BY 1
$$;
SELECT * FROM pg_temp.new_columns();

-- 2. Partly folded, in two passes so that rollup rows get added to.
SELECT pg_temp.fold_to((SELECT max(id) / 3 FROM analytics.logs));
SELECT pg_temp.fold_to((SELECT max(id) / 2 FROM analytics.logs));
SELECT count(*) > 0 AS some_folded, (SELECT count(*) FROM analytics.logs
        WHERE id > (SELECT watermark FROM analytics.rollup_state)) > 0 AS some_pending
  FROM analytics.usage_daily;
SELECT * FROM pg_temp.check_summary();

-- 3. Fully folded.
SELECT pg_temp.fold_to((SELECT max(id) FROM analytics.logs));
SELECT * FROM pg_temp.check_summary();
SELECT * FROM pg_temp.new_columns();

-- A first page of the Users page computes the correlated subqueries
-- (top_model, top_models, period_spend) for its 50 rows only, after the
-- sort, whatever the sort field.
CREATE FUNCTION pg_temp.subplan_loops(q text) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q INTO plan;
    RETURN QUERY
    SELECT (jsonb_path_query(plan::jsonb, 'strict $.** ? (@."Parent Relationship" == "SubPlan")')
            ->> 'Actual Loops')::bigint;
END;
$$;
SELECT f, d, count(*) AS subplans, max(n) AS max_loops
  FROM unnest(ARRAY['cost', 'requests', 'total_tokens', 'last_active', 'first_seen', 'active_days']) f,
       unnest(ARRAY['ASC', 'DESC']) d,
       pg_temp.subplan_loops(format('SELECT * FROM analytics.users ORDER BY %I %s, customer_identifier LIMIT 50', f, d)) n
 GROUP BY f, d ORDER BY f, d;

-- 4. New logs after a full fold-in are seen at once.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost)
VALUES ('cust_61', 'gpt-4o', 10, 10, 1.5), ('cust_1', 'o3-mini', 10, 10, 0.25);
SELECT requests, cost, top_model FROM analytics.users WHERE customer_identifier = 'cust_61';
UPDATE analytics.customers SET name = 'Customer 61', email = 'c61@example.com',
       metadata = '{"tier": 1}' WHERE customer_identifier = 'cust_61';
-- cust_61 is the 61st customer now.
SELECT (SELECT count(*) FROM analytics.users) = 61 AS users_rows;
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();

-- is_partial: today only (it has logs now) in the daily series; the
-- current week and month; and the last week of a window that ends on a
-- Friday, which the window cuts.  check_all compares every row with the raw
-- rule.
SELECT count(*) FILTER (WHERE is_partial) AS partial_days,
       bool_or(is_partial AND day = (now() AT TIME ZONE 'UTC')::date) AS today_partial
  FROM analytics.daily_active_users;
SELECT b AS bucket, count(*) FILTER (WHERE a.is_partial) AS partial,
       (array_agg(a.is_partial ORDER BY a.bucket_start DESC))[1] AS latest_partial
  FROM unnest(ARRAY['day', 'week', 'month']) b,
       analytics.active_users(NULL, now(), b) a
 GROUP BY b ORDER BY b;
SELECT count(*) FILTER (WHERE is_partial) AS partial,
       (array_agg(is_partial ORDER BY bucket_start DESC))[1] AS cut_week_partial
  FROM analytics.active_users(NULL, (date_trunc('week', now() AT TIME ZONE 'UTC') - interval '3 days') AT TIME ZONE 'UTC', 'week');

-- top_model sums a model's requests over folded and pending rows; a tie
-- goes to the first name.
INSERT INTO analytics.logs (customer_identifier, model, cost)
VALUES ('cust_62', 'zeta', 0), ('cust_62', 'zeta', 0), ('cust_62', 'alpha', 0);
SELECT top_model FROM analytics.users WHERE customer_identifier = 'cust_62';
SELECT pg_temp.fold_to((SELECT max(id) FROM analytics.logs));
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('cust_62', 'alpha', 0);
SELECT top_model FROM analytics.users WHERE customer_identifier = 'cust_62';
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('cust_62', 'alpha', 0);
SELECT top_model FROM analytics.users WHERE customer_identifier = 'cust_62';
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();

-- 5. Rollups in another time zone, rebuilt from scratch: New York days.
UPDATE analytics.rollup_state SET timezone = 'America/New_York', watermark = 0;
TRUNCATE analytics.usage_daily;
SELECT analytics._rollup_rebuild_summaries();
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();
SELECT pg_temp.fold_to((SELECT max(id) / 2 FROM analytics.logs));
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();
SELECT pg_temp.fold_to((SELECT max(id) FROM analytics.logs));
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();
-- cust_45's first log, at 02:00 UTC on the first of a month, is in the
-- month before in New York: 9 months.
SELECT round(cost / average_monthly_cost) AS new_york_months
  FROM analytics.users WHERE customer_identifier = 'cust_45';
-- The day boundaries moved: the near-midnight logs fall on other days than in UTC.
SELECT count(*) > 0 AS days_differ
  FROM analytics.logs
 WHERE (created_at AT TIME ZONE 'UTC')::date <> (created_at AT TIME ZONE 'America/New_York')::date;
SELECT count(*) AS new_york_days_wrong
  FROM (SELECT day, sum(requests) FROM analytics.daily_active_users GROUP BY day
        EXCEPT ALL
        SELECT (created_at AT TIME ZONE 'America/New_York')::date, count(*)
          FROM analytics.logs WHERE customer_identifier IS NOT NULL GROUP BY 1) x;

-- 6. A purge: rollup rows for an old day whose logs are gone stay counted.
INSERT INTO purged (id, created_at, customer_identifier, model, prompt_tokens, completion_tokens,
                    total_tokens, cost, latency, time_to_first_token, status_code,
                    cached_tokens, cache_write_tokens, reasoning_tokens)
SELECT -i, now() - interval '200 days' + i * interval '1 minute',
       'cust_' || (1 + i % 5), (ARRAY['gpt-4o', 'old-model'])[1 + i % 2], 100 * i, 10 * i,
       110 * i, 0.01 * i, CASE WHEN i % 3 = 0 THEN NULL ELSE i END, 0.5, CASE WHEN i = 7 THEN 500 ELSE 200 END,
       30 * i, 0, 0
  FROM generate_series(1, 20) i;
INSERT INTO analytics.usage_daily AS d
SELECT customer_identifier, day, model, count(*), count(*) FILTER (WHERE status_code >= 400),
       sum(prompt_tokens), sum(completion_tokens), sum(cost),
       coalesce(sum(latency), 0), count(latency),
       coalesce(sum(time_to_first_token), 0), count(time_to_first_token),
       min(created_at), max(created_at), sum(cached_tokens)
  FROM all_logs WHERE (customer_identifier, created_at) IN (SELECT customer_identifier, created_at FROM purged)
 GROUP BY 1, 2, 3;
SELECT analytics._rollup_rebuild_summaries();
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();
SELECT sum(requests) = (SELECT count(*) FROM analytics.logs WHERE customer_identifier IS NOT NULL) + 20
       AS purged_rows_counted
  FROM analytics.users;
SELECT first_seen < now() - interval '100 days' AS first_seen_from_purged
  FROM analytics.users WHERE customer_identifier = 'cust_2';

COMMIT;

-- 7. The real fold-in from here on: new logs, some on (customer, day)
-- pairs that have rollup rows and some not, pending, then folded by
-- rollup_now().  Recorded even
-- for the blocked and budgeted customers.
SET analytics.budget_enforcement = record;
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cost, latency, status_code)
SELECT now() - random() * interval '3 days',
       'cust_' || (1 + floor(random() * 70))::int,
       (ARRAY['gpt-4o', 'o3-mini', 'new-model'])[1 + floor(random() * 3)::int],
       floor(random() * 2000)::int, floor(random() * 800)::int,
       round((random() * 0.05)::numeric, 6),
       CASE WHEN random() < 0.1 THEN NULL ELSE random() * 5 END,
       CASE WHEN random() < 0.05 THEN 500 ELSE 200 END
  FROM generate_series(1, 300);
RESET analytics.budget_enforcement;
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();
SELECT analytics.rollup_now() >= 0 AS passed;
SELECT count(*) FILTER (WHERE mismatches <> 0 AND item <> 'users rows') AS failed
  FROM pg_temp.check_all();

-- logs_with_customer: every log once, with its customer's details.
SELECT count(*) = (SELECT count(*) FROM analytics.logs) AS every_log,
       count(*) FILTER (WHERE w.customer_identifier IS NULL) > 0 AS has_logs_without_customer,
       count(*) FILTER (WHERE w.customer_identifier IS NOT NULL
                          AND (w.name, w.email, w.customer_metadata)
                              IS DISTINCT FROM (c.name, c.email, c.metadata)) AS wrong_customer,
       count(*) FILTER (WHERE (w.created_at, w.model, w.cost, w.status_code, w.latency)
                              IS DISTINCT FROM (l.created_at, l.model, l.cost, l.status_code, l.latency))
           AS wrong_log
  FROM analytics.logs_with_customer w
  JOIN analytics.logs l ON l.id = w.id
  LEFT JOIN analytics.customers c ON c.customer_identifier = w.customer_identifier;

-- customer_logs: newest first, bounded by since/until and lim.
SELECT count(*) AS customer_logs_wrong
  FROM (SELECT c, s, u, n
          FROM (VALUES ('cust_1'), ('cust_3'), ('cust_55'), ('nobody')) c(c),
               (VALUES (NULL::timestamptz, NULL::timestamptz),
                       (now() - interval '20 days', now() - interval '5 days'),
                       (now() - interval '3 days', NULL)) w(s, u),
               (VALUES (5), (100), (NULL)) n(n)) args
 WHERE ARRAY(SELECT id FROM analytics.customer_logs(c, s, u, n))
       IS DISTINCT FROM
       ARRAY(SELECT id FROM analytics.logs
              WHERE customer_identifier = c AND (s IS NULL OR created_at >= s)
                AND (u IS NULL OR created_at < u)
              ORDER BY created_at DESC, id DESC LIMIT n);
SELECT count(*) AS default_limit FROM analytics.customer_logs('cust_1');

-- current_period: calendar arithmetic from a Jan 31 anchor, in UTC and in
-- New York (rollup_state.timezone), and an anchor after as_of.
UPDATE analytics.rollup_state SET timezone = 'UTC';
SET TimeZone = 'UTC';
SELECT a.as_of, p.*
  FROM (VALUES ('2026-02-15'::timestamptz), ('2026-02-28 10:00'), ('2026-03-30'),
               ('2026-03-31 10:00'), ('2026-04-30 09:59:59'), ('2024-03-01')) a(as_of),
       analytics.current_period('2025-01-31 10:00+00', 'monthly', a.as_of) p;
SELECT * FROM analytics.current_period('2024-02-29 12:00+00', 'yearly', '2025-03-01');
SELECT * FROM analytics.current_period('2026-03-10 00:00+00', 'weekly', '2026-03-01');
SELECT * FROM analytics.current_period('2026-03-10 00:00+00', 'daily', '2026-03-12 23:59:59.999999');
UPDATE analytics.rollup_state SET timezone = 'America/New_York';
-- Daily periods keep local midnight across the DST change of 2026-11-01.
SELECT * FROM analytics.current_period('2026-10-30 00:00-04', 'daily', '2026-11-02 12:00+00');
RESET TimeZone;

-- Bad arguments: SQLSTATE 22023 naming the argument.
CREATE FUNCTION pg_temp.show_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END;
$$;
SELECT pg_temp.show_error(q) AS error
  FROM (VALUES ('SELECT * FROM analytics.top_users(now() - interval ''1 day'', now(), ''dollars'')'),
               ('SELECT * FROM analytics.top_users(now() - interval ''1 day'', now(), NULL)'),
               ('SELECT * FROM analytics.top_users(now() - interval ''1 day'', now(), ''cost'', -1)'),
               ('SELECT * FROM analytics.active_users(now() - interval ''1 day'', now(), ''year'')'),
               ('SELECT * FROM analytics.active_users(now() - interval ''1 day'', now(), NULL)'),
               ('SELECT * FROM analytics.current_period(now(), ''hourly'')')) v(q);
SELECT * FROM analytics.active_users(now() - interval '1 day', now(), 'fortnight');
