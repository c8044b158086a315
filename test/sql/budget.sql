-- Budgets (SPEC section 4): the insert trigger's rules and SQLSTATEs, markup,
-- period arithmetic for every budget_duration, total budgets, blocked
-- customers, record mode, check_budget(), and the multi-row INSERT and COPY
-- paths.  Concurrency is in specs/budget_*.spec and t/020_budget_stress.pl.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- Insert one log; return 'ok' or the SQLSTATE of the error (whose effects
-- the exception block rolls back).
CREATE FUNCTION pg_temp.try_log(ident text, cost numeric, at timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
    VALUES (ident, 'gpt-4o', cost, at);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END;
$$;

-- Every budget counter equals the same sum over the raw logs of its period;
-- the lifetime counter equals the rollups (which hold purged logs) plus the
-- logs not folded in yet.  Counters are kept for customers whose budget is
-- set.
CREATE VIEW pg_temp.counter_mismatches AS
SELECT count(*) AS counter_mismatches
  FROM analytics.budget_counters b
  JOIN analytics.customers c USING (customer_identifier)
 WHERE b.spend IS DISTINCT FROM CASE WHEN b.period_start = '-infinity' THEN
        (SELECT coalesce(sum(u.cost), 0) FROM analytics.usage_daily u
          WHERE u.customer_identifier = b.customer_identifier)
      + (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
          WHERE l.customer_identifier = b.customer_identifier
            AND l.id > (SELECT watermark FROM analytics.rollup_state))
      ELSE
        (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
          WHERE l.customer_identifier = b.customer_identifier
            AND l.created_at >= b.period_start AND l.created_at < b.period_end)
      END
   AND ((b.period_start = '-infinity' AND c.total_budget IS NOT NULL)
        OR (b.period_start <> '-infinity' AND c.period_budget IS NOT NULL));

------------------------------------------------------------------------
-- UA001: a monthly period budget.  The log that crosses is recorded, the
-- ones after it are not; the next period starts afresh.
SELECT (analytics.upsert_customer('{"customer_identifier": "alice", "period_budget": 1.00,
        "period_start": "2026-01-01T00:00:00Z"}')).customer_identifier;
SELECT n, pg_temp.try_log('alice', 0.40, '2026-01-10 12:00+00') AS result
  FROM generate_series(1, 4) n;
SELECT count(*) AS accepted, sum(cost) AS spent FROM analytics.logs WHERE customer_identifier = 'alice';
-- The error names the customer, the spend, the budget and the period end.
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
VALUES ('alice', 'gpt-4o', 0.01, '2026-01-31 23:59:59+00');
-- February is a new period.
SELECT pg_temp.try_log('alice', 0.40, '2026-02-01 00:00+00') AS feb_first,
       pg_temp.try_log('alice', 0.70, '2026-02-02 00:00+00') AS feb_crossing,
       pg_temp.try_log('alice', 0.01, '2026-02-03 00:00+00') AS feb_over;
-- A raised budget applies to the very next insert; so does a lowered one.
UPDATE analytics.customers SET period_budget = 1.20 WHERE customer_identifier = 'alice';
SELECT pg_temp.try_log('alice', 0.01, '2026-02-04 00:00+00') AS raised,
       pg_temp.try_log('alice', 0.01, '2026-02-05 00:00+00') AS raised_again;
SELECT (analytics.upsert_customer('{"customer_identifier": "alice", "period_budget": 0.5}')).customer_identifier AS lowered;
SELECT pg_temp.try_log('alice', 0.01, '2026-02-06 00:00+00') AS after_lowering,
       pg_temp.try_log('alice', 0.01, '2026-01-06 00:00+00') AS january_too;
SELECT * FROM pg_temp.counter_mismatches;

------------------------------------------------------------------------
-- Markup: spend is billed cost, raw * (1 + markup / 100).
SELECT (analytics.upsert_customer('{"customer_identifier": "bob", "period_budget": 1,
        "markup_percentage": 100, "period_start": "2026-03-01T00:00:00Z"}')).markup_percentage;
-- Billed spend before each log: 0, 0.60, 1.20.
SELECT pg_temp.try_log('bob', 0.30, '2026-03-02 00:00+00') AS first,
       pg_temp.try_log('bob', 0.30, '2026-03-02 00:01+00') AS second,
       pg_temp.try_log('bob', 0.30, '2026-03-02 00:02+00') AS third;
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
VALUES ('bob', 'gpt-4o', 0.30, '2026-03-02 00:03+00');
-- A markup change re-prices the period: billed 0.60 * 1.5 = 0.90 < 1.
UPDATE analytics.customers SET markup_percentage = 50 WHERE customer_identifier = 'bob';
SELECT pg_temp.try_log('bob', 0.30, '2026-03-02 00:04+00') AS repriced,
       pg_temp.try_log('bob', 0.30, '2026-03-02 00:05+00') AS over_again;
SELECT count(*) AS bob_logs, sum(cost) AS raw, sum(cost) * 1.5 AS billed
  FROM analytics.logs WHERE customer_identifier = 'bob';

------------------------------------------------------------------------
-- Period arithmetic.  budget_period_bounds() against an independent
-- computation: the k with anchor + k*d <= at < anchor + (k+1)*d found by
-- scanning k, on wall-clock time in the zone.
CREATE TEMP TABLE anchors (anchor timestamptz, tz text);
INSERT INTO anchors VALUES
    ('2025-01-31 00:00+00', 'UTC'), ('2025-01-31 10:30+00', 'UTC'),
    ('2024-02-29 00:00+00', 'UTC'), ('2025-03-09 07:00+00', 'America/New_York'),
    ('2025-10-26 00:30+00', 'Europe/Berlin'), ('2025-06-15 18:45:12+00', 'Asia/Kolkata');
CREATE TEMP TABLE moments AS
SELECT '2024-06-01 00:00+00'::timestamptz + i * interval '5 days'
       + (i * 7919 % 86400) * interval '1 second' AS at
  FROM generate_series(0, 300) i;
CREATE TEMP TABLE durations (duration text, step interval);
INSERT INTO durations VALUES ('daily', '1 day'), ('weekly', '7 days'),
    ('monthly', '1 month'), ('yearly', '1 year');
CREATE TEMP TABLE periods AS
SELECT a.anchor, a.tz, d.duration,
       (a.anchor AT TIME ZONE a.tz + k * d.step) AT TIME ZONE a.tz AS s,
       (a.anchor AT TIME ZONE a.tz + (k + 1) * d.step) AT TIME ZONE a.tz AS e
  FROM anchors a, durations d, generate_series(-2000, 2000) k;
CREATE INDEX ON periods (anchor, tz, duration, s);
ANALYZE periods;
SELECT d.duration,
       count(*) AS checked,
       count(*) FILTER (WHERE (b.period_start, b.period_end) IS DISTINCT FROM (x.s, x.e)) AS mismatches,
       count(*) FILTER (WHERE NOT (m.at >= b.period_start AND m.at < b.period_end)) AS not_containing
  FROM anchors a CROSS JOIN moments m CROSS JOIN durations d
 CROSS JOIN LATERAL analytics.budget_period_bounds(a.anchor, d.duration, m.at, a.tz) b
  LEFT JOIN LATERAL (
        SELECT p.s, p.e FROM periods p
         WHERE p.anchor = a.anchor AND p.tz = a.tz AND p.duration = d.duration AND p.s <= m.at
         ORDER BY p.s DESC LIMIT 1) x ON true
 GROUP BY d.duration ORDER BY d.duration;

-- A period anchored on January 31: month ends are clamped, every bound is
-- anchor + k months (Feb 28, Mar 31, Apr 30, ... not Feb 28, Mar 28).
SELECT at::date, b.period_start::date, b.period_end::date
  FROM unnest(ARRAY['2026-01-31', '2026-02-27', '2026-02-28', '2026-03-30',
                    '2026-03-31', '2026-04-30', '2026-12-31', '2026-01-30']::timestamptz[]) at
 CROSS JOIN LATERAL analytics.budget_period_bounds('2026-01-31', 'monthly', at, 'UTC') b;
-- Yearly from February 29.
SELECT b.period_start::date, b.period_end::date
  FROM analytics.budget_period_bounds('2024-02-29', 'yearly', '2025-03-01', 'UTC') b;
SELECT * FROM analytics.budget_period_bounds('2026-01-01', 'fortnightly', '2026-02-01', 'UTC');

-- The trigger uses the same periods: for each duration a budget of 0.05,
-- one 0.05 log at the anchor, then a log one second before the period ends
-- (rejected) and one at the period end (accepted, new period).
SELECT d.duration,
       pg_temp.try_log(d.duration || '-user', 0.05, '2025-01-31 00:00+00') AS at_anchor,
       pg_temp.try_log(d.duration || '-user', 0.01,
                       '2025-01-31 00:00+00'::timestamptz + d.step - interval '1 second') AS before_end,
       pg_temp.try_log(d.duration || '-user', 0.01, '2025-01-31 00:00+00'::timestamptz + d.step) AS at_end
  FROM durations d
 CROSS JOIN LATERAL analytics.upsert_customer(jsonb_build_object(
        'customer_identifier', d.duration || '-user', 'period_budget', 0.05,
        'budget_duration', d.duration, 'period_start', '2025-01-31T00:00:00Z')) c
 ORDER BY d.step;

-- Jan 31 anchor in the trigger: the February period ends on Feb 28, the
-- March one on Mar 31, the April one on Apr 30.
SELECT (analytics.upsert_customer('{"customer_identifier": "jan31", "period_budget": 0.05,
        "period_start": "2026-01-31T00:00:00Z"}')).customer_identifier AS created;
SELECT pg_temp.try_log('jan31', 0.05, '2026-02-27 00:00+00') AS p1,
       pg_temp.try_log('jan31', 0.05, '2026-02-27 23:59:59+00') AS p1_over,
       pg_temp.try_log('jan31', 0.05, '2026-02-28 00:00+00') AS p2,
       pg_temp.try_log('jan31', 0.05, '2026-03-30 23:59:59+00') AS p2_over,
       pg_temp.try_log('jan31', 0.05, '2026-03-31 00:00+00') AS p3,
       pg_temp.try_log('jan31', 0.05, '2026-04-29 00:00+00') AS p3_over,
       pg_temp.try_log('jan31', 0.05, '2026-04-30 00:00+00') AS p4;
-- The extension time zone decides where days begin.
SELECT (analytics.upsert_customer('{"customer_identifier": "tokyo", "period_budget": 0.05,
        "budget_duration": "daily", "period_start": "2026-01-01T00:00:00+09:00"}')).customer_identifier AS created;
UPDATE analytics.rollup_state SET timezone = 'Asia/Tokyo';
SELECT * FROM analytics.budget_period('tokyo', '2026-05-05 16:00+00');
SELECT pg_temp.try_log('tokyo', 0.05, '2026-05-05 14:59:59+00') AS may5_tokyo,
       pg_temp.try_log('tokyo', 0.05, '2026-05-05 15:00:00+00') AS may6_tokyo,
       pg_temp.try_log('tokyo', 0.05, '2026-05-05 16:00:00+00') AS may6_over;
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
VALUES ('tokyo', 'gpt-4o', 0.01, '2026-05-05 17:00+00');
UPDATE analytics.rollup_state SET timezone = 'UTC';
SELECT * FROM analytics.budget_period('nobody');

------------------------------------------------------------------------
-- UA002: the lifetime budget counts every period, and logs that were
-- folded into the rollups and purged (usage_daily) too.
SELECT (analytics.upsert_customer('{"customer_identifier": "carol"}')).customer_identifier AS created;
INSERT INTO analytics.usage_daily (customer_identifier, day, model, requests, cost, first_seen, last_seen)
VALUES ('carol', '2020-01-01', 'purged-model', 3, 0.45, '2020-01-01', '2020-01-01');
UPDATE analytics.customers SET total_budget = 0.5, period_budget = 10, budget_duration = 'daily'
 WHERE customer_identifier = 'carol';
SELECT pg_temp.try_log('carol', 0.04, '2026-01-01 00:00+00') AS first,
       pg_temp.try_log('carol', 0.04, '2026-06-01 00:00+00') AS crossing,
       pg_temp.try_log('carol', 0.04, '2026-09-01 00:00+00') AS over;
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
VALUES ('carol', 'gpt-4o', 0.04, '2026-10-01 00:00+00');
SELECT spend AS lifetime_counter FROM analytics.budget_counters
 WHERE customer_identifier = 'carol' AND period_start = '-infinity';

------------------------------------------------------------------------
-- UA003: a blocked customer (even one without a budget) is rejected.
SELECT (analytics.upsert_customer('{"customer_identifier": "dave"}')).customer_identifier AS created;
SELECT pg_temp.try_log('dave', 0.01, now()) AS unblocked;
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'dave';
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('dave', 'gpt-4o', 0.01);
SELECT count(*) AS dave_logs FROM analytics.logs WHERE customer_identifier = 'dave';
-- Customers without a budget never get a counter.
SELECT count(*) AS unbudgeted_counters FROM analytics.budget_counters WHERE customer_identifier = 'dave';

------------------------------------------------------------------------
-- Record mode: accept and count everything, blocked or over budget.
SET analytics.budget_enforcement = record;
SELECT pg_temp.try_log('dave', 0.01, now()) AS blocked_recorded,
       pg_temp.try_log('alice', 5.00, '2026-02-10 00:00+00') AS over_recorded,
       pg_temp.try_log('carol', 1.00, '2026-11-01 00:00+00') AS total_recorded;
RESET analytics.budget_enforcement;
-- ... and counted: the next logs in reject mode see the recorded spend.
SELECT pg_temp.try_log('alice', 0.01, '2026-02-11 00:00+00') AS alice_after;
SELECT (SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'alice'
           AND created_at >= '2026-02-01' AND created_at < '2026-03-01') AS alice_february,
       (SELECT spend FROM analytics.budget_counters WHERE customer_identifier = 'alice'
           AND period_start = '2026-02-01') AS alice_counter;
SELECT * FROM pg_temp.counter_mismatches;

------------------------------------------------------------------------
-- check_budget: unknown, known within budget, exhausted, blocked.  Spends
-- are compared with the same sums over the raw logs.
SELECT * FROM analytics.check_budget('nobody');
SELECT (analytics.upsert_customer(jsonb_build_object('customer_identifier', 'erin',
        'period_budget', 2, 'total_budget', 10, 'markup_percentage', 10,
        'period_start', now() - interval '3 days'))).customer_identifier AS created;
SELECT pg_temp.try_log('erin', 0.50, now() - interval '1 day') AS this_period,
       pg_temp.try_log('erin', 0.25, now() - interval '40 days') AS last_period;
SELECT allowed, reason, period_end = period_start + interval '1 month' AS one_month,
       period_start = (SELECT c.period_start FROM analytics.customers c WHERE customer_identifier = 'erin') AS starts_at_anchor,
       period_spend, period_budget, period_remaining, total_spend, total_budget, total_remaining
  FROM analytics.check_budget('erin');
SELECT analytics.period_spend('erin') AS period_spend,
       (SELECT sum(cost) * 1.1 FROM analytics.logs l, analytics.budget_period('erin') p
         WHERE customer_identifier = 'erin' AND created_at >= p.period_start AND created_at < p.period_end) AS from_logs;
SELECT pg_temp.try_log('erin', 1.40, now()) AS crossing;
SELECT allowed, reason, period_spend, period_remaining, total_spend, total_remaining
  FROM analytics.check_budget('erin');
SELECT pg_temp.try_log('erin', 0.01, now()) AS rejected_as_predicted;
SELECT allowed, reason, total_spend, total_budget FROM analytics.check_budget('carol');
-- A budget that is not set has no remaining amount (null, not 0).
SELECT period_budget, period_remaining, total_budget, total_remaining FROM analytics.check_budget('dave');
SELECT allowed, reason FROM analytics.check_budget('dave');
SET analytics.budget_enforcement = record;
SELECT allowed, reason FROM analytics.check_budget('dave');
RESET analytics.budget_enforcement;
-- Without a budget the spends come from the logs and rollups.
SELECT c.period_spend = (SELECT sum(cost) FROM analytics.logs l, analytics.budget_period('dave') p
                          WHERE customer_identifier = 'dave' AND created_at >= p.period_start
                            AND created_at < p.period_end) AS dave_period_spend_matches,
       c.total_spend = (SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'dave') AS dave_total_matches
  FROM analytics.check_budget('dave') c;

------------------------------------------------------------------------
-- Multi-row INSERT: one rejected row rejects the statement, nothing is
-- written, nothing is counted.
SELECT (analytics.upsert_customer('{"customer_identifier": "frank", "period_budget": 1,
        "period_start": "2026-01-01T00:00:00Z"}')).customer_identifier AS created;
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
SELECT 'frank', 'gpt-4o', 0.30, '2026-01-05 00:00+00' FROM generate_series(1, 5);
SELECT count(*) AS frank_logs FROM analytics.logs WHERE customer_identifier = 'frank';
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at) VALUES
    ('frank', 'gpt-4o', 0.30, '2026-01-05 00:00+00'), ('frank', 'gpt-4o', 0.30, '2026-01-05 00:01+00'),
    ('frank', 'gpt-4o', 0.30, '2026-01-05 00:02+00'), ('frank', 'gpt-4o', 0.30, '2026-01-05 00:03+00');
SELECT count(*) AS frank_logs FROM analytics.logs WHERE customer_identifier = 'frank';

-- COPY goes through the same trigger.
SELECT (analytics.upsert_customer('{"customer_identifier": "grace", "period_budget": 0.10,
        "period_start": "2026-01-01T00:00:00Z"}')).customer_identifier AS created;
COPY analytics.logs (customer_identifier, model, cost, created_at) FROM STDIN;
grace	gpt-4o	0.04	2026-01-02 00:00:00+00
grace	gpt-4o	0.04	2026-01-02 00:01:00+00
\.
COPY analytics.logs (customer_identifier, model, cost, created_at) FROM STDIN;
grace	gpt-4o	0.04	2026-01-02 00:02:00+00
grace	gpt-4o	0.04	2026-01-02 00:03:00+00
\.
SELECT count(*) AS grace_logs, sum(cost) AS grace_spend FROM analytics.logs WHERE customer_identifier = 'grace';
COPY analytics.logs (customer_identifier, model, cost, created_at) FROM STDIN;
grace	gpt-4o	0.04	2026-01-02 00:04:00+00
\.
SELECT count(*) AS grace_logs FROM analytics.logs WHERE customer_identifier = 'grace';

------------------------------------------------------------------------
-- Budget changes and the counters.  A budget set on a customer that already
-- spent without one counts the earlier logs.
SELECT (analytics.upsert_customer('{"customer_identifier": "heidi", "period_budget": 1,
        "period_start": "2026-01-01T00:00:00Z"}')).customer_identifier AS created;
SELECT pg_temp.try_log('heidi', 0.50, '2026-01-02 00:00+00') AS counted;
SELECT (analytics.upsert_customer('{"customer_identifier": "heidi", "period_budget": null}')).customer_identifier AS budget_removed;
SELECT pg_temp.try_log('heidi', 0.60, '2026-01-03 00:00+00') AS uncounted;
SELECT (analytics.upsert_customer('{"customer_identifier": "heidi", "period_budget": 1}')).customer_identifier AS budget_back;
SELECT pg_temp.try_log('heidi', 0.01, '2026-01-04 00:00+00') AS over;
-- Moving period_start moves the periods: 2026-01-03 12:00 starts a new one.
SELECT (analytics.upsert_customer('{"customer_identifier": "heidi", "period_start": "2026-01-03T12:00:00Z"}')).customer_identifier AS moved;
SELECT pg_temp.try_log('heidi', 1.00, '2026-01-04 00:00+00') AS new_period,
       pg_temp.try_log('heidi', 0.01, '2026-01-04 00:01+00') AS over_in_new_period;
-- In the same transaction as earlier inserts, a change applies at once.
BEGIN;
SELECT pg_temp.try_log('ivan', 0.05, '2026-01-02 00:00+00') AS no_budget_yet;
UPDATE analytics.customers SET period_budget = 0.05, period_start = '2026-01-01'
 WHERE customer_identifier = 'ivan';
SELECT pg_temp.try_log('ivan', 0.05, '2026-01-02 00:01+00') AS same_transaction;
COMMIT;
-- A rolled-back insert counts for nothing.
BEGIN;
SELECT pg_temp.try_log('grace', 0.50, '2026-02-02 00:00+00') AS rolled_back;
ROLLBACK;
SELECT pg_temp.try_log('grace', 0.09, '2026-02-02 00:00+00') AS after_rollback,
       pg_temp.try_log('grace', 0.01, '2026-02-02 00:00+00') AS crossing,
       pg_temp.try_log('grace', 0.01, '2026-02-02 00:00+00') AS over;
-- A name change does not wait for writers nor reset counters.
UPDATE analytics.customers SET name = 'Grace' WHERE customer_identifier = 'grace';
SELECT count(*) AS grace_counters FROM analytics.budget_counters WHERE customer_identifier = 'grace';
SELECT * FROM pg_temp.counter_mismatches;
