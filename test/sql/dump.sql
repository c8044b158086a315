-- pg_dump keeps customers, logs, prices and rollups: dump this database,
-- restore it into a new one, and compare the rows.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;

SELECT analytics.upsert_customer('{"customer_identifier": "before_any_request",
        "name": "Ada", "email": "ada@example.com", "period_budget": 5, "markup_percentage": 10}') IS NOT NULL AS created;
INSERT INTO analytics.logs (created_at, customer_identifier, model, prompt_tokens, completion_tokens,
                            latency, status_code, metadata)
SELECT timestamptz '2026-01-01 00:00:00+00' + i * interval '7 minutes',
       'user_' || (i % 17), (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4'])[1 + i % 3],
       i * 3, i * 2, i / 100.0, CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END,
       jsonb_build_object('i', i)
  FROM generate_series(1, 500) AS i;
-- A price edit and a new price are kept too.
UPDATE analytics.model_prices SET prompt_per_million = 2.75 WHERE model = 'gpt-4o';
INSERT INTO analytics.model_prices VALUES ('my-finetune', 1, 2);
-- A blocked customer with logs must restore.
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'user_3';
-- Purged history (kept in the rollups) and its horizon must survive too.
SELECT analytics.purge_logs('2026-01-02 06:00+00') > 0 AS purged;

-- An admission settled by its log (with a request_id), one still open, and
-- the budget event the log recorded (80% of $5, markup 10%).
SELECT analytics.admit('before_any_request', 0.5) AS adm1 \gset
SELECT analytics.admit('before_any_request', 0.5) AS adm2 \gset
INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id, request_id)
VALUES ('before_any_request', 'gpt-4o', 4.2, :adm1, 'r-1');
SELECT md5(string_agg(a::text, '|' ORDER BY id)) AS admissions_md5 FROM analytics.admissions a \gset
SELECT md5(string_agg(e::text, '|' ORDER BY id)) AS events_md5, count(*) AS events FROM analytics.budget_events e \gset

SELECT md5(string_agg(c::text, '|' ORDER BY customer_identifier)) AS customers_md5 FROM analytics.customers c \gset
SELECT md5(string_agg(l::text, '|' ORDER BY id)) AS logs_md5 FROM analytics.logs l \gset
SELECT md5(string_agg(p::text, '|' ORDER BY model)) AS prices_md5 FROM analytics.model_prices p \gset
SELECT md5(string_agg(u::text, '|' ORDER BY customer_identifier, day, model)) AS usage_md5 FROM analytics.usage_daily u \gset
SELECT watermark AS state_watermark, retained_from AS state_retained_from FROM analytics.rollup_state \gset
SELECT count(*) AS customers, (SELECT count(*) FROM analytics.logs) AS logs FROM analytics.customers;

\! pg_dump -Fc -f results/dump.dump contrib_regression
\! dropdb --force --if-exists analytics_restored && createdb analytics_restored
\! PGOPTIONS='-c analytics.budget_enforcement=record' pg_restore --exit-on-error -d analytics_restored results/dump.dump && echo restored

\c analytics_restored
SELECT md5(string_agg(c::text, '|' ORDER BY customer_identifier)) = :'customers_md5' AS customers_kept FROM analytics.customers c;
SELECT md5(string_agg(l::text, '|' ORDER BY id)) = :'logs_md5' AS logs_kept FROM analytics.logs l;
SELECT md5(string_agg(p::text, '|' ORDER BY model)) = :'prices_md5' AS prices_kept FROM analytics.model_prices p;
-- Admissions and budget events come back as they were: the restored logs
-- (recorded with budgets off) settle nothing again and record no event.
SELECT md5(string_agg(a::text, '|' ORDER BY id)) = :'admissions_md5' AS admissions_kept FROM analytics.admissions a;
SELECT md5(string_agg(e::text, '|' ORDER BY id)) = :'events_md5' AS events_kept, :events AS events_before FROM analytics.budget_events e;
-- After the restore the open admission settles, the settled one does not,
-- and a retried request records nothing.
INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id)
VALUES ('before_any_request', 'gpt-4o', 0.1, :adm2);
SELECT settled_by IS NOT NULL AS open_one_settled FROM analytics.admissions WHERE id = :adm2;
\set VERBOSITY terse
INSERT INTO analytics.logs (customer_identifier, model, cost, admission_id)
VALUES ('before_any_request', 'gpt-4o', 0.1, :adm1);
\set VERBOSITY default
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES ('before_any_request', 'gpt-4o', 0.1, 'r-1');
SELECT count(*) AS r1_logs FROM analytics.logs WHERE request_id = 'r-1';
SELECT count(*) AS state_rows FROM analytics.rollup_state;
SELECT md5(string_agg(u::text, '|' ORDER BY customer_identifier, day, model)) = :'usage_md5' AS rollups_kept FROM analytics.usage_daily u;
SELECT watermark = :'state_watermark' AS watermark_kept, retained_from = :'state_retained_from' AS retained_from_kept
  FROM analytics.rollup_state;
-- New logs continue the id sequence after the restored ones.
INSERT INTO analytics.logs (customer_identifier, model) VALUES ('after_restore', 'gpt-4o');
SELECT id > 500 AS id_continues FROM analytics.logs WHERE customer_identifier = 'after_restore';
\c contrib_regression
\! dropdb --force analytics_restored
