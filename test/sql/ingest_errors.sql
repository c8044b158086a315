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

-- Cost: a non-negative JSON number; a numeric string is refused, and NaN and
-- Infinity are not JSON (22P02, as json input says).
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": -0.01}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": "0.5"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": NaN}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": Infinity}');
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

-- JSON columns: the right shape, no NaN/Infinity inside, no \u0000 anywhere.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": ["a"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"score": NaN}}');
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

-- Hostile input (SPEC section 14).  The payload is read by PostgreSQL's own
-- JSON parser: what json and jsonb input reject is rejected.
-- A NUL in a key: json-c would cut the key at the NUL, so the second key
-- would become a second "customer_identifier" and win (22P05, as jsonb).
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "alice", "customer_identifier\u0000": "victim"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"a": 1, "a\u0000b": 2}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"note": "x\u0000"}}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- Lone surrogates, raw control characters, numbers JSON does not allow,
-- single quotes: 22P02.
SELECT analytics.ingest('{"model": "gpt-4o\ud800", "customer_identifier": "new_1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"\udc00": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest(E'{"model": "gpt-4o", "customer_identifier": "new\x01_1"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest(E'{"model": "gpt-4o", "customer_identifier": "new_1", "error_message": "a\tb"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "prompt_tokens": 00}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": 1.}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "latency": .5}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest($$ {"model": 'gpt-4o', "customer_identifier": "new_1"} $$);
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- A duplicate key, at any depth (jsonb would silently keep the last): 22023
-- naming it.  In ingest_openai too, in the request and in the response.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "alice", "customer_identifier": "victim"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_params": {"customer_identifier": "new_1", "name": "A", "name": "B"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"tags": [{"k": 1}, {"k": 1, "k": 2}]}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "unknown": {"a": 1, "a": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"customer_params": {"customer_identifier": "new_1", "customer_identifier": "new_2"}}', '{"model": "gpt-4o-mini"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"user": "new_1"}'::json, '{"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1, "prompt_tokens": 9}}'::json);
\echo :LAST_ERROR_SQLSTATE
-- An object of 100,001 keys whose last repeats an earlier one: found at
-- once (each key is looked up in the object's hash, never compared pairwise).
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {'
       || string_agg(format('"k%s": %s', i, i), ', ') || ', "k77": 0}}')
  FROM generate_series(1, 100000) i;
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- Numbers are read from their text.  Token counts beyond 0..2147483647, even
-- beyond 64 bits (json-c saturates them), are refused naming the field.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "completion_tokens": 10000000000000000000}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "usage": {"prompt_tokens": -100000000000000000000}}');
\echo :LAST_ERROR_SQLSTATE
-- A number double precision cannot hold is refused; cost beyond numeric too.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "latency": 1e400}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "time_to_first_token": 1e-400}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": 1e200000}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "metadata": {"n": 1e-20000}}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- Every other number reaches the insert exactly as sent; the insert trigger
-- checks the bounds.  A trigger that fires first shows what reached it and
-- stops the insert.
CREATE FUNCTION pg_temp.show_values() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'reached the insert: cost %, latency %, prompt_tokens %, metadata %',
    NEW.cost, NEW.latency, NEW.prompt_tokens, NEW.metadata;
END $$;
CREATE TRIGGER aaa_show_values BEFORE INSERT ON analytics.logs
  FOR EACH ROW EXECUTE FUNCTION pg_temp.show_values();
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": 10000000000000000000, "latency": 1e308, "prompt_tokens": 2147483647, "metadata": {"n": 99999999999999999999999, "m": -9223372036854775809, "x": 1.50e-3}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": 1e400, "latency": 4.9e-324}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_batch('{"model": "gpt-4o", "customer_identifier": "new_1", "cost": 0.1000000000000000000001, "prompt_tokens": -0}');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER aaa_show_values ON analytics.logs;
TABLE nothing_written;
-- An error's DETAIL quotes at most 100 characters of a bad value.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "timestamp": "2025-01-01' || repeat('x', 5000000) || '"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "prompt_tokens": ' || repeat('9', 5000000) || '}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "prompt_tokens": 1' || repeat('x', 5000000) || '}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "x": ' || repeat('"', 1) || repeat('é', 300) || '}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
-- One payload (request, response) is at most 64 MB, refused before it is
-- parsed; in a batch each payload is, and a 100 MB model name is refused as
-- its payload's size, naming the payload.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "pad": "'
       || repeat('x', 64 * 1024 * 1024 - 61) || '"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"user": "new_1"}', '{"model": "gpt-4o-mini", "pad": "' || repeat('x', 64 * 1024 * 1024) || '"}');
\echo :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT errors
SELECT analytics.ingest_batch('{"model": "gpt-4o", "customer_identifier": "new_1"}' || E'\n'
       || '{"model": "' || repeat('m', 100 * 1024 * 1024) || '", "customer_identifier": "new_2"}');
\echo :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT never
TABLE nothing_written;
-- Exactly 64 MB is accepted (the pad key is unknown, so ignored).
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "new_1", "pad": "'
       || repeat('x', 64 * 1024 * 1024 - 62) || '"}') > 0 AS accepted;
SELECT count(*) AS new_1_logs FROM analytics.logs WHERE customer_identifier = 'new_1';
SELECT analytics.delete_customer('new_1');
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
-- A payload within 64 MB whose values would take far more memory to read
-- (each {} costs json-c about 790 bytes) is refused before it is read whole;
-- 100,000 objects are read.
SELECT analytics.ingest('{"model": "gpt-4o", "junk": [' || repeat('{},', 299999) || '{}]}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "many_objects", "prompt_messages": [' ||
       repeat('{"role": "user", "content": "x"},', 99999) || '{"role": "user", "content": "x"}]}') > 0 AS many_objects_recorded;
SELECT jsonb_array_length(prompt_messages) AS objects_kept FROM analytics.logs WHERE customer_identifier = 'many_objects';
-- What is written from here on is compared with the state now.
DELETE FROM baseline;
INSERT INTO baseline SELECT * FROM snapshot;
-- A timestamp longer than 64 characters is refused by the field's own error
-- (the date parser would quote an unknown zone name whole).
SELECT analytics.ingest('{"model": "gpt-4o", "timestamp": "2025-01-31 12:00:00 ' || repeat('a', 130) || '"}');
\echo :LAST_ERROR_SQLSTATE
-- A raw control character after a long string: the DETAIL names that byte.
SELECT analytics.ingest(E'{"model": "gpt-4o", "error_message": "' || repeat('a', 150) || E'\x01"}');
\echo :LAST_ERROR_SQLSTATE
TABLE nothing_written;
