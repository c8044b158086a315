-- JSON ingest: analytics.ingest(), ingest_openai() and ingest_batch().
-- Every check compares the recorded rows with the payloads (or with the
-- price formula) in SQL, and prints booleans or counts.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
SET TimeZone = 'UTC';

-- Every field of a Keywords AI style payload lands in its column.
\set full '{"model": "gpt-4o-mini", "customer_identifier": "cust_full", "prompt_tokens": 1234, "completion_tokens": 567, "cost": 0.000123, "latency": 1.25, "time_to_first_token": 0.31, "status_code": 201, "error_message": "partial answer", "timestamp": "2025-01-31T12:34:56.789+02:00", "metadata": {"plan": "pro", "tags": ["a", "b"], "ratio": 2.50, "big": 12345678901234567890, "ok": true, "none": null}, "thread_identifier": "thread-1", "custom_identifier": "req-42", "prompt_messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "caf\\u00e9?"}], "completion_message": {"role": "assistant", "content": "Yes."}, "some_unknown_key": [1, 2, 3]}'
SELECT analytics.ingest(:'full') AS full_id \gset
SELECT l.id = :full_id AS id_returned,
       l.created_at = (p ->> 'timestamp')::timestamptz AS created_at,
       l.customer_identifier = p ->> 'customer_identifier' AS customer_identifier,
       l.model = p ->> 'model' AS model,
       l.prompt_tokens = (p ->> 'prompt_tokens')::int AS prompt_tokens,
       l.completion_tokens = (p ->> 'completion_tokens')::int AS completion_tokens,
       l.total_tokens = 1234 + 567 AS total_tokens,
       l.cost::text = p ->> 'cost' AS cost_exact,
       l.latency = (p ->> 'latency')::float8 AS latency,
       l.time_to_first_token = (p ->> 'time_to_first_token')::float8 AS ttft,
       l.status_code = (p ->> 'status_code')::int AS status_code,
       l.error_message = p ->> 'error_message' AS error_message,
       l.thread_identifier = p ->> 'thread_identifier' AS thread_identifier,
       l.custom_identifier = p ->> 'custom_identifier' AS custom_identifier,
       l.metadata = p -> 'metadata' AS metadata,
       l.prompt_messages = p -> 'prompt_messages' AS prompt_messages,
       l.completion_message = p -> 'completion_message' AS completion_message
  FROM analytics.logs l, (SELECT CAST(:'full' AS jsonb) AS p) s
 WHERE l.id = :full_id;
-- Numbers in JSON columns keep the text they were written with; escapes
-- are decoded.
SELECT metadata -> 'ratio' AS ratio, metadata -> 'big' AS big,
       prompt_messages -> 1 ->> 'content' AS decoded
  FROM analytics.logs WHERE id = :full_id;
-- The customer was created by the log.
SELECT customer_identifier, name, email FROM analytics.customers WHERE customer_identifier = 'cust_full';

-- Defaults: absent fields and JSON null give now(), 0 tokens, status 200,
-- no customer, NULL elsewhere; the cost comes from model_prices.
BEGIN;
SELECT analytics.ingest('{"model": "no-price-model", "customer_identifier": null, "cost": null, "metadata": null}') AS min_id \gset
SELECT created_at = now() AS created_now, customer_identifier IS NULL AS no_customer,
       prompt_tokens = 0 AND completion_tokens = 0 AS zero_tokens, cost = 0 AS no_price_zero_cost,
       status_code = 200 AS status_200,
       num_nulls(latency, time_to_first_token, error_message, thread_identifier,
                 custom_identifier, metadata, prompt_messages, completion_message) = 8 AS rest_null
  FROM analytics.logs WHERE id = :min_id;
COMMIT;

-- The usage.* form; top-level counts win over usage.*.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "cust_usage", "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340}}') AS usage_id \gset
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "cust_usage", "prompt_tokens": 7, "usage": {"prompt_tokens": 300, "completion_tokens": 40}}') AS usage2_id \gset
SELECT id = :usage_id AS first, prompt_tokens, completion_tokens, total_tokens
  FROM analytics.logs WHERE id IN (:usage_id, :usage2_id) ORDER BY id;

-- Cost computed from model_prices when absent: the longest prefix's price,
-- computed here from the table.
SELECT analytics.ingest('{"model": "gpt-4o-mini-2024-07-18", "customer_identifier": "cust_price", "prompt_tokens": 123456, "completion_tokens": 7890}') AS p1 \gset
SELECT analytics.ingest('{"model": "claude-sonnet-4-20250514", "customer_identifier": "cust_price", "usage": {"prompt_tokens": 1000, "completion_tokens": 2000}}') AS p2 \gset
SELECT l.model, l.cost > 0 AS positive,
       l.cost = (SELECT (l.prompt_tokens * p.prompt_per_million + l.completion_tokens * p.completion_per_million) / 1000000
                   FROM analytics.model_prices p WHERE starts_with(l.model, p.model)
                  ORDER BY length(p.model) DESC LIMIT 1) AS cost_matches_price
  FROM analytics.logs l WHERE l.id IN (:p1, :p2) ORDER BY l.id;

-- customer_params upserts the customer (as upsert_customer does): created
-- with name and email; a later payload changes the name and leaves the
-- email, which it does not mention.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"customer_identifier": "cust_params", "name": "Ada Lovelace", "email": "ada@example.com", "metadata": {"tier": "gold"}}}') AS cp1 \gset
SELECT customer_identifier, name, email, metadata FROM analytics.customers WHERE customer_identifier = 'cust_params';
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "cust_params", "customer_params": {"name": "Ada King"}}') AS cp2 \gset
SELECT customer_identifier, name, email, metadata FROM analytics.customers WHERE customer_identifier = 'cust_params';
SELECT count(*) AS logs_of_cust_params FROM analytics.logs
 WHERE customer_identifier = 'cust_params' AND id IN (:cp1, :cp2);

-- The payload may be text, json or jsonb; an untyped literal is text.
SELECT analytics.ingest('{"model": "m-text", "customer_identifier": "cust_types"}'::text) > 0 AS text_ok,
       analytics.ingest('{"model": "m-json", "customer_identifier": "cust_types"}'::json) > 0 AS json_ok,
       analytics.ingest('{"model": "m-jsonb", "customer_identifier": "cust_types"}'::jsonb) > 0 AS jsonb_ok,
       analytics.ingest('{"model": "m-unknown", "customer_identifier": "cust_types"}') > 0 AS unknown_ok;
SELECT string_agg(model, ', ' ORDER BY id) AS models FROM analytics.logs WHERE customer_identifier = 'cust_types';
-- From a prepared statement with a parameter of each type.
PREPARE ing_text(text) AS SELECT analytics.ingest($1) > 0 AS recorded;
PREPARE ing_jsonb(jsonb) AS SELECT analytics.ingest($1) > 0 AS recorded;
EXECUTE ing_text('{"model": "m-prepared", "customer_identifier": "cust_types"}');
EXECUTE ing_jsonb('{"model": "m-prepared", "customer_identifier": "cust_types"}');
SELECT count(*) AS prepared_logs FROM analytics.logs WHERE model = 'm-prepared';

-- A timestamp without an offset is in the session's TimeZone.
SET TimeZone = 'America/New_York';
SELECT analytics.ingest('{"model": "gpt-4o", "timestamp": "2025-03-01T10:00:00"}') AS tz_id \gset
SELECT created_at = timestamptz '2025-03-01 15:00:00+00' AS local_time_applied
  FROM analytics.logs WHERE id = :tz_id;
RESET TimeZone;
SET TimeZone = 'UTC';

-- OpenAI: the spec's request body verbatim and a chat.completion response.
\set seed_request '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a long story"}], "customer_params": {"customer_identifier": "customer_1", "name": "Hendrix Liu", "email": "hendrix@keywordsai.co"}}'
BEGIN;
\set seed_response '{"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952, "model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Once upon a time, in a quiet valley...", "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 13, "completion_tokens": 812, "total_tokens": 825, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}, "service_tier": "default", "system_fingerprint": "fp_06737a9306"}'
SELECT analytics.ingest_openai(:'seed_request', :'seed_response', 4.2) AS oa_id \gset
SELECT l.customer_identifier = q -> 'customer_params' ->> 'customer_identifier' AS customer,
       l.model = r ->> 'model' AS model_from_response,
       l.prompt_tokens = (r -> 'usage' ->> 'prompt_tokens')::int AS prompt_tokens,
       l.completion_tokens = (r -> 'usage' ->> 'completion_tokens')::int AS completion_tokens,
       l.prompt_messages = q -> 'messages' AS prompt_messages,
       l.completion_message = r -> 'choices' -> 0 -> 'message' AS completion_message,
       l.latency = 4.2 AS latency,
       l.status_code = 200 AS status_200,
       l.error_message IS NULL AS no_error,
       l.created_at = now() AS created_now,
       l.cost = (SELECT (l.prompt_tokens * p.prompt_per_million + l.completion_tokens * p.completion_per_million) / 1000000
                   FROM analytics.model_prices p WHERE p.model = 'gpt-4o-mini') AS cost_from_gpt_4o_mini_price
  FROM analytics.logs l, (SELECT CAST(:'seed_request' AS jsonb) AS q, CAST(:'seed_response' AS jsonb) AS r) s
 WHERE l.id = :oa_id;
COMMIT;
SELECT customer_identifier, name, email FROM analytics.customers WHERE customer_identifier = 'customer_1';
-- The same with json and jsonb arguments, and without latency.
SELECT analytics.ingest_openai(CAST(:'seed_request' AS json), CAST(:'seed_response' AS json)) > 0 AS json_ok,
       analytics.ingest_openai(CAST(:'seed_request' AS jsonb), CAST(:'seed_response' AS jsonb), 1.5) > 0 AS jsonb_ok;
SELECT count(*) AS customer_1_logs, count(latency) AS with_latency
  FROM analytics.logs WHERE customer_identifier = 'customer_1';

-- OpenAI error objects: status from error.code/type, or given, else 500;
-- the message is kept; the model is the request's; no tokens.
SELECT analytics.ingest_openai(:'seed_request',
    '{"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}') AS e1 \gset
SELECT analytics.ingest_openai(:'seed_request',
    '{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}') AS e2 \gset
SELECT analytics.ingest_openai(:'seed_request',
    '{"error": {"message": "This model''s maximum context length is 128000 tokens", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}') AS e3 \gset
SELECT analytics.ingest_openai(:'seed_request',
    '{"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}}') AS e4 \gset
SELECT analytics.ingest_openai(:'seed_request',
    '{"error": {"message": "Bad gateway", "type": "unknown", "code": null}, "status": 502}') AS e5 \gset
SELECT analytics.ingest_openai(:'seed_request', '{"error": {"message": "Something odd"}}') AS e6 \gset
SELECT analytics.ingest_openai(:'seed_request', '{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}') AS e7 \gset
SELECT id - :e1 + 1 AS n, status_code, error_message, model, customer_identifier,
       prompt_tokens + completion_tokens AS tokens, cost, completion_message IS NULL AS no_completion,
       prompt_messages = CAST(:'seed_request' AS jsonb) -> 'messages' AS prompt_messages
  FROM analytics.logs WHERE id BETWEEN :e1 AND :e7 ORDER BY id;

-- ingest_batch, newline-delimited (blank lines skipped): the count returned
-- is the number of rows recorded, each as its payload says.
CREATE TEMP TABLE before AS SELECT count(*) AS n, max(id) AS last_id FROM analytics.logs;
BEGIN;
SELECT analytics.ingest_batch(
    '{"model": "gpt-4o", "customer_identifier": "batch_a", "prompt_tokens": 10}' || E'\n' ||
    '{"model": "gpt-4o-mini", "customer_identifier": "batch_b", "usage": {"prompt_tokens": 20, "completion_tokens": 2}, "cost": 0.5}' || E'\n' ||
    E'\n' ||
    '   {"model": "o3-mini", "customer_params": {"customer_identifier": "batch_c", "name": "Carol"}, "status_code": 500, "error_message": "boom"}' || E'\r\n' ||
    '{"model": "gpt-4.1", "customer_identifier": "batch_a", "timestamp": "2025-02-01T00:00:00Z"}') AS recorded;
SELECT (SELECT count(*) FROM analytics.logs) - n AS rows_added FROM before;
SELECT customer_identifier, model, prompt_tokens, completion_tokens, cost, status_code, error_message,
       CASE WHEN created_at = now() THEN 'now()' ELSE created_at::text END AS created_at
  FROM analytics.logs WHERE id > (SELECT last_id FROM before) ORDER BY id;
COMMIT;
SELECT name FROM analytics.customers WHERE customer_identifier = 'batch_c';
-- Costs of the batch from model_prices, as for single inserts.
SELECT count(*) AS batch_cost_mismatches FROM analytics.logs l
 WHERE l.id > (SELECT last_id FROM before) AND l.customer_identifier <> 'batch_b'
   AND l.cost IS DISTINCT FROM (SELECT (l.prompt_tokens * p.prompt_per_million + l.completion_tokens * p.completion_per_million) / 1000000
                                  FROM analytics.model_prices p WHERE starts_with(l.model, p.model)
                                 ORDER BY length(p.model) DESC LIMIT 1);

-- ingest_batch, a JSON array; a later payload's customer_params wins.
TRUNCATE before;
INSERT INTO before SELECT count(*), max(id) FROM analytics.logs;
SELECT analytics.ingest_batch('[
  {"model": "gpt-4o", "customer_params": {"customer_identifier": "batch_d", "name": "Dan", "email": "dan@example.com"}},
  {"model": "gpt-4o", "customer_identifier": "batch_d", "metadata": {"note": "has ] and , and \" inside"}},
  {"model": "gpt-4o", "customer_params": {"customer_identifier": "batch_d", "name": "Daniel"}, "prompt_tokens": 5}
]') AS recorded;
SELECT (SELECT count(*) FROM analytics.logs) - n AS rows_added FROM before;
SELECT customer_identifier, prompt_tokens, metadata FROM analytics.logs
 WHERE id > (SELECT last_id FROM before) ORDER BY id;
SELECT name, email FROM analytics.customers WHERE customer_identifier = 'batch_d';
-- Empty batches record nothing.
SELECT analytics.ingest_batch('') AS empty, analytics.ingest_batch(E' \n\n') AS blank,
       analytics.ingest_batch(' [ ] ') AS empty_array;

-- A bigger batch: 2000 generated payloads, compared row by row with the
-- payloads they came from.
TRUNCATE before;
INSERT INTO before SELECT count(*), max(id) FROM analytics.logs;
CREATE TEMP TABLE gen AS
SELECT i, jsonb_build_object('model', (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'gemini-2.0-flash'])[1 + i % 4],
                             'customer_identifier', 'gen_' || (i % 37),
                             'prompt_tokens', i * 3, 'completion_tokens', i % 101,
                             'latency', i / 100.0, 'status_code', CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END,
                             'timestamp', to_char(timestamptz '2025-01-01' + i * interval '1 minute', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) AS p
  FROM generate_series(1, 2000) i;
SELECT analytics.ingest_batch((SELECT string_agg(p::text, E'\n' ORDER BY i) FROM gen)) AS recorded;
SELECT count(*) AS mismatches
  FROM gen g
  FULL JOIN (SELECT row_number() OVER (ORDER BY id) AS i, l.*
               FROM analytics.logs l WHERE id > (SELECT last_id FROM before)) l USING (i)
 WHERE l.model IS DISTINCT FROM g.p ->> 'model'
    OR l.customer_identifier IS DISTINCT FROM g.p ->> 'customer_identifier'
    OR l.prompt_tokens IS DISTINCT FROM (g.p ->> 'prompt_tokens')::int
    OR l.completion_tokens IS DISTINCT FROM (g.p ->> 'completion_tokens')::int
    OR l.latency IS DISTINCT FROM (g.p ->> 'latency')::float8
    OR l.status_code IS DISTINCT FROM (g.p ->> 'status_code')::int
    OR l.created_at IS DISTINCT FROM (g.p ->> 'timestamp')::timestamptz;
-- The same payloads as a JSON array.
SELECT analytics.ingest_batch((SELECT jsonb_agg(p ORDER BY i)::text FROM gen)) AS recorded_again;
SELECT count(*) = 4000 AS all_recorded FROM analytics.logs WHERE id > (SELECT last_id FROM before);
