-- Idempotent logging (SPEC section 10): a log whose (customer, request_id)
-- exists records nothing, and the ingest functions return the existing
-- log's id.  Every path (INSERT, multi-row INSERT, COPY, ingest with text,
-- json and jsonb, ingest_openai, ingest_anthropic, ingest_batch); counts and
-- budget counters compared with the raw logs; bad request_id and
-- admission_id values.  Concurrency is in specs/request_id.spec (the
-- regression test has another name: both would read expected/NAME.out).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
SET TimeZone = 'UTC';

-- Run a statement; 'ok' or its SQLSTATE and message (its effects rolled back).
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END;
$$;

-- A budgeted customer (its counters must count each request once) and one
-- without a budget.
INSERT INTO analytics.customers (customer_identifier, period_budget, period_start)
VALUES ('budgeted', 1000, '2020-01-01T00:00:00Z');

-- INSERT: the second log of a request is skipped (INSERT 0 0, no row back).
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES ('budgeted', 'gpt-4o', 0.5, 'req-1') RETURNING id AS first_id \gset
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES ('budgeted', 'gpt-4o', 0.7, 'req-1') RETURNING id;
SELECT count(*) AS req_1_logs, min(id) = :first_id AS first_kept, sum(cost) AS req_1_cost
  FROM analytics.logs WHERE request_id = 'req-1';
-- Per customer: the same request_id of another customer is another request.
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES ('plain', 'gpt-4o', 0.25, 'req-1');
-- Logs without a customer are one customer (NULLS NOT DISTINCT).
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES (NULL, 'gpt-4o', 0.125, 'req-1');
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES (NULL, 'gpt-4o', 0.125, 'req-1');
-- Without a request_id nothing is idempotent.
INSERT INTO analytics.logs (customer_identifier, model, cost)
VALUES ('plain', 'gpt-4o', 0.01), ('plain', 'gpt-4o', 0.01);
SELECT customer_identifier, request_id, count(*) AS logs
  FROM analytics.logs GROUP BY 1, 2 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST;

-- Multi-row INSERT naming one request twice, and one recorded already:
-- only the first new one is inserted.
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES ('budgeted', 'gpt-4o', 1.5, 'req-2'),
       ('budgeted', 'gpt-4o', 2.5, 'req-2'),
       ('budgeted', 'gpt-4o', 3.5, 'req-1');
SELECT request_id, count(*) AS logs, sum(cost) AS cost
  FROM analytics.logs WHERE customer_identifier = 'budgeted' GROUP BY 1 ORDER BY 1;

-- COPY: duplicates of the file and of the table are skipped.
COPY analytics.logs (customer_identifier, model, cost, request_id) FROM stdin;
budgeted	gpt-4o	0.03	req-3
budgeted	gpt-4o	0.04	req-3
budgeted	gpt-4o	0.05	req-2
plain	gpt-4o	0.06	req-3
\N	gpt-4o	0.07	req-1
\.
SELECT customer_identifier, request_id, count(*) AS logs, sum(cost) AS cost
  FROM analytics.logs WHERE request_id IS NOT NULL
 GROUP BY 1, 2 ORDER BY 1 NULLS FIRST, 2;

-- A rolled-back log does not count: the request can be recorded again.
BEGIN;
SAVEPOINT s;
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES ('budgeted', 'gpt-4o', 9, 'req-4');
ROLLBACK TO SAVEPOINT s;
INSERT INTO analytics.logs (customer_identifier, model, cost, request_id)
VALUES ('budgeted', 'gpt-4o', 0.009, 'req-4');
COMMIT;
SELECT count(*) AS req_4_logs, sum(cost) AS req_4_cost
  FROM analytics.logs WHERE request_id = 'req-4';

-- ingest() with text, json and jsonb: every retry returns the first id and
-- records nothing.
\set payload '{"model": "gpt-4o", "customer_identifier": "budgeted", "cost": 0.011, "request_id": "ing-1"}'
SELECT analytics.ingest(:'payload') AS ing_id \gset
SELECT analytics.ingest(:'payload') = :ing_id AS text_same,
       analytics.ingest(CAST(:'payload' AS json)) = :ing_id AS json_same,
       analytics.ingest(CAST(:'payload' AS jsonb)) = :ing_id AS jsonb_same,
       analytics.ingest('{"model": "other", "customer_identifier": "budgeted", "cost": 5, "request_id": "ing-1"}') = :ing_id AS other_fields_same;
SELECT count(*) AS ing_1_logs, min(id) = :ing_id AS id_is_the_log, sum(cost) AS ing_1_cost,
       min(model) AS model
  FROM analytics.logs WHERE request_id = 'ing-1';
-- Twice in one transaction: the transaction's own log is found.
BEGIN;
SELECT analytics.ingest('{"model": "gpt-4o", "cost": 0.012, "request_id": "ing-2"}') AS ing2_id \gset
SELECT analytics.ingest('{"model": "gpt-4o", "cost": 0.012, "request_id": "ing-2"}') = :ing2_id AS own_log_same;
COMMIT;
SELECT count(*) AS ing_2_logs, bool_and(customer_identifier IS NULL) AS no_customer
  FROM analytics.logs WHERE request_id = 'ing-2';
-- customer_params with a retried request: the customer is upserted, the
-- log is not recorded again.
\set cp '{"model": "gpt-4o", "cost": 0.013, "request_id": "ing-3", "customer_params": {"customer_identifier": "cp_user", "name": "First"}}'
SELECT analytics.ingest(:'cp') AS cp_id \gset
SELECT analytics.ingest(:'cp') = :cp_id AS cp_same;
SELECT count(*) AS ing_3_logs FROM analytics.logs WHERE request_id = 'ing-3';

-- ingest_openai and ingest_anthropic read request_id from the request body.
\set oa_req '{"model": "gpt-4o-mini", "user": "budgeted", "request_id": "oa-1", "messages": [{"role": "user", "content": "Hi"}]}'
\set oa_resp '{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}], "usage": {"prompt_tokens": 10, "completion_tokens": 20}}'
SELECT analytics.ingest_openai(:'oa_req', :'oa_resp', 0.5) AS oa_id \gset
SELECT analytics.ingest_openai(:'oa_req', :'oa_resp', 0.5) = :oa_id AS openai_text_same,
       analytics.ingest_openai(CAST(:'oa_req' AS jsonb), CAST(:'oa_resp' AS jsonb)) = :oa_id AS openai_jsonb_same;
\set an_req '{"model": "claude-sonnet-4", "metadata": {"user_id": "budgeted"}, "request_id": "an-1", "messages": [{"role": "user", "content": "Hi"}]}'
\set an_resp '{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514", "content": [{"type": "text", "text": "Hello"}], "usage": {"input_tokens": 12, "output_tokens": 8}}'
SELECT analytics.ingest_anthropic(:'an_req', :'an_resp') AS an_id \gset
SELECT analytics.ingest_anthropic(:'an_req', :'an_resp') = :an_id AS anthropic_text_same,
       analytics.ingest_anthropic(CAST(:'an_req' AS json), CAST(:'an_resp' AS json), 2) = :an_id AS anthropic_json_same;
SELECT request_id, count(*) AS logs, min(id) IN (:oa_id, :an_id) AS first_kept,
       min(customer_identifier) AS customer
  FROM analytics.logs WHERE request_id IN ('oa-1', 'an-1') GROUP BY 1 ORDER BY 1;

-- ingest_batch returns the number recorded: duplicates (of the batch and
-- of the table) are not counted.
SELECT analytics.ingest_batch(
'{"model": "gpt-4o", "customer_identifier": "budgeted", "cost": 0.1, "request_id": "b-1"}
{"model": "gpt-4o", "customer_identifier": "budgeted", "cost": 0.2, "request_id": "b-1"}
{"model": "gpt-4o", "customer_identifier": "budgeted", "cost": 0.3, "request_id": "ing-1"}
{"model": "gpt-4o", "customer_identifier": "budgeted", "cost": 0.4, "request_id": "b-2"}
{"model": "gpt-4o", "customer_identifier": "budgeted", "cost": 0.5}') AS batch_recorded;
SELECT analytics.ingest_batch(
'[{"model": "gpt-4o", "customer_identifier": "budgeted", "cost": 0.1, "request_id": "b-1"},
  {"model": "gpt-4o", "customer_identifier": "plain", "cost": 0.6, "request_id": "b-1"}]') AS array_recorded;
SELECT customer_identifier, request_id, count(*) AS logs, sum(cost) AS cost
  FROM analytics.logs WHERE request_id LIKE 'b-%' OR (request_id IS NULL AND cost = 0.5)
 GROUP BY 1, 2 ORDER BY 1, 2 NULLS LAST;

-- No request is recorded twice, and the budget counters hold each
-- recorded log's cost once: each counter equals the raw sum of its range.
SELECT count(*) AS duplicate_requests FROM (
    SELECT customer_identifier, request_id FROM analytics.logs
     WHERE request_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d;
SELECT b.period_start = '-infinity' AS lifetime,
       b.spend = (SELECT sum(l.cost) FROM analytics.logs l
                   WHERE l.customer_identifier = 'budgeted'
                     AND l.created_at >= b.period_start AND l.created_at < b.period_end) AS counter_equals_logs,
       b.spend
  FROM analytics.budget_counters b WHERE b.customer_identifier = 'budgeted' ORDER BY 1;

-- Bad values: 22023 naming the field, before the CHECK constraint, and
-- nothing is written.
SELECT count(*) AS logs_before FROM analytics.logs \gset
SELECT pg_temp.try($$INSERT INTO analytics.logs (customer_identifier, model, cost, request_id) VALUES ('budgeted', 'gpt-4o', 1, '')$$) AS empty_request_id;
SELECT pg_temp.try(format($$INSERT INTO analytics.logs (customer_identifier, model, cost, request_id) VALUES ('budgeted', 'gpt-4o', 1, %L)$$, repeat('é', 256))) AS long_request_id;
COPY analytics.logs (customer_identifier, model, cost, request_id) FROM stdin;
budgeted	gpt-4o	1	copy-ok
budgeted	gpt-4o	1	
\.
SELECT pg_temp.try(format('SELECT analytics.ingest(%L)', p)) AS ingest_error
  FROM (VALUES
    ('{"model": "m", "request_id": ""}'),
    ('{"model": "m", "request_id": 42}'),
    ('{"model": "m", "request_id": ["a"]}'),
    ('{"model": "m", "request_id": "' || repeat('x', 256) || '"}'),
    ('{"model": "m", "admission_id": 0}'),
    ('{"model": "m", "admission_id": -3}'),
    ('{"model": "m", "admission_id": 1.5}'),
    ('{"model": "m", "admission_id": "7"}'),
    ('{"model": "m", "admission_id": 1e3}'),
    ('{"model": "m", "admission_id": 9223372036854775808}'),
    ('{"model": "m", "admission_id": 99999999999999999999999}')) v (p);
SELECT pg_temp.try(format('SELECT analytics.ingest_openai(%L, %L)', q, :'oa_resp')) AS openai_error
  FROM (VALUES
    ('{"model": "m", "request_id": ""}'),
    ('{"model": "m", "admission_id": 0}')) v (q);
SELECT pg_temp.try(format('SELECT analytics.ingest_batch(%L)', b)) AS batch_error
  FROM (VALUES
    (E'{"model": "m", "request_id": "ok-1"}\n{"model": "m", "request_id": 5}'),
    (E'{"model": "m", "request_id": "ok-1"}\n{"model": "m", "admission_id": true}')) v (b);
SELECT count(*) = :logs_before AS nothing_written FROM analytics.logs;

-- request_id up to 255 characters, and admission_id up to the largest
-- bigint, go into their columns from every ingest path (the trigger names
-- an admission it does not know exactly as sent).
SELECT pg_temp.try('SELECT analytics.ingest(''{"model": "m", "customer_identifier": "plain", "admission_id": 9223372036854775807}'')');
SELECT analytics.admit('plain') AS adm1 \gset
SELECT analytics.admit('plain') AS adm2 \gset
SELECT analytics.admit('plain') AS adm3 \gset
SELECT analytics.admit('plain') AS adm4 \gset
SELECT analytics.ingest(format('{"model": "m", "customer_identifier": "plain", "request_id": "%s", "admission_id": %s}',
                               repeat('é', 255), :adm1)) AS long_id \gset
SELECT length(request_id) AS request_id_chars, admission_id = :adm1 AS admission_kept FROM analytics.logs WHERE id = :long_id;
SELECT analytics.ingest_openai(format('{"model": "m", "user": "plain", "request_id": "oa-2", "admission_id": %s}', :adm2), :'oa_resp') AS oa2_id \gset
SELECT analytics.ingest_anthropic(format('{"model": "m", "metadata": {"user_id": "plain"}, "request_id": "an-2", "admission_id": %s}', :adm3), :'an_resp') AS an2_id \gset
SELECT analytics.ingest_batch(format('{"model": "m", "customer_identifier": "plain", "request_id": "b-3", "admission_id": %s}', :adm4)) AS batch3;
SELECT count(*) AS settled_by_their_logs FROM analytics.admissions a JOIN analytics.logs l ON l.id = a.settled_by
 WHERE a.customer_identifier = 'plain' AND l.admission_id = a.id;
SELECT request_id, admission_id IN (:adm2, :adm3, :adm4) AS admission_kept FROM analytics.logs
 WHERE request_id IN ('oa-2', 'an-2', 'b-3') ORDER BY 1;
