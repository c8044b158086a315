-- Admission and rate limits (SPEC section 10): admit() and its SQLSTATEs,
-- estimates held against budgets and settled by logs, expiry, the sliding
-- rate window, check_budget()'s new columns.  Concurrency is in
-- specs/admission_*.spec and t/025_admission_stress.pl.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- admit() or the SQLSTATE of its error (whose effects are rolled back).
CREATE FUNCTION pg_temp.try_admit(ident text, cost numeric DEFAULT 0, tokens integer DEFAULT 0)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics.admit(ident, cost, tokens);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END;
$$;

-- A log, or the SQLSTATE of its error.
CREATE FUNCTION pg_temp.try_log(ident text, cost numeric, admission bigint DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id)
    VALUES (ident, 'gpt-4o', cost, admission);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END;
$$;

-- The message of an error, to see what it names.
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END;
$$;

-- Every budget counter against the raw rows: spend = the logs of its
-- period, reserved = the estimates of the open admissions a log of the
-- period may settle (made before its end, expiring after its start; test
-- data here never lets one expire unchecked).
CREATE VIEW pg_temp.counter_mismatches AS
SELECT count(*) AS counter_mismatches
  FROM analytics.budget_counters b
 WHERE b.spend <> (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
                    WHERE l.customer_identifier = b.customer_identifier
                      AND l.created_at >= b.period_start AND l.created_at < b.period_end)
    OR b.reserved <> (SELECT coalesce(sum(a.estimated_cost), 0) FROM analytics.admissions a
                       WHERE a.customer_identifier = b.customer_identifier
                         AND a.settled_by IS NULL AND a.expires_at > clock_timestamp()
                         AND a.created_at < b.period_end AND a.expires_at > b.period_start);

-- An unknown customer is admitted and created; the admission is open.
SELECT analytics.admit('alice', 0.5, 100) > 0 AS admitted;
SELECT customer_identifier, period_budget, rate_limit FROM analytics.customers;
SELECT customer_identifier, estimated_cost, estimated_tokens, settled_by,
       expires_at - created_at AS held_for
  FROM analytics.admissions;
SELECT analytics.admit('alice') > (SELECT min(id) FROM analytics.admissions) AS later_id;

-- Bad arguments: 22023 naming the field, nothing admitted.
SELECT pg_temp.error_of($$SELECT analytics.admit(NULL)$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('')$$);
SELECT pg_temp.error_of($$SELECT analytics.admit(repeat('x', 256))$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('alice', -0.01)$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('alice', 'NaN')$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('alice', 'Infinity')$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('alice', 1000000.01)$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('alice', NULL)$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('alice', 0, -1)$$);
SELECT pg_temp.error_of($$SELECT analytics.admit('alice', 0, NULL)$$);
SELECT count(*) AS admissions FROM analytics.admissions;
SELECT count(*) AS customers FROM analytics.customers;

-- Only at READ COMMITTED.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.error_of($$SELECT analytics.admit('alice')$$);
ROLLBACK;

-- A blocked customer: UA003.
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "bob"}');
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'bob';
SELECT pg_temp.error_of($$SELECT analytics.admit('bob', 0.01)$$);
SELECT count(*) AS bob_admissions FROM analytics.admissions WHERE customer_identifier = 'bob';

-- A $1 period budget and $0.01 estimates: exactly ceil(1 / 0.01) admissions,
-- then UA001; the estimates are held (check_budget) and every counter
-- equals the raw rows.
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "carol", "period_budget": 1, "total_budget": 5}');
SELECT result, count(*) FROM (SELECT pg_temp.try_admit('carol', 0.01) AS result
                                FROM generate_series(1, 150)) t
 GROUP BY result ORDER BY result;
SELECT count(*) = ceil(1 / 0.01) AS exactly_ceil_budget_over_estimate
  FROM analytics.admissions WHERE customer_identifier = 'carol';
SELECT allowed, reason, period_spend, period_reserved, period_remaining, total_reserved,
       total_remaining, open_admissions, rate_limit, rate_remaining, retry_after
  FROM analytics.check_budget('carol');
SELECT * FROM pg_temp.counter_mismatches;
SELECT pg_temp.error_of($$SELECT analytics.admit('carol', 0)$$);

-- A log without an admission counts the estimates held: over the budget.
SELECT pg_temp.try_log('carol', 0.001) AS log_without_admission;

-- Logs that settle admissions are never rejected, whatever their real cost:
-- the estimate stops being held, the real cost is spent.
SELECT pg_temp.try_log('carol', 0.05, id) AS settled
  FROM analytics.admissions WHERE customer_identifier = 'carol' ORDER BY id LIMIT 3;
SELECT count(*) FILTER (WHERE settled_by IS NOT NULL) AS settled,
       count(*) FILTER (WHERE settled_by IS NULL) AS open
  FROM analytics.admissions WHERE customer_identifier = 'carol';
SELECT a.settled_by = l.id AS settled_by_its_log
  FROM analytics.admissions a JOIN analytics.logs l ON l.admission_id = a.id
 WHERE a.customer_identifier = 'carol' ORDER BY a.id;
SELECT period_spend, period_reserved, open_admissions FROM analytics.check_budget('carol');
SELECT * FROM pg_temp.counter_mismatches;

-- Settling needs an open admission of the log's own customer (22023 naming
-- admission_id; nothing recorded).
SELECT count(*) AS logs_before FROM analytics.logs;
SELECT pg_temp.error_of(format($$INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id) VALUES ('carol', 'gpt-4o', 0, %s)$$,
       (SELECT min(id) FROM analytics.admissions WHERE customer_identifier = 'carol')));
SELECT pg_temp.error_of(format($$INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id) VALUES ('alice', 'gpt-4o', 0, %s)$$,
       (SELECT max(id) FROM analytics.admissions WHERE customer_identifier = 'carol')));
SELECT pg_temp.error_of($$INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id) VALUES ('carol', 'gpt-4o', 0, 999999999)$$);
SELECT pg_temp.error_of(format($$INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id) VALUES (NULL, 'gpt-4o', 0, %s)$$,
       (SELECT max(id) FROM analytics.admissions WHERE customer_identifier = 'carol')));
SELECT count(*) AS logs_after FROM analytics.logs;
SELECT * FROM pg_temp.counter_mismatches;

-- A rolled-back settlement leaves the admission open.
BEGIN;
SELECT pg_temp.try_log('carol', 0.02, (SELECT max(id) FROM analytics.admissions WHERE customer_identifier = 'carol'));
ROLLBACK;
SELECT settled_by IS NULL AS still_open FROM analytics.admissions
 WHERE id = (SELECT max(id) FROM analytics.admissions WHERE customer_identifier = 'carol');
SELECT * FROM pg_temp.counter_mismatches;

-- Record mode admits over the budget and records every log.
SET analytics.budget_enforcement = record;
SELECT pg_temp.try_admit('carol', 0.01) AS record_mode;
SELECT pg_temp.try_log('carol', 0.001) AS record_mode_log;
RESET analytics.budget_enforcement;

-- Expiry: the estimate is no longer held, and a log naming the admission is
-- checked like one without.
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "dave", "period_budget": 0.10}');
SET analytics.admission_timeout = '1s';
SELECT analytics.admit('dave', 0.10) > 0 AS admitted;
SELECT pg_temp.error_of($$SELECT analytics.admit('dave', 0.01)$$);
SELECT pg_sleep(1.2);
RESET analytics.admission_timeout;
SELECT period_reserved, open_admissions FROM analytics.check_budget('dave');
SELECT pg_temp.try_admit('dave', 0.04) AS after_expiry;
SELECT reserved FROM analytics.budget_counters
 WHERE customer_identifier = 'dave' AND period_start <> '-infinity';
SELECT pg_temp.try_log('dave', 0.07, (SELECT min(id) FROM analytics.admissions WHERE customer_identifier = 'dave')) AS expired_checked_like_none;
SELECT (SELECT settled_by FROM analytics.admissions WHERE customer_identifier = 'dave' ORDER BY id LIMIT 1) IS NULL AS expired_not_settled;
SELECT pg_temp.try_log('dave', 0.01) AS over_with_held;
SELECT * FROM pg_temp.counter_mismatches;

-- Rate limits: rate_limit 3 admits 3 then UA004 with when to retry.
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "erin", "rate_limit": 3, "token_rate_limit": 100}');
SELECT pg_temp.try_admit('erin', 0, 10) AS r FROM generate_series(1, 4);
DO $$
BEGIN
    PERFORM analytics.admit('erin');
EXCEPTION WHEN OTHERS THEN
    DECLARE
        d text;
        h text;
    BEGIN
        GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
        RAISE NOTICE '%: %', SQLSTATE, SQLERRM;
        RAISE NOTICE 'DETAIL: %', regexp_replace(d, '[0-9.]+ s \(at [^)]*\)', 'N s (at T)');
        RAISE NOTICE 'HINT: %', h;
    END;
END;
$$;
SELECT rate_limit, rate_remaining, token_rate_limit, token_rate_remaining,
       retry_after > interval '0' AND retry_after <= interval '60 seconds' AS retry_within_a_minute,
       allowed, reason
  FROM analytics.check_budget('erin');
-- Its retry_after is when the oldest of the window leaves it.
SELECT abs(extract(epoch FROM (c.retry_after - ((SELECT min(created_at) FROM analytics.admissions WHERE customer_identifier = 'erin') + interval '60 seconds' - clock_timestamp())))) < 0.5 AS retry_after_right
  FROM analytics.check_budget('erin') c;

-- An estimate above token_rate_limit could never pass: 22023.
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "frank", "token_rate_limit": 100}');
SELECT pg_temp.error_of($$SELECT analytics.admit('frank', 0, 101)$$);
SELECT pg_temp.try_admit('frank', 0, 60) AS t60, pg_temp.try_admit('frank', 0, 50) AS t50,
       pg_temp.try_admit('frank', 0, 40) AS t40, pg_temp.try_admit('frank', 0, 1) AS t1;

-- The window itself, at fixed times: admissions at t, t+10 s, t+20 s of
-- 30, 30 and 40 tokens.
INSERT INTO analytics.customers (customer_identifier) VALUES ('gina');
INSERT INTO analytics.admissions (customer_identifier, created_at, expires_at, estimated_cost, estimated_tokens)
VALUES ('gina', '2026-01-01 00:00:00', '2026-01-01 00:10:00', 0, 30),
       ('gina', '2026-01-01 00:00:10', '2026-01-01 00:10:10', 0, 30),
       ('gina', '2026-01-01 00:00:20', '2026-01-01 00:10:20', 0, 40);
SELECT at, (r).requests, (r).tokens, (r).retry_at
  FROM (SELECT at::timestamptz, analytics._admission_rate('gina', rl, NULL, at::timestamptz, 0) AS r
          FROM (VALUES ('2026-01-01 00:00:30', 3), ('2026-01-01 00:00:30', 2),
                       ('2026-01-01 00:00:59.999999', 3), ('2026-01-01 00:01:00', 3),
                       ('2026-01-01 00:01:20', 1)) v (at, rl)) s;
SELECT est, (r).requests, (r).tokens, (r).retry_at
  FROM (SELECT est, analytics._admission_rate('gina', NULL, 100, '2026-01-01 00:00:30', est) AS r
          FROM (VALUES (0), (1), (31), (61), (100)) v (est)) s;

-- customer_params keys: integers of at least 1, or null.
SELECT pg_temp.error_of($$SELECT analytics.upsert_customer('{"customer_identifier": "erin", "rate_limit": 0}')$$);
SELECT pg_temp.error_of($$SELECT analytics.upsert_customer('{"customer_identifier": "erin", "rate_limit": 1.5}')$$);
SELECT pg_temp.error_of($$SELECT analytics.upsert_customer('{"customer_identifier": "erin", "token_rate_limit": "10"}')$$);
SELECT pg_temp.error_of($$SELECT analytics.upsert_customer('{"customer_identifier": "erin", "token_rate_limit": 2147483648}')$$);
SELECT rate_limit, token_rate_limit FROM analytics.upsert_customer('{"customer_identifier": "erin", "rate_limit": null}');

-- Unknown customers: allowed, nothing held.
SELECT allowed, reason, open_admissions, period_reserved, total_reserved, rate_remaining, retry_after
  FROM analytics.check_budget('nobody');
SELECT * FROM pg_temp.counter_mismatches;

-- Open admissions are kept however old (a late log naming one is checked
-- like a log without one) until purge_logs() removes them with the logs of
-- their time; settled ones are forgotten once out of the rate window.
SELECT count(*) > 0 AS open_admissions_kept FROM analytics.admissions WHERE settled_by IS NULL;
SELECT analytics.purge_logs(now() + interval '2 days') >= 0 AS purged;
SELECT count(*) AS admissions_after_purge FROM analytics.admissions;
