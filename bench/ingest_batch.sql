-- Benchmark (not a test): analytics.ingest_batch against COPY of the same
-- rows as CSV into analytics.logs, side by side in one run.  SPEC section 8
-- asks for a ratio of at least 0.5.
--
--   psql -X -d <scratch database> -v rows=200000 -f bench/ingest_batch.sql
--
-- It creates the extension afresh in that database (dropping its data) and
-- writes /tmp/analytics_bench_logs.csv on the server (COPY TO/FROM a server
-- file: run as a superuser or a member of pg_write_server_files and
-- pg_read_server_files).
\set ON_ERROR_STOP on
\if :{?rows}
\else
\set rows 200000
\endif
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;

CREATE TEMP TABLE bench_src AS
SELECT i,
       timestamptz '2025-01-01' + (i % 2592000) * interval '1 second' AS created_at,
       'user_' || (i % 5000) AS customer_identifier,
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4', 'gemini-2.0-flash'])[1 + i % 4] AS model,
       i % 1000 AS prompt_tokens, i % 300 AS completion_tokens,
       (i % 100) / 10.0 AS latency, (i % 50) / 100.0 AS time_to_first_token,
       CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END AS status_code
  FROM generate_series(1, :rows) i;
-- The customers exist for both runs alike.
INSERT INTO analytics.customers (customer_identifier)
SELECT DISTINCT customer_identifier FROM bench_src;
COPY (SELECT created_at, customer_identifier, model, prompt_tokens, completion_tokens,
             latency, time_to_first_token, status_code FROM bench_src ORDER BY i)
  TO '/tmp/analytics_bench_logs.csv' CSV;
CREATE TEMP TABLE bench_ndjson AS
SELECT string_agg(json_build_object(
           'timestamp', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'customer_identifier', customer_identifier, 'model', model,
           'prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens,
           'latency', latency, 'time_to_first_token', time_to_first_token,
           'status_code', status_code)::text, E'\n' ORDER BY i) AS payloads
  FROM bench_src;
CREATE TEMP TABLE bench_times (what text, round int, seconds float8);

-- Two rounds, alternating, to even out caches.
\set round 1
\ir ingest_batch_round.sql
\set round 2
\ir ingest_batch_round.sql

SELECT what, round(min(seconds)::numeric, 3) AS best_seconds FROM bench_times GROUP BY what ORDER BY what;
SELECT round((SELECT min(seconds) FROM bench_times WHERE what = 'copy')::numeric
             / (SELECT min(seconds) FROM bench_times WHERE what = 'ingest_batch')::numeric, 2)
       AS ingest_batch_speed_vs_copy;
