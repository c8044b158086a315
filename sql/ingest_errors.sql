-- JSON ingest, bad input: each case raises a specific SQLSTATE with a
-- message naming the field, and writes nothing (neither the log nor its
-- customer).  The SQLSTATE is printed on the line after each error, then
-- whether logs and customers are exactly as before.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
\set SHOW_CONTEXT never

-- An existing customer whose row must not change, and one log.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"customer_identifier": "known", "name": "Known", "period_budget": 100}}') > 0 AS seeded;
CREATE TEMP VIEW snapshot AS
SELECT (SELECT count(*) FROM analytics.logs) AS logs,
       (SELECT md5(string_agg(c::text, ',' ORDER BY customer_identifier)) FROM analytics.customers c) AS customers;
CREATE TEMP TABLE baseline AS SELECT * FROM snapshot;
CREATE TEMP VIEW nothing_written AS
SELECT s.logs = b.logs AND s.customers = b.customers AS nothing_written FROM snapshot s, baseline b;

-- Malformed JSON: 22P02.
SELECT analytics.ingest('{"model": "gpt-4o",}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
SELECT analytics.ingest('{"model": "gpt-4o"');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
SELECT analytics.ingest('{"model": "gpt-4o"} {"model": "gpt-4o"}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
SELECT analytics.ingest('model=gpt-4o');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
SELECT analytics.ingest('');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
SELECT analytics.ingest(repeat('{"a":', 70) || '1' || repeat('}', 70));
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- Not an object, SQL NULL.
SELECT analytics.ingest('[{"model": "gpt-4o"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('null'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest(NULL::text);
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- model: required, a non-empty string (22023).
SELECT analytics.ingest('{"customer_identifier": "new_1", "prompt_tokens": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": null, "customer_identifier": "new_1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": 4, "customer_identifier": "new_1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "", "customer_identifier": "new_1"}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- Tokens: non-negative integers up to 2^31 - 1.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "prompt_tokens": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "completion_tokens": 1.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "prompt_tokens": "10"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "prompt_tokens": 2147483648}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "usage": {"completion_tokens": -5}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "usage": [10, 2]}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- Cost: a finite non-negative JSON number; a numeric string is refused.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": -0.01}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": "0.5"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": NaN}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": Infinity}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": 1e400}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- Latency, time to first token, status code.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "latency": -Infinity}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "latency": -0.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "time_to_first_token": "fast"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "status_code": 99}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "status_code": "200"}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- Timestamp: an ISO 8601 string.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "timestamp": "yesterday"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "timestamp": "2025-01-31 noonish"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "timestamp": "2025-02-30T10:00:00Z"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "timestamp": "infinity"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "timestamp": 1738000000}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- Customer: identifier 1 to 255 characters, a string; customer_params an
-- object naming the same customer, with valid keys.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": ""}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest(jsonb_build_object('model', 'gpt-4o', 'customer_identifier', repeat('x', 256)));
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": 42}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": "new_1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"name": "Nobody"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "customer_params": {"customer_identifier": "new_2"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"customer_identifier": "new_1", "period_budget": "lots"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"customer_identifier": "new_1", "budget_duration": "hourly"}}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- customer_params is applied before the log is checked: a bad log after a
-- good upsert leaves neither the new customer nor the changed one.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"customer_identifier": "new_1", "name": "New"}, "cost": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"customer_identifier": "known", "name": "Renamed", "period_budget": 1}, "latency": NaN}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- A blocked customer: the insert trigger rejects the log (UA003).
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'known';
TRUNCATE baseline;
INSERT INTO baseline SELECT * FROM snapshot;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "known"}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- JSON columns: the right shape, no NaN/Infinity inside, no integer beyond
-- 64 bits (json-c cannot hold it), no \u0000 in text.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": ["a"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"score": NaN}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"n": 99999999999999999999999}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "prompt_messages": {"role": "user"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "completion_message": "hello"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "error_message": "nul \u0000 byte"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "thread_identifier": 7}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- ingest_openai.
\set req '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "customer_params": {"customer_identifier": "new_1", "name": "New"}}'
SELECT analytics.ingest_openai('[]', '{"model": "gpt-4o-mini"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', '{"model": "gpt-4o-mini", "usage": {"prompt_tokens": -3}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', '{"model": "gpt-4o-mini", "choices": {"message": {}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', '{"error": {"message": 500}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', '{"error": {"message": "x"}, "status": 1000}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"messages": "hi"}', '{"model": "gpt-4o-mini"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"messages": []}', '{"error": {"message": "x"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', '{"model": "gpt-4o-mini"', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', '{"model": "gpt-4o-mini"}', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', '{"model": "gpt-4o-mini"}', 'NaN');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai(:'req', NULL);
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;

-- ingest_batch: one bad payload fails the whole call, the error context
-- names it (payload number, and line or array element), nothing recorded.
\set SHOW_CONTEXT errors
-- NDJSON, bad field in payload 3 (line 4, after a blank line).
SELECT analytics.ingest_batch(
    '{"model": "gpt-4o", "customer_identifier": "new_1"}' || E'\n' ||
    '{"model": "gpt-4o", "customer_params": {"customer_identifier": "new_2", "name": "Two"}}' || E'\n\n' ||
    '{"model": "gpt-4o", "customer_identifier": "new_3", "prompt_tokens": -7}' || E'\n' ||
    '{"model": "gpt-4o", "customer_identifier": "new_4"}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- NDJSON, malformed line 2.
SELECT analytics.ingest_batch(E'{"model": "gpt-4o", "customer_identifier": "new_1"}\n{"model": "gpt-4o", "customer_identifier": "new_2"\n');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- Array, element 2 malformed; element 3 not an object.
SELECT analytics.ingest_batch('[{"model": "gpt-4o", "customer_identifier": "new_1"}, {"model": gpt-4o}]');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_batch('[{"model": "gpt-4o", "customer_identifier": "new_1"}, {"model": "gpt-4o"}, 17]');
\echo :LAST_ERROR_SQLSTATE
-- Array not closed, trailing garbage.
SELECT analytics.ingest_batch('[{"model": "gpt-4o", "customer_identifier": "new_1"}, {"model": "gpt-4o"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_batch('[{"model": "gpt-4o", "customer_identifier": "new_1"}] x');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- An error raised by the insert trigger (blocked customer) in payload 3
-- names it too, and the customers created by payloads 1 and 2 are gone.
SELECT analytics.ingest_batch('[
  {"model": "gpt-4o", "customer_identifier": "new_1"},
  {"model": "gpt-4o", "customer_params": {"customer_identifier": "new_2", "name": "Two"}},
  {"model": "gpt-4o", "customer_identifier": "known"},
  {"model": "gpt-4o", "customer_identifier": "new_4"}
]');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
SELECT analytics.ingest_batch(NULL);
\echo :LAST_ERROR_SQLSTATE
-- The row function works only inside ingest_batch.
SELECT * FROM analytics._ingest_batch_rows('{"model": "gpt-4o"}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
