-- active_users by week and month from the gap counters (usage_day_gaps):
-- every window (whole buckets, buckets cut at either end, a window inside
-- one bucket, unbounded ends) equals count(DISTINCT customer) GROUP BY
-- date_trunc over the raw logs, with logs pending and after folds that
-- bring older days after newer ones and several new days of a customer at
-- once, after delete_customer, a partial deletion by hand and
-- set_timezone; and usage_day_gaps equals the same counts computed with
-- lag() over usage_customer_day.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
SET timezone = 'UTC';

-- The raw logs with a customer and their day in the rollup time zone, as
-- check() finds them (copied there before each comparison).
CREATE TEMP TABLE raw_logs (customer_identifier text, cost numeric, day date);

-- The reference: distinct customers, requests and cost per bucket over the
-- raw logs of the calendar days (rollup time zone) overlapping
-- [since, until); a bucket is complete when its first and last day are in
-- the window and its last day is over.
CREATE FUNCTION pg_temp.raw(since timestamptz, until timestamptz, bucket text)
RETURNS TABLE (bucket_start date, active_users bigint, requests bigint, cost numeric,
               is_partial boolean)
LANGUAGE sql AS $$
WITH z AS (SELECT timezone AS tz FROM analytics.rollup_state),
     w AS (SELECT (since AT TIME ZONE z.tz)::date AS first_in,
                  ((until AT TIME ZONE z.tz) - interval '1 microsecond')::date AS last_in,
                  (now() AT TIME ZONE z.tz)::date AS today
             FROM z),
     l AS (SELECT * FROM raw_logs)
SELECT g.b, g.n, g.r, g.c,
       NOT (g.b >= coalesce(w.first_in, '-infinity')
            AND g.last_day <= coalesce(w.last_in, 'infinity')
            AND g.last_day < w.today)
  FROM (SELECT date_trunc(bucket, l.day)::date AS b,
               (date_trunc(bucket, l.day) + ('1 ' || bucket)::interval - interval '1 day')::date AS last_day,
               count(DISTINCT l.customer_identifier) AS n, count(*) AS r, sum(l.cost) AS c
          FROM l, w
         WHERE l.day >= coalesce(w.first_in, '-infinity')
           AND l.day <= coalesce(w.last_in, 'infinity')
         GROUP BY 1, 2) g, w
$$;

-- The windows tried, each for week and month: how many rows of
-- active_users differ from the reference (both ways), and how many buckets
-- there are (so that a window that happens to be empty shows).
CREATE FUNCTION pg_temp.check(OUT windows integer, OUT buckets bigint, OUT mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
    w record;
    b text;
    n bigint;
BEGIN
    TRUNCATE raw_logs;
    INSERT INTO raw_logs
    SELECT x.customer_identifier, x.cost, (x.created_at AT TIME ZONE s.timezone)::date
      FROM analytics.logs x, analytics.rollup_state s
     WHERE x.customer_identifier IS NOT NULL;
    windows := 0;
    buckets := 0;
    mismatches := 0;
    FOR w IN SELECT * FROM (VALUES
        ('2024-01-01 00:00+00'::timestamptz, '2024-05-01 00:00+00'::timestamptz),  -- whole months
        ('2024-01-29 00:00+00', '2024-03-25 00:00+00'),  -- whole weeks
        ('2024-02-07 13:00+00', '2024-03-20 05:00+00'),  -- cut at both ends
        ('2024-02-13 00:00+00', '2024-02-16 00:00+00'),  -- inside one week and month
        ('2024-03-31 23:00+00', '2024-04-01 01:00+00'),  -- two days across a month's end
        (NULL, '2024-03-10 12:00+00'),
        ('2024-03-03 00:00+00', NULL),
        (NULL, NULL)) v (since, until) LOOP
        FOREACH b IN ARRAY ARRAY['week', 'month'] LOOP
            windows := windows + 1;
            EXECUTE 'SELECT count(*) FROM (SELECT * FROM analytics.active_users($1, $2, $3)
                                           EXCEPT ALL SELECT * FROM pg_temp.raw($1, $2, $3)) x'
               INTO n USING w.since, w.until, b;
            mismatches := mismatches + n;
            EXECUTE 'SELECT count(*) FROM (SELECT * FROM pg_temp.raw($1, $2, $3)
                                           EXCEPT ALL SELECT * FROM analytics.active_users($1, $2, $3)) x'
               INTO n USING w.since, w.until, b;
            mismatches := mismatches + n;
            buckets := buckets + (SELECT count(*) FROM pg_temp.raw(w.since, w.until, b));
        END LOOP;
    END LOOP;
END;
$$;

-- Rows of usage_day_gaps (counts not 0) that differ from the counts of
-- (day, previous active day) over usage_customer_day.
CREATE FUNCTION pg_temp.gap_mismatches() RETURNS bigint LANGUAGE sql AS $$
WITH ref AS (
    SELECT day, prev_day, count(*) AS customers
      FROM (SELECT day, coalesce(lag(day) OVER (PARTITION BY customer_identifier ORDER BY day),
                                 '-infinity') AS prev_day
              FROM analytics.usage_customer_day) x
     GROUP BY 1, 2),
     g AS (SELECT day, prev_day, customers FROM analytics.usage_day_gaps WHERE customers <> 0)
SELECT (SELECT count(*) FROM (SELECT * FROM ref EXCEPT ALL SELECT * FROM g) a)
     + (SELECT count(*) FROM (SELECT * FROM g EXCEPT ALL SELECT * FROM ref) b)
$$;

-- 40 customers active on scattered days of January to mid-April 2024 (gaps
-- of every length), one to three logs a day, each (customer, day) in one of
-- three batches at random: every batch has days older and newer than the
-- others, and several days of most customers.
CREATE TEMP TABLE plan AS
SELECT 'c' || c AS customer, d::date AS day,
       abs(hashtext('b' || c || d::date)) % 3 AS batch,
       1 + abs(hashtext('n' || c || d::date)) % 3 AS n
  FROM generate_series(1, 40) c, generate_series('2024-01-01'::date, '2024-04-15', '1 day') d
 WHERE abs(hashtext(c || '/' || d::date)) % 9 = 0;
SELECT count(*) AS pairs, count(DISTINCT customer) AS customers FROM plan;

CREATE FUNCTION pg_temp.write(b integer) RETURNS void LANGUAGE sql AS $$
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens,
                            completion_tokens, cost)
SELECT p.day + time '00:30' + k * interval '7 hours', p.customer, 'gpt-4o', 10 * k, 5, 0.001 * k
  FROM plan p, generate_series(1, p.n) k
 WHERE p.batch = b
$$;

-- Batch 0, pending, then folded.
SELECT pg_temp.write(0);
SELECT * FROM pg_temp.check();
SELECT analytics.rollup_now() > 0 AS folded;
SELECT * FROM pg_temp.check();
SELECT pg_temp.gap_mismatches();

-- Batch 1: older and newer days than batch 0's, between them too, several
-- per customer in one pass; pending, then folded.
SELECT pg_temp.write(1);
SELECT * FROM pg_temp.check();
SELECT analytics.rollup_now() > 0 AS folded;
SELECT * FROM pg_temp.check();
SELECT pg_temp.gap_mismatches();

-- Batch 2 stays pending; a writer that rolls back counts nowhere.
SELECT pg_temp.write(2);
BEGIN;
INSERT INTO analytics.logs (created_at, customer_identifier, model, cost)
VALUES ('2024-02-14 10:00+00', 'c999', 'gpt-4o', 1), ('2024-02-14 10:00+00', 'c1', 'gpt-4o', 1);
ROLLBACK;
SELECT * FROM pg_temp.check();
SELECT analytics.rollup_now() > 0 AS folded;
SELECT * FROM pg_temp.check();
SELECT pg_temp.gap_mismatches();

-- One more log on a day already active (no new pair), and one for a new
-- customer, folded.
INSERT INTO analytics.logs (created_at, customer_identifier, model, cost)
SELECT p.day + time '12:00', p.customer, 'gpt-4o', 0.5 FROM plan p ORDER BY p.customer, p.day LIMIT 1;
INSERT INTO analytics.logs (created_at, customer_identifier, model, cost)
VALUES ('2024-03-05 08:00+00', 'c41', 'gpt-4o', 0.25);
SELECT analytics.rollup_now() AS folded;
SELECT * FROM pg_temp.check();
SELECT pg_temp.gap_mismatches();

-- delete_customer takes its active days out of the counters.
SELECT analytics.delete_customer('c3');
SELECT analytics.delete_customer('c41');
SELECT * FROM pg_temp.check();
SELECT pg_temp.gap_mismatches();

-- A deletion of some days of a customer (by hand: the counters follow the
-- rows left, the day after a removed one gets a new previous day).
DELETE FROM analytics.usage_customer_day
 WHERE customer_identifier = 'c5'
   AND day IN (SELECT day FROM analytics.usage_customer_day WHERE customer_identifier = 'c5'
               ORDER BY day OFFSET 1 LIMIT 2);
DELETE FROM analytics.usage_customer_day
 WHERE customer_identifier = 'c6'
   AND day = (SELECT min(day) FROM analytics.usage_customer_day WHERE customer_identifier = 'c6');
SELECT pg_temp.gap_mismatches();

-- set_timezone rebuilds the counters by the new zone's days (and puts the
-- rows deleted by hand back, from usage_daily).
SELECT analytics.set_timezone('Pacific/Auckland');
SELECT * FROM pg_temp.check();
SELECT pg_temp.gap_mismatches();
SELECT analytics.set_timezone('America/Los_Angeles');
SELECT pg_temp.write(0);
SELECT * FROM pg_temp.check();
SELECT analytics.rollup_now() > 0 AS folded;
SELECT * FROM pg_temp.check();
SELECT pg_temp.gap_mismatches();

-- Rows whose count fell to 0 are the only extra rows.
SELECT count(*) AS negative FROM analytics.usage_day_gaps WHERE customers < 0;
