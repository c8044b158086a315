-- Budget alerts (SPEC section 11): analytics.budget_events rows for the
-- thresholds of period_budget and total_budget reached by a log, equal to
-- what the raw logs predict; none for a rejected or rolled-back log; again
-- after a budget change; blocked events; markup; record mode; a counter
-- rebuilt from the logs (as after a restore) records nothing twice; bad
-- alert_thresholds.  The NOTIFY is tested with a real listener in
-- t/035_alerts.pl, concurrency in specs/alerts_race.spec.
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

-- The threshold events the raw logs predict, for customers whose budgets,
-- markup and thresholds did not change: for each (calendar month, UTC) and
-- for all time, the first log (in id order, one writer) whose cumulative
-- billed spend reaches each threshold, with that spend.
CREATE VIEW pg_temp.expected AS
WITH l AS (
    SELECT l.customer_identifier, l.id,
           date_trunc('month', l.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS ps,
           sum(l.cost) OVER (PARTITION BY l.customer_identifier,
                                          date_trunc('month', l.created_at AT TIME ZONE 'UTC')
                             ORDER BY l.id) * (1 + c.markup_percentage / 100) AS period_billed,
           sum(l.cost) OVER (PARTITION BY l.customer_identifier ORDER BY l.id)
               * (1 + c.markup_percentage / 100) AS total_billed,
           c.period_budget, c.total_budget, c.alert_thresholds
      FROM analytics.logs l JOIN analytics.customers c USING (customer_identifier))
(SELECT DISTINCT ON (customer_identifier, ps, t)
        customer_identifier, 'period_threshold' AS kind, t AS threshold,
        trim_scale(period_billed) AS spend, period_budget AS budget, ps AS period_start
   FROM l, unnest(alert_thresholds) t
  WHERE period_billed * 100 >= t * period_budget
  ORDER BY customer_identifier, ps, t, id)
UNION ALL
(SELECT DISTINCT ON (customer_identifier, t)
        customer_identifier, 'total_threshold', t, trim_scale(total_billed), total_budget, NULL
   FROM l, unnest(alert_thresholds) t
  WHERE total_billed * 100 >= t * total_budget
  ORDER BY customer_identifier, t, id);

CREATE VIEW pg_temp.events AS
SELECT customer_identifier, kind, threshold, spend, budget, period_start
  FROM analytics.budget_events WHERE kind <> 'blocked';

-- Events and predictions of the customers given, both ways.
CREATE FUNCTION pg_temp.mismatches(idents text[]) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        (SELECT * FROM pg_temp.expected WHERE customer_identifier = ANY (idents)
         EXCEPT ALL SELECT * FROM pg_temp.events WHERE customer_identifier = ANY (idents))
        UNION ALL
        (SELECT * FROM pg_temp.events WHERE customer_identifier = ANY (idents)
         EXCEPT ALL SELECT * FROM pg_temp.expected WHERE customer_identifier = ANY (idents))) d
$$;

------------------------------------------------------------------------
-- Thresholds 50/80/100 of a monthly period budget of 10 and a total budget
-- of 25, over two months; the default is {80,100}.
SELECT (analytics.upsert_customer('{"customer_identifier": "p", "period_budget": 10,
        "total_budget": 25, "period_start": "2026-01-01T00:00:00Z",
        "alert_thresholds": [100, 50, 80]}')).alert_thresholds;
SELECT (analytics.upsert_customer('{"customer_identifier": "d", "period_budget": 3,
        "period_start": "2026-01-01T00:00:00Z"}')).alert_thresholds AS default_thresholds;
SELECT n, pg_temp.try_log('p', 1.5, '2026-01-01 00:00+00'::timestamptz + n * interval '1 hour') AS jan
  FROM generate_series(1, 9) n;
SELECT n, pg_temp.try_log('p', 2.25, '2026-02-01 00:00+00'::timestamptz + n * interval '1 hour') AS feb
  FROM generate_series(1, 6) n;
SELECT n, pg_temp.try_log('d', 1, '2026-01-05 00:00+00'::timestamptz + n * interval '1 hour') AS d
  FROM generate_series(1, 4) n;
SELECT kind, threshold, spend, budget, period_start, period_end, notified
  FROM analytics.budget_events ORDER BY id;
SELECT pg_temp.mismatches('{p,d}') AS mismatches;
-- Each counter holds the thresholds recorded for it.
SELECT customer_identifier, period_start, alerted
  FROM analytics.budget_counters ORDER BY 1, 2;

------------------------------------------------------------------------
-- A rejected log records nothing: this one reaches 80% of the period budget
-- (6 + 3 of 10) but is rejected by the total budget (6 of 5 spent before
-- it), and the period event goes with it.
SELECT (analytics.upsert_customer('{"customer_identifier": "r", "period_budget": 10,
        "total_budget": 5, "period_start": "2026-01-01T00:00:00Z",
        "alert_thresholds": [50, 80, 100]}')).customer_identifier;
SELECT pg_temp.try_log('r', 6, '2026-01-02 00:00+00') AS first,
       pg_temp.try_log('r', 3, '2026-01-03 00:00+00') AS rejected;
SELECT kind, threshold, spend FROM analytics.budget_events
 WHERE customer_identifier = 'r' ORDER BY id;
SELECT alerted FROM analytics.budget_counters
 WHERE customer_identifier = 'r' ORDER BY period_start;

------------------------------------------------------------------------
-- A rolled-back log records nothing, a log rolled back to a savepoint
-- neither; the next log that reaches the threshold records it.
SELECT (analytics.upsert_customer('{"customer_identifier": "rb", "period_budget": 10,
        "period_start": "2026-01-01T00:00:00Z", "alert_thresholds": [50]}')).customer_identifier;
BEGIN;
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
VALUES ('rb', 'gpt-4o', 6, '2026-01-02 00:00+00');
SELECT count(*) AS events_inside FROM analytics.budget_events WHERE customer_identifier = 'rb';
ROLLBACK;
BEGIN;
SAVEPOINT s;
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
VALUES ('rb', 'gpt-4o', 7, '2026-01-02 00:00+00');
ROLLBACK TO SAVEPOINT s;
INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
VALUES ('rb', 'gpt-4o', 1, '2026-01-02 00:00+00');
COMMIT;
SELECT count(*) AS events_after_rollbacks FROM analytics.budget_events WHERE customer_identifier = 'rb';
SELECT pg_temp.try_log('rb', 3.5, '2026-01-03 00:00+00') AS below,
       pg_temp.try_log('rb', 0.5, '2026-01-04 00:00+00') AS reaching;
SELECT kind, threshold, spend FROM analytics.budget_events
 WHERE customer_identifier = 'rb' ORDER BY id;
SELECT pg_temp.mismatches('{p,d,r,rb}') AS mismatches;

------------------------------------------------------------------------
-- Markup: billed = raw * 1.5; 50% of 9 is reached at raw 3 (billed 4.5).
SELECT (analytics.upsert_customer('{"customer_identifier": "m", "period_budget": 9,
        "markup_percentage": 50, "period_start": "2026-01-01T00:00:00Z",
        "alert_thresholds": [50, 100]}')).customer_identifier;
SELECT pg_temp.try_log('m', 2.9, '2026-01-02 00:00+00') AS below,
       pg_temp.try_log('m', 0.1, '2026-01-03 00:00+00') AS reaching_50,
       pg_temp.try_log('m', 2.9, '2026-01-04 00:00+00') AS below_100,
       pg_temp.try_log('m', 0.1, '2026-01-05 00:00+00') AS reaching_100,
       pg_temp.try_log('m', 0.1, '2026-01-06 00:00+00') AS rejected;
SELECT kind, threshold, spend, budget FROM analytics.budget_events
 WHERE customer_identifier = 'm' ORDER BY id;
SELECT pg_temp.mismatches('{m}') AS mismatches;

------------------------------------------------------------------------
-- Record mode imports history (as a restore does): logs over the budget
-- are accepted, the thresholds they reach count as reached (in the
-- counters' alerted), and no event is recorded: a restore brings the events
-- back from the dump; back in reject mode a reached threshold does not
-- fire again.
SET analytics.budget_enforcement = record;
SELECT (analytics.upsert_customer('{"customer_identifier": "rec", "period_budget": 2,
        "total_budget": 40, "period_start": "2026-01-01T00:00:00Z",
        "alert_thresholds": [100, 200, 300, 400]}')).customer_identifier;
SELECT n, pg_temp.try_log('rec', 1.5, '2026-01-01 00:00+00'::timestamptz + n * interval '1 day')
  FROM generate_series(1, 5) n;
SELECT count(*) AS events_in_record_mode FROM analytics.budget_events WHERE customer_identifier = 'rec';
SELECT period_start, spend, alerted FROM analytics.budget_counters
 WHERE customer_identifier = 'rec' AND period_start <> '-infinity';
RESET analytics.budget_enforcement;

------------------------------------------------------------------------
-- A counter rebuilt from the logs (counters are not dumped: as after a
-- restore) keeps the thresholds recorded under the same budget.
DELETE FROM analytics.budget_counters WHERE customer_identifier IN ('rb', 'r');
SET analytics.budget_enforcement = record;
SELECT pg_temp.try_log('rb', 0.1, '2026-01-20 00:00+00') AS after_rebuild,
       pg_temp.try_log('r', 0.5, '2026-01-20 00:00+00') AS over_total_after_rebuild;
RESET analytics.budget_enforcement;
SELECT customer_identifier, period_start, spend, alerted FROM analytics.budget_counters
 WHERE customer_identifier IN ('rb', 'r') ORDER BY 1, 2;
SELECT customer_identifier, count(*) AS events FROM analytics.budget_events
 WHERE customer_identifier IN ('rb', 'r') GROUP BY 1 ORDER BY 1;
SELECT pg_temp.mismatches('{rb,r}') AS mismatches;

------------------------------------------------------------------------
-- A budget change in a period: the thresholds fire again when the spend
-- reaches them under the new budget.  The total budget is unchanged, so
-- its thresholds do not.
SELECT (analytics.upsert_customer('{"customer_identifier": "c", "period_budget": 10,
        "total_budget": 100, "period_start": "2026-01-01T00:00:00Z",
        "alert_thresholds": [10, 50, 80]}')).customer_identifier;
SELECT pg_temp.try_log('c', 8, '2026-01-02 00:00+00') AS to_8;
SELECT (analytics.upsert_customer('{"customer_identifier": "c", "period_budget": 20}')).period_budget;
SELECT pg_temp.try_log('c', 1, '2026-01-03 00:00+00') AS to_9,
       pg_temp.try_log('c', 1, '2026-01-04 00:00+00') AS to_10,
       pg_temp.try_log('c', 6, '2026-01-05 00:00+00') AS to_16;
-- Lowered: the next log fires what the spend already reaches.
UPDATE analytics.customers SET period_budget = 17 WHERE customer_identifier = 'c';
SELECT pg_temp.try_log('c', 0.5, '2026-01-06 00:00+00') AS to_16_5;
-- A change of the thresholds alone: they apply from the next log.
SELECT (analytics.upsert_customer('{"customer_identifier": "c", "alert_thresholds": [90]}')).alert_thresholds;
SELECT pg_temp.try_log('c', 0.5, '2026-01-07 00:00+00') AS to_17;
SELECT kind, threshold, spend, budget FROM analytics.budget_events
 WHERE customer_identifier = 'c' ORDER BY id;
-- No thresholds: no events.
SELECT (analytics.upsert_customer('{"customer_identifier": "c", "alert_thresholds": null}')).alert_thresholds;
SELECT (analytics.upsert_customer('{"customer_identifier": "c", "period_budget": 1000}')).period_budget;
SELECT pg_temp.try_log('c', 500, '2026-01-08 00:00+00') AS big;
SELECT count(*) AS c_events FROM analytics.budget_events WHERE customer_identifier = 'c';

------------------------------------------------------------------------
-- Blocked: one event when blocked goes from false to true, none when it
-- stays true or goes back.
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'd';
UPDATE analytics.customers SET blocked = true, name = 'D' WHERE customer_identifier = 'd';
UPDATE analytics.customers SET blocked = false WHERE customer_identifier = 'd';
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'd';
SELECT kind, threshold, spend, budget, period_start, period_end
  FROM analytics.budget_events WHERE customer_identifier = 'd' AND kind = 'blocked' ORDER BY id;
-- A blocked customer without a budget too; a rolled-back block records nothing.
BEGIN;
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'm';
ROLLBACK;
INSERT INTO analytics.customers (customer_identifier) VALUES ('nb');
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'nb';
-- A customer created blocked is blocked from its start: one event; one
-- created unblocked, none.
INSERT INTO analytics.customers (customer_identifier, blocked) VALUES ('ib', true), ('iu', false);
SELECT customer_identifier, count(*) FROM analytics.budget_events
 WHERE kind = 'blocked' GROUP BY 1 ORDER BY 1;

------------------------------------------------------------------------
-- Bad alert_thresholds: upsert_customer names the key (22023) and writes
-- nothing; the table's CHECK guards a direct UPDATE.
SELECT analytics.upsert_customer('{"customer_identifier": "bad", "alert_thresholds": [0]}');
SELECT analytics.upsert_customer('{"customer_identifier": "bad", "alert_thresholds": [1000.5]}');
SELECT analytics.upsert_customer('{"customer_identifier": "bad", "alert_thresholds": ["80"]}');
SELECT analytics.upsert_customer('{"customer_identifier": "bad", "alert_thresholds": 80}');
SELECT analytics.upsert_customer('{"customer_identifier": "bad", "alert_thresholds": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}');
SELECT count(*) AS bad_written FROM analytics.customers WHERE customer_identifier = 'bad';
\set VERBOSITY terse
UPDATE analytics.customers SET alert_thresholds = '{-5}' WHERE customer_identifier = 'p';
UPDATE analytics.customers SET alert_thresholds = '{50,NULL}' WHERE customer_identifier = 'p';
UPDATE analytics.customers SET alert_thresholds = '{{50},{80}}' WHERE customer_identifier = 'p';
\set VERBOSITY default
SELECT alert_thresholds FROM analytics.customers WHERE customer_identifier = 'p';

------------------------------------------------------------------------
-- Only a new budget amount fires recorded thresholds again: not the same
-- amount written differently (10 and 10.0), not a change of the thresholds
-- (a new one fires when reached, a recorded one stays recorded).
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "rf", "period_budget": 10}');
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('rf', 'm', 8.5);
UPDATE analytics.customers SET alert_thresholds = '{50,80,100}' WHERE customer_identifier = 'rf';
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('rf', 'm', 0.01);
UPDATE analytics.customers SET period_budget = 10.0, markup_percentage = 0.0 WHERE customer_identifier = 'rf';
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('rf', 'm', 0.01);
UPDATE analytics.customers SET period_budget = 20 WHERE customer_identifier = 'rf';
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('rf', 'm', 0.01);
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('rf', 'm', 8);
SELECT kind, threshold, spend, budget FROM analytics.budget_events
 WHERE customer_identifier = 'rf' ORDER BY id;

-- A cost with thousands of digits (stored exactly as sent) cannot make the
-- notification too long for NOTIFY: the log that reaches the threshold is
-- recorded, and so is its event.
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "hx", "period_budget": 10}');
INSERT INTO analytics.logs (customer_identifier, model, cost)
VALUES ('hx', 'm', ('1.' || repeat('0', 9000) || '1')::numeric);
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('hx', 'm', 7);
SELECT kind, threshold, length(spend::text) AS spend_digits, budget FROM analytics.budget_events
 WHERE customer_identifier = 'hx' ORDER BY id;
