-- Hostile input (SPEC section 14): the bounds of every field a writer
-- controls, and a fold that meets logs it cannot count (recorded before the
-- bounds existed) sets them aside instead of stopping.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END;
$$;

INSERT INTO analytics.logs (customer_identifier, model) VALUES ('ok', 'gpt-4o');
SELECT count(*) AS logs_before FROM analytics.logs \gset
SELECT count(*) AS customers_before FROM analytics.customers \gset

-- Each bound: one value just inside (recorded) and values beyond it
-- (22023 naming the field, nothing recorded).
SELECT t.what, pg_temp.try(t.stmt) AS result
  FROM (VALUES
    ('model 255', format('INSERT INTO analytics.logs (customer_identifier, model) VALUES (''in'', %L)', repeat('m', 255))),
    ('model 256', format('INSERT INTO analytics.logs (customer_identifier, model) VALUES (''bad'', %L)', repeat('m', 256))),
    ('model 6400', format('INSERT INTO analytics.logs (customer_identifier, model) VALUES (''bad'', %L)', repeat('m', 6400))),
    ('model 255 multibyte', format('INSERT INTO analytics.logs (customer_identifier, model) VALUES (''in'', %L)', repeat('é', 255))),
    ('model empty', 'INSERT INTO analytics.logs (customer_identifier, model) VALUES (''bad'', '''')'),
    ('thread 256', format('INSERT INTO analytics.logs (customer_identifier, model, thread_identifier) VALUES (''bad'', ''m'', %L)', repeat('t', 256))),
    ('custom empty', 'INSERT INTO analytics.logs (customer_identifier, model, custom_identifier) VALUES (''bad'', ''m'', '''')'),
    ('latency 86400', 'INSERT INTO analytics.logs (customer_identifier, model, latency) VALUES (''in'', ''m'', 86400)'),
    ('latency 86400.001', 'INSERT INTO analytics.logs (customer_identifier, model, latency) VALUES (''bad'', ''m'', 86400.001)'),
    ('latency 1e308', 'INSERT INTO analytics.logs (customer_identifier, model, latency) VALUES (''bad'', ''m'', 1e308)'),
    ('ttft 1e308', 'INSERT INTO analytics.logs (customer_identifier, model, time_to_first_token) VALUES (''bad'', ''m'', 1e308)'),
    ('tokens 2147483647', 'INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES (''in'', ''m'', 2147483647)'),
    ('total_tokens 2147483648', 'INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens) VALUES (''bad'', ''m'', 2000000000, 147483648)'),
    ('cost 1000000', 'INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES (''in'', ''m'', 1000000)'),
    ('cost 1000000.000001', 'INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES (''bad'', ''m'', 1000000.000001)'),
    ('cost 1e19', 'INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES (''bad'', ''m'', 10000000000000000000)'),
    ('created_at 2000-01-01', 'INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES (''in'', ''m'', ''2000-01-01 00:00+00'')'),
    ('created_at 1999-12-31', 'INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES (''bad'', ''m'', ''1999-12-31 23:59:59+00'')'),
    ('created_at now + 4 min', 'INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES (''in'', ''m'', now() + interval ''4 minutes'')'),
    ('created_at now + 6 min', 'INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES (''bad'', ''m'', now() + interval ''6 minutes'')'),
    ('created_at 2099', 'INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES (''bad'', ''m'', ''2099-01-01'')'),
    ('error_message 1 MB', format('INSERT INTO analytics.logs (customer_identifier, model, error_message) VALUES (''in'', ''m'', %L)', repeat('e', 1048576))),
    ('error_message 1 MB + 1', format('INSERT INTO analytics.logs (customer_identifier, model, error_message) VALUES (''bad'', ''m'', %L)', repeat('e', 1048577))),
    ('metadata 2 MB', format('INSERT INTO analytics.logs (customer_identifier, model, metadata) VALUES (''bad'', ''m'', %L)', jsonb_build_object('k', repeat('x', 2097152)))),
    ('prompt_messages 65 MB', 'INSERT INTO analytics.logs (customer_identifier, model, prompt_messages) VALUES (''bad'', ''m'', jsonb_build_array(repeat(''p'', 68157440)))')
  ) t(what, stmt);
-- Only the "in" logs were recorded, and no "bad" customer.
SELECT count(*) - :logs_before AS logs_recorded FROM analytics.logs;
SELECT customer_identifier FROM analytics.customers ORDER BY 1;
-- A cost is stored exactly as sent.
SELECT cost FROM analytics.logs WHERE cost = 1000000;

-- The clock skew is a superuser setting; a larger one lets later logs in.
SET analytics.max_clock_skew = '1h';
SELECT pg_temp.try('INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES (''in'', ''m'', now() + interval ''50 minutes'')') AS skew_1h;
SELECT pg_temp.try('INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES (''bad'', ''m'', now() + interval ''70 minutes'')') AS skew_1h_beyond;
RESET analytics.max_clock_skew;
SELECT setting, unit, context FROM pg_settings WHERE name = 'analytics.max_clock_skew';

-- Updatable columns keep their bounds.
SELECT pg_temp.try(format('UPDATE analytics.logs SET error_message = %L WHERE customer_identifier = ''ok''', repeat('e', 1048577))) AS update_error_message;
SELECT pg_temp.try(format('UPDATE analytics.logs SET metadata = %L WHERE customer_identifier = ''ok''', jsonb_build_object('k', repeat('x', 2097152)))) AS update_metadata;
SELECT count(*) AS long_messages FROM analytics.logs WHERE length(error_message) > 1048576;
-- A log recorded before the bounds (triggers off here) keeps what it has:
-- its other columns can still change.
SET session_replication_role = replica;
INSERT INTO analytics.logs (customer_identifier, model, cost, error_message)
VALUES ('ok', 'm', 0, repeat('e', 1048577));
RESET session_replication_role;
SELECT pg_temp.try('UPDATE analytics.logs SET metadata = ''{"note": 1}'' WHERE length(error_message) > 1048576') AS update_other_column;


-- Customers: name and email of at most 1000 characters.
SELECT pg_temp.try(format('SELECT analytics.upsert_customer(%L)', jsonb_build_object('customer_identifier', 'named', 'name', repeat('n', 1000)))) AS name_1000;
SELECT pg_temp.try(format('SELECT analytics.upsert_customer(%L)', jsonb_build_object('customer_identifier', 'named', 'name', repeat('n', 1001)))) AS name_1001;
SELECT pg_temp.try(format('SELECT analytics.upsert_customer(%L)', jsonb_build_object('customer_identifier', 'named', 'email', repeat('n', 5000)))) AS email_5000;
SELECT pg_temp.try(format('UPDATE analytics.customers SET email = %L WHERE customer_identifier = ''named''', repeat('n', 1001))) AS update_email;
SELECT pg_temp.try(format('SELECT analytics.upsert_customer(%L)', jsonb_build_object('customer_identifier', 'named', 'metadata', jsonb_build_object('k', repeat('x', 1048576))))) AS metadata_1mb;
SELECT pg_temp.try(format('UPDATE analytics.customers SET metadata = %L WHERE customer_identifier = ''named''', jsonb_build_object('k', repeat('x', 1048576)))) AS update_metadata;
SELECT length(name) AS name_length, email, metadata FROM analytics.customers WHERE customer_identifier = 'named';

------------------------------------------------------------------------
-- Logs the fold cannot count.  Written with the triggers off, as 1.0 could
-- record them: 121 latencies of 1e308 for one customer in a row (any two
-- overflow their sum) and a model too long for the rollup's index, of a
-- customer whose row is missing, among good logs.
-- The transaction's lock keeps the test instance's worker waiting, so that
-- this session's rollup_now() meets them.
BEGIN;
LOCK TABLE analytics.logs IN ROW EXCLUSIVE MODE;
SET LOCAL session_replication_role = replica;
INSERT INTO analytics.logs (customer_identifier, model, cost, latency)
SELECT 'victim', 'gpt-4o', 1, 1e308 FROM generate_series(1, 121);
INSERT INTO analytics.logs (customer_identifier, model, cost)
SELECT 'longmodel', string_agg(md5(i::text), ''), 4 FROM generate_series(1, 200) i;
SET LOCAL session_replication_role = origin;
INSERT INTO analytics.customers (customer_identifier) VALUES ('victim');
INSERT INTO analytics.logs (customer_identifier, model, cost, latency)
SELECT 'good' || (i % 7), 'gpt-4o', i / 100.0, i FROM generate_series(1, 200) i;
INSERT INTO analytics.logs (customer_identifier, model, cost, latency) VALUES ('victim', 'gpt-4o', 8, 1);
-- The fold goes past them: every good log is folded, 121 are set aside
-- (the first 1e308 is counted; adding any other overflows), and the
-- missing customer is created as the fold would have.
SET LOCAL client_min_messages = error;
SELECT analytics.rollup_now() > 0 AS folded;
COMMIT;
SELECT logs_pending, logs_set_aside, last_error FROM analytics.status;
SELECT a.customer_identifier, a.sqlstate, l.latency, length(l.model) AS model_length, count(*)
  FROM analytics.rollup_set_aside a JOIN analytics.logs l ON l.id = a.log_id
 GROUP BY 1, 2, 3, 4 ORDER BY 1;
SELECT customer_identifier FROM analytics.customers WHERE customer_identifier = 'longmodel';

-- The views work and equal the raw GROUP BY over the logs not set aside.
CREATE TEMP VIEW counted AS
SELECT * FROM analytics.logs l
 WHERE NOT EXISTS (SELECT 1 FROM analytics.rollup_set_aside a WHERE a.log_id = l.id);
SELECT count(*) AS users_mismatches FROM (
    SELECT customer_identifier, requests, cost, avg_latency FROM analytics.users WHERE requests > 0
    EXCEPT
    SELECT customer_identifier, count(*), sum(cost), sum(latency) / count(latency) FROM counted
     WHERE customer_identifier IS NOT NULL GROUP BY 1) x;
SELECT count(*) AS cost_by_user_mismatches FROM (
    SELECT day, customer_identifier, requests, cost FROM analytics.cost_by_user
    EXCEPT
    SELECT timezone('UTC', created_at)::date, customer_identifier, count(*), sum(cost) FROM counted
     WHERE customer_identifier IS NOT NULL GROUP BY 1, 2) x;
SELECT count(*) AS dau_mismatches FROM (
    SELECT day, active_users, requests FROM analytics.daily_active_users
    EXCEPT
    SELECT timezone('UTC', created_at)::date, count(DISTINCT customer_identifier), count(*) FROM counted
     WHERE customer_identifier IS NOT NULL GROUP BY 1) x;
SELECT customer_identifier, requests, cost FROM analytics.top_users(now() - interval '1 day', now() + interval '1 day', 'cost', 3);

-- Later passes fold on; set_timezone, purge_logs and delete_customer work.
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('victim', 'gpt-4o', 16);
SELECT analytics.rollup_now() >= 0 AS folded_later;
SELECT analytics.set_timezone('Europe/Paris');
SELECT requests, cost FROM analytics.users WHERE customer_identifier = 'victim';
SELECT analytics.purge_logs(now() - interval '1 day') AS purged;
SELECT analytics.delete_customer('victim');
SELECT customer_identifier FROM analytics.rollup_set_aside;
SELECT logs_pending, logs_set_aside FROM analytics.status;
