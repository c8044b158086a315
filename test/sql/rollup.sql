-- The fold-in: usage_daily equals the same GROUP BY over the raw logs,
-- folded by hand (the background worker is off in the test instances), and
-- purge_logs, delete_customer and set_timezone keep it so.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;

-- The reference: usage per customer, day in time zone tz, and model,
-- computed from the raw logs.
CREATE FUNCTION pg_temp.raw_usage(tz text)
RETURNS TABLE (customer_identifier text, day date, model text, requests bigint,
               errors bigint, prompt_tokens bigint, completion_tokens bigint,
               cost numeric, latency_sum float8, latency_count bigint,
               ttft_sum float8, ttft_count bigint, first_seen timestamptz,
               last_seen timestamptz, cached_tokens bigint)
LANGUAGE sql AS $$
    SELECT customer_identifier, (created_at AT TIME ZONE tz)::date, model,
           count(*), count(*) FILTER (WHERE status_code >= 400),
           sum(prompt_tokens), sum(completion_tokens), sum(cost),
           coalesce(sum(latency), 0), count(latency),
           coalesce(sum(time_to_first_token), 0), count(time_to_first_token),
           min(created_at), max(created_at), sum(cached_tokens)
      FROM analytics.logs
     WHERE customer_identifier IS NOT NULL
     GROUP BY 1, 2, 3
$$;

-- Rows of usage_daily (days >= since) that differ from the reference (days
-- >= since); float sums may differ in the last bits (summed in a different
-- order), everything else must be equal.
CREATE FUNCTION pg_temp.mismatches(tz text, since date DEFAULT '-infinity')
RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*)
      FROM (SELECT * FROM analytics.usage_daily WHERE day >= since) u
      FULL JOIN (SELECT * FROM pg_temp.raw_usage(tz) WHERE day >= since) r
     USING (customer_identifier, day, model)
     WHERE u.requests IS DISTINCT FROM r.requests
        OR u.errors IS DISTINCT FROM r.errors
        OR u.prompt_tokens IS DISTINCT FROM r.prompt_tokens
        OR u.completion_tokens IS DISTINCT FROM r.completion_tokens
        OR u.cost IS DISTINCT FROM r.cost
        OR u.latency_count IS DISTINCT FROM r.latency_count
        OR u.ttft_count IS DISTINCT FROM r.ttft_count
        OR u.first_seen IS DISTINCT FROM r.first_seen
        OR u.last_seen IS DISTINCT FROM r.last_seen
        OR u.cached_tokens IS DISTINCT FROM r.cached_tokens
        OR coalesce(abs(u.latency_sum - r.latency_sum) > 1e-9 * greatest(1, abs(r.latency_sum)), true)
        OR coalesce(abs(u.ttft_sum - r.ttft_sum) > 1e-9 * greatest(1, abs(r.ttft_sum)), true)
$$;

-- The coarser rollups against the same reference: usage_customer_day,
-- usage_day and usage_customer must equal the GROUP BY of the raw logs
-- (days >= since) plus the usage_daily rows of the earlier days (whose raw
-- logs may have been purged; those rows are checked by the purge test).
-- Returns the number of rows that differ in any of the three.
CREATE FUNCTION pg_temp.summary_mismatches(tz text, since date DEFAULT '-infinity')
RETURNS bigint LANGUAGE sql AS $$
    WITH base AS (
        SELECT * FROM pg_temp.raw_usage(tz) WHERE day >= since
        UNION ALL
        SELECT * FROM analytics.usage_daily WHERE day < since),
    cd AS (
        SELECT customer_identifier, day, sum(requests) AS requests, sum(errors) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(cost) AS cost
          FROM base GROUP BY 1, 2),
    d AS (
        SELECT day, count(*) AS active_users, sum(requests) AS requests, sum(errors) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(cost) AS cost
          FROM cd GROUP BY 1),
    c AS (
        SELECT customer_identifier, sum(requests) AS requests, sum(errors) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(cost) AS cost, sum(latency_sum) AS latency_sum,
               sum(latency_count) AS latency_count, sum(ttft_sum) AS ttft_sum,
               sum(ttft_count) AS ttft_count, min(first_seen) AS first_seen,
               max(last_seen) AS last_seen, count(DISTINCT day) AS active_days,
               sum(cached_tokens) AS cached_tokens
          FROM base GROUP BY 1)
    SELECT (SELECT count(*)
              FROM analytics.usage_customer_day u FULL JOIN cd r USING (customer_identifier, day)
             WHERE (u.requests, u.errors, u.prompt_tokens, u.completion_tokens, u.cost)
                   IS DISTINCT FROM (r.requests, r.errors, r.prompt_tokens, r.completion_tokens, r.cost))
         + (SELECT count(*)
              FROM analytics.usage_day u FULL JOIN d r USING (day)
             WHERE (u.active_users, u.requests, u.errors, u.prompt_tokens, u.completion_tokens, u.cost)
                   IS DISTINCT FROM (r.active_users, r.requests, r.errors, r.prompt_tokens,
                                     r.completion_tokens, r.cost))
         + (SELECT count(*)
              FROM analytics.usage_customer u FULL JOIN c r USING (customer_identifier)
             WHERE (u.requests, u.errors, u.prompt_tokens, u.completion_tokens, u.cost,
                    u.latency_count, u.ttft_count, u.first_seen, u.last_seen, u.active_days,
                    u.cached_tokens)
                   IS DISTINCT FROM (r.requests, r.errors, r.prompt_tokens, r.completion_tokens,
                                     r.cost, r.latency_count, r.ttft_count, r.first_seen,
                                     r.last_seen, r.active_days, r.cached_tokens)
                OR coalesce(abs(u.latency_sum - r.latency_sum) > 1e-9 * greatest(1, abs(r.latency_sum)), true)
                OR coalesce(abs(u.ttft_sum - r.ttft_sum) > 1e-9 * greatest(1, abs(r.ttft_sum)), true))
$$;

-- A few thousand random logs over six days around the New York DST switch
-- (2024-03-10), a fifth of them within seconds of a UTC or New York
-- midnight; some errors, some null latencies, some given costs, some with
-- no customer; three in four with cached prompt tokens.
SELECT setseed(0.42);
CREATE FUNCTION pg_temp.add_logs(n integer, first_customer integer DEFAULT 1)
RETURNS void LANGUAGE sql AS $$
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cost, latency, time_to_first_token,
                            status_code, cached_tokens)
SELECT created_at, customer_identifier, model, prompt_tokens, completion_tokens, cost,
       latency, time_to_first_token, status_code, prompt_tokens * (g % 4) / 4
  FROM (
SELECT g, CASE g % 10
         WHEN 0 THEN timestamptz '2024-03-08 00:00+00' + (g % 6) * interval '1 day' - (g % 7) * interval '1 second'
         WHEN 1 THEN timestamptz '2024-03-08 00:00+00' + (g % 6) * interval '1 day' + (g % 7) * interval '1 second'
         WHEN 2 THEN ('2024-03-08'::date + g % 6)::timestamp AT TIME ZONE 'America/New_York' - (g % 5) * interval '1 second'
         ELSE timestamptz '2024-03-08 00:00+00' + random() * interval '6 days'
       END AS created_at,
       CASE WHEN random() < 0.1 THEN NULL
            ELSE 'c' || (first_customer + floor(random() * 40))::int END AS customer_identifier,
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'unpriced-model'])[1 + floor(random() * 4)::int] AS model,
       floor(random() * 2000)::int AS prompt_tokens, floor(random() * 800)::int AS completion_tokens,
       CASE WHEN random() < 0.3 THEN round((random() * 0.05)::numeric, 6) END AS cost,
       CASE WHEN random() < 0.8 THEN random() * 5 END AS latency,
       CASE WHEN random() < 0.6 THEN random() END AS time_to_first_token,
       CASE WHEN random() < 0.05 THEN 500 WHEN random() < 0.03 THEN 429 ELSE 200 END AS status_code
  FROM generate_series(1, n) g) r
$$;

-- rollup_now() in the inserting transaction folds exactly these logs: the
-- worker cannot fold them before they commit, and after the commit they are
-- folded already.
BEGIN;
SELECT pg_temp.add_logs(4000);
SELECT analytics.rollup_now() = (SELECT count(*) FROM analytics.logs
                                  WHERE customer_identifier IS NOT NULL) AS folded_all,
       (SELECT count(*) FROM analytics.logs WHERE customer_identifier IS NULL) > 0 AS some_without_customer;
COMMIT;
SELECT pg_temp.mismatches('UTC') AS mismatches_utc,
       pg_temp.summary_mismatches('UTC') AS summary_mismatches;
SELECT count(DISTINCT day) AS days, bool_or(errors > 0) AS some_errors,
       bool_or(latency_count < requests) AS some_null_latencies
  FROM analytics.usage_daily;
SELECT watermark = (SELECT max(id) FROM analytics.logs) AS watermark_at_last,
       logs_pending, timezone FROM analytics.status;

-- Nothing new: a second pass folds nothing.
SELECT analytics.rollup_now() AS folded_again;

-- More logs, committed; whoever folds them, after rollup_now() the rollup
-- is exact again.
SELECT pg_temp.add_logs(1500);
SELECT analytics.rollup_now() >= 0 AS passed;
SELECT pg_temp.mismatches('UTC') AS mismatches_utc,
       pg_temp.summary_mismatches('UTC') AS summary_mismatches, logs_pending FROM analytics.status;

-- set_timezone rebuilds by the new zone's days (case-insensitive name,
-- stored as spelled in the zone database).
SELECT analytics.set_timezone('america/new_york');
SELECT timezone FROM analytics.status;
SELECT pg_temp.mismatches('America/New_York') AS mismatches_new_york,
       pg_temp.summary_mismatches('America/New_York') AS summary_mismatches;
SELECT pg_temp.add_logs(500);
SELECT analytics.rollup_now() >= 0 AS passed;
SELECT pg_temp.mismatches('America/New_York') AS mismatches_new_york,
       pg_temp.summary_mismatches('America/New_York') AS summary_mismatches;

-- delete_customer removes the customer, its logs (folded or not) and its
-- rollups; the others are untouched.
SELECT count(*) > 0 AS c1_has_logs FROM analytics.logs WHERE customer_identifier = 'c1';
INSERT INTO analytics.logs (customer_identifier, model, created_at)
VALUES ('c1', 'gpt-4o', '2024-03-09 12:00+00');
SELECT analytics.delete_customer('c1');
SELECT (SELECT count(*) FROM analytics.customers WHERE customer_identifier = 'c1') AS customers,
       (SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'c1') AS logs,
       (SELECT count(*) FROM analytics.usage_daily WHERE customer_identifier = 'c1') AS rollups,
       pg_temp.summary_mismatches('America/New_York') AS summary_mismatches;
SELECT analytics.rollup_now() >= 0 AS passed;
SELECT pg_temp.mismatches('America/New_York') AS mismatches_new_york,
       pg_temp.summary_mismatches('America/New_York') AS summary_mismatches,
       (SELECT count(*) FROM analytics.usage_daily WHERE customer_identifier = 'c1') AS c1_rollups,
       (SELECT count(*) FROM analytics.usage_customer_day WHERE customer_identifier = 'c1')
       + (SELECT count(*) FROM analytics.usage_customer WHERE customer_identifier = 'c1') AS c1_summaries;

-- purge_logs keeps the aggregates: usage_daily is what it was before, and
-- the raw logs before the start of the cutoff's day (New York) are gone.
CREATE TEMP TABLE before_purge AS SELECT * FROM analytics.usage_daily;
CREATE TEMP TABLE before_purge_summaries AS
SELECT (SELECT array_agg(x ORDER BY customer_identifier, day) FROM analytics.usage_customer_day x) AS cd,
       (SELECT array_agg(x ORDER BY day) FROM analytics.usage_day x) AS d,
       (SELECT array_agg(x ORDER BY customer_identifier) FROM analytics.usage_customer x) AS c;
CREATE TEMP TABLE expected_purge AS
SELECT count(*) AS n FROM analytics.logs
 WHERE created_at < '2024-03-11 00:00'::timestamp AT TIME ZONE 'America/New_York';
SELECT analytics.purge_logs('2024-03-11 15:30 America/New_York') = (SELECT n FROM expected_purge) AS purged_whole_days,
       (SELECT n FROM expected_purge) > 0 AS purged_some;
SELECT min(created_at) >= '2024-03-11 00:00'::timestamp AT TIME ZONE 'America/New_York' AS rest_from_cutoff_day,
       count(*) > 0 AS some_left
  FROM analytics.logs;
SELECT count(*) AS changed_rows
  FROM analytics.usage_daily u FULL JOIN before_purge b USING (customer_identifier, day, model)
 WHERE row(u.*) IS DISTINCT FROM row(b.*);
SELECT retained_from = '2024-03-11 00:00'::timestamp AT TIME ZONE 'America/New_York' AS retained_from_cutoff
  FROM analytics.status;
SELECT (SELECT array_agg(x ORDER BY customer_identifier, day) FROM analytics.usage_customer_day x) = b.cd
       AND (SELECT array_agg(x ORDER BY day) FROM analytics.usage_day x) = b.d
       AND (SELECT array_agg(x ORDER BY customer_identifier) FROM analytics.usage_customer x) = b.c
       AS summaries_kept,
       pg_temp.summary_mismatches('America/New_York', (s.retained_from AT TIME ZONE 'America/New_York')::date)
       AS summary_mismatches
  FROM before_purge_summaries b, analytics.status s;

-- After a purge, set_timezone keeps the days of purged logs and rebuilds
-- the rest: totals are unchanged, and from the new retained_from's day on
-- the rollup is the GROUP BY of the raw logs in the new zone.
CREATE TEMP TABLE totals AS
SELECT sum(requests) AS requests, sum(errors) AS errors, sum(cost) AS cost,
       sum(prompt_tokens) AS prompt_tokens FROM analytics.usage_daily;
SELECT analytics.set_timezone('Asia/Tokyo');
SELECT (SELECT row(sum(requests), sum(errors), sum(cost), sum(prompt_tokens)) FROM analytics.usage_daily)
       = (SELECT row(requests, errors, cost, prompt_tokens) FROM totals) AS totals_kept;
SELECT retained_from = '2024-03-12 00:00'::timestamp AT TIME ZONE 'Asia/Tokyo' AS retained_from_tokyo_day,
       pg_temp.mismatches('Asia/Tokyo', (retained_from AT TIME ZONE 'Asia/Tokyo')::date) AS mismatches_tokyo,
       pg_temp.summary_mismatches('Asia/Tokyo', (retained_from AT TIME ZONE 'Asia/Tokyo')::date) AS summary_mismatches
  FROM analytics.status;
SELECT analytics.set_timezone('UTC');
SELECT (SELECT row(sum(requests), sum(errors), sum(cost), sum(prompt_tokens)) FROM analytics.usage_daily)
       = (SELECT row(requests, errors, cost, prompt_tokens) FROM totals) AS totals_kept;
SELECT pg_temp.mismatches('UTC', (retained_from AT TIME ZONE 'UTC')::date) AS mismatches_utc,
       pg_temp.summary_mismatches('UTC', (retained_from AT TIME ZONE 'UTC')::date) AS summary_mismatches
  FROM analytics.status;
-- Folds after the rebuild go on from the rebuilt rollups.
SELECT pg_temp.add_logs(300, 20);
SELECT analytics.rollup_now() >= 0 AS passed;
SELECT pg_temp.mismatches('UTC', (retained_from AT TIME ZONE 'UTC')::date) AS mismatches_utc,
       pg_temp.summary_mismatches('UTC', (retained_from AT TIME ZONE 'UTC')::date) AS summary_mismatches
  FROM analytics.status;

-- Bad input: a specific SQLSTATE, a message naming the value, nothing written.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END;
$$;
SELECT pg_temp.try($$SELECT analytics.delete_customer('nobody')$$);
SELECT pg_temp.try($$SELECT analytics.delete_customer(NULL)$$);
SELECT pg_temp.try($$SELECT analytics.set_timezone('Mars/Olympus_Mons')$$);
SELECT pg_temp.try($$SELECT analytics.set_timezone(NULL)$$);
SELECT pg_temp.try($$SELECT analytics.purge_logs(NULL)$$);
SELECT pg_temp.try($$SELECT analytics.purge_logs('infinity')$$);
SELECT timezone FROM analytics.status;

-- The fold-in refuses a transaction snapshot.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.try($$SELECT analytics.rollup_now()$$);
SELECT pg_temp.try($$SELECT analytics.purge_logs(now())$$);
SELECT pg_temp.try($$SELECT analytics.delete_customer('c2')$$);
SELECT pg_temp.try($$SELECT analytics.set_timezone('UTC')$$);
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT pg_temp.try($$SELECT analytics.rollup_now()$$);
ROLLBACK;

-- Logs still cannot be deleted by hand.
SELECT pg_temp.try($$DELETE FROM analytics.logs WHERE customer_identifier = 'c2'$$);
SELECT count(*) > 0 AS c2_logs_kept FROM analytics.logs WHERE customer_identifier = 'c2';

-- purge_logs and delete_customer are not for everyone.
SELECT has_function_privilege('public', 'analytics.purge_logs(timestamptz)', 'EXECUTE') AS public_may_purge,
       has_function_privilege('public', 'analytics.delete_customer(text)', 'EXECUTE') AS public_may_delete;
