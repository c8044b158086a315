-- One round of bench/ingest_batch.sql: COPY, then ingest_batch, timed.
SELECT clock_timestamp() AS t0 \gset
COPY analytics.logs (created_at, customer_identifier, model, prompt_tokens, completion_tokens,
                     latency, time_to_first_token, status_code)
  FROM '/tmp/analytics_bench_logs.csv' CSV;
INSERT INTO bench_times SELECT 'copy', :round, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);
SELECT clock_timestamp() AS t0 \gset
SELECT analytics.ingest_batch(payloads) AS recorded FROM bench_ndjson \gset
INSERT INTO bench_times SELECT 'ingest_batch', :round, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);
