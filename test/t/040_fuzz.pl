# Fuzzer for JSON ingest (SPEC section 14), on a cluster that preloads the
# library (the rollup worker folds what the fuzzer records).
#
# A PL/pgSQL driver inside the server mutates valid payloads (byte flips,
# \u0000, lone surrogates, raw control characters, extreme numbers, long
# strings, duplicate keys, truncation, deep nesting, splices of two payloads,
# single quotes) and feeds them to every ingest function: ingest(text),
# ingest(json) and ingest(jsonb) (when the text casts), ingest_openai (text,
# json, jsonb) and ingest_batch (NDJSON and arrays).  Each call must either
# record exactly the logs it says (1 for ingest*, N for ingest_batch) or fail
# with an SQLSTATE from an allowlist and write nothing (logs and customers
# unchanged).  At the end the server log has no crash, rollup_now() succeeds
# and analytics.users equals the GROUP BY over the raw logs.
#
#   FUZZ_SEED     random seed, a number in [-1, 1] (default: drawn and printed)
#   FUZZ_SECONDS  time to fuzz (default 35)
#   FUZZ_MAX      stop after this many payloads (default: no limit)
use strict;
use warnings;

use AnalyticsTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $seed    = $ENV{FUZZ_SEED} // sprintf('%.6f', rand() * 2 - 1);
my $seconds = $ENV{FUZZ_SECONDS} // 35;
my $max     = $ENV{FUZZ_MAX} // 0;

diag "fuzz seed $seed for ${seconds}s (FUZZ_SEED, FUZZ_SECONDS, FUZZ_MAX to change)";
my $node = analytics_node('fuzz', conf => "analytics.rollup_interval = '500ms'");
$node->safe_psql('postgres', 'CREATE DATABASE fuzz');
$node->safe_psql('fuzz', 'CREATE EXTENSION analytics');

my ($ret, $out, $err) = $node->psql('fuzz', <<'SQL');
CREATE SCHEMA fuzz;
CREATE TABLE fuzz.corpus (kind text, payload text, response text);
-- Valid payloads: every field of ingest, OpenAI requests with completions
-- and errors.
INSERT INTO fuzz.corpus (kind, payload) VALUES
 ('ingest', '{"model": "gpt-4o", "customer_identifier": "c1"}'),
 ('ingest', '{"model": "gpt-4o-mini", "customer_identifier": "c2", "prompt_tokens": 120, "completion_tokens": 30, "cost": 0.00125, "latency": 1.5, "time_to_first_token": 0.25, "status_code": 200, "timestamp": "2025-01-31T12:00:00Z", "metadata": {"feature": "chat", "n": [1, 2.5, -3e2, true, null]}, "thread_identifier": "t1", "custom_identifier": "x1"}'),
 ('ingest', '{"model": "claude-sonnet-4", "customer_params": {"customer_identifier": "c3", "name": "Three", "email": "c3@example.com", "metadata": {"plan": "pro"}}, "usage": {"prompt_tokens": 7, "completion_tokens": 9}, "prompt_messages": [{"role": "user", "content": "hi \u00e9\ud83d\ude00"}], "completion_message": {"role": "assistant", "content": "hello"}}'),
 ('ingest', '{"model": "gpt-4o", "customer_identifier": "c4", "status_code": 500, "error_message": "upstream \"timeout\"\n", "cost": 0}'),
 ('ingest', '{"model": "gemini-2.0-flash", "customer_params": {"customer_identifier": "c5", "period_budget": 1000, "budget_duration": "monthly"}, "customer_identifier": "c5", "latency": 0.001}'),
 ('ingest', '{"model": "gpt-4o", "customer_identifier": null, "metadata": {"deep": {"a": {"b": {"c": [[[1]]]}}}}}');
INSERT INTO fuzz.corpus (kind, payload, response) VALUES
 ('openai', '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a story"}], "customer_params": {"customer_identifier": "c6", "name": "Six"}}',
            '{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 12, "completion_tokens": 40}, "choices": [{"index": 0, "message": {"role": "assistant", "content": "Once"}}]}'),
 ('openai', '{"model": "gpt-4o", "messages": [], "user": "c7", "metadata": {"k": "v"}}',
            '{"error": {"message": "Rate limit", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}'),
 ('openai', '{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "customer_identifier": "c8"}',
            '{"error": {"message": "bad", "code": 400}, "status": 400}');

-- SQLSTATEs a rejected call may raise: bad input, bounds, budgets.  Not
-- 22003: no sum of a log's values may overflow (total_tokens is bounded).
CREATE TABLE fuzz.allowed (sqlstate text PRIMARY KEY);
INSERT INTO fuzz.allowed VALUES ('22P02'), ('22P05'), ('22023'), ('22004'),
  ('22007'), ('22008'), ('22001'), ('22021'), ('23502'), ('23514'), ('54000'), ('54001'),
  ('UA001'), ('UA002'), ('UA003');
CREATE TABLE fuzz.outcomes (what text, sqlstate text, n bigint, sample text, PRIMARY KEY (what, sqlstate));
CREATE TABLE fuzz.bad (payload text, what text, sqlstate text, message text);

-- The casts of ingest(json) and friends: a text that does not cast raises
-- FZ001, so that the cast's own errors are not taken for the function's.
CREATE FUNCTION fuzz.cast_json(p text) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  RETURN p::json;
EXCEPTION WHEN OTHERS THEN
  RAISE EXCEPTION USING ERRCODE = 'FZ001', MESSAGE = 'cast to json: ' || SQLERRM;
END $$;
CREATE FUNCTION fuzz.cast_jsonb(p text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RETURN p::jsonb;
EXCEPTION WHEN OTHERS THEN
  RAISE EXCEPTION USING ERRCODE = 'FZ001', MESSAGE = 'cast to jsonb: ' || SQLERRM;
END $$;

CREATE FUNCTION fuzz.pick(a text[]) RETURNS text LANGUAGE sql AS
$$ SELECT a[1 + floor(random() * array_length(a, 1))::int] $$;

-- One mutation of p.
CREATE FUNCTION fuzz.mutate1(p text, other text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  len int := length(p);
  pos int := 1 + floor(random() * (length(p) + 1))::int;
  m int := floor(random() * 14)::int;
  k int;
BEGIN
  CASE m
  WHEN 0 THEN	-- byte flip
    RETURN overlay(p PLACING fuzz.pick(ARRAY['"', '{', '}', '[', ']', ',', ':', '\', '0', '9', '-', '.',
      'e', 'E', '+', ' ', 'a', 'é', chr(1), chr(127), '''', 'n', 't', 'f']) FROM pos FOR 1);
  WHEN 1 THEN	-- escapes JSON (or jsonb) refuses, and some it takes
    RETURN overlay(p PLACING fuzz.pick(ARRAY['\u0000', '\ud800', '\udc00', '\ud800\udc00', '\u00e9',
      '\ud800\u0041', '\u', '\x41', '\"', '\\', '\/', '\uDFFF', '\uD83D\uDE00']) FROM pos FOR 0);
  WHEN 2 THEN	-- a raw control character
    RETURN overlay(p PLACING chr(1 + floor(random() * 31)::int) FROM pos FOR 0);
  WHEN 3 THEN	-- an extreme number in place of a number
    RETURN regexp_replace(p, '-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?',
      fuzz.pick(ARRAY['1e308', '1e400', '-0', '0', '10000000000000000000', '99999999999999999999999',
        '-9223372036854775809', '9223372036854775807', '18446744073709551615', '1e-400', '0.1e-20000',
        '1e200000', '2147483647', '2147483648', '4.9e-324', '86401', '1000001', '1e6', '00', '1.',
        '.5', '+1', 'NaN', 'Infinity', '-1', '1E+2', repeat('9', 1 + floor(random() * 3000)::int)]),
      1, 1 + floor(random() * 4)::int);	-- one of the first four numbers
  WHEN 4 THEN	-- a long string
    RETURN overlay(p PLACING repeat(fuzz.pick(ARRAY['x', 'é', '\n', 'ab']), floor(random() * 70000)::int)
      FROM pos FOR 0);
  WHEN 5 THEN	-- a duplicate key after an opening brace
    k := strpos(substr(p, pos), '{');
    IF k = 0 THEN k := strpos(p, '{'); ELSE k := pos + k - 1; END IF;
    IF k = 0 THEN RETURN p; END IF;
    RETURN overlay(p PLACING fuzz.pick(ARRAY['"model": "gpt-4o", ', '"customer_identifier": "victim", ',
      '"cost": 0.5, ', '"metadata": {}, ', '"name": "n", ', '"a": 1, "a": 2, ', '"prompt_tokens": 1, ',
      '"customer_identifier\u0000": "victim", ', '"usage": {}, ', '"error": {"message": "m"}, ']) FROM k + 1 FOR 0);
  WHEN 6 THEN	-- truncation
    RETURN left(p, floor(random() * len)::int);
  WHEN 7 THEN	-- deep nesting as a new value
    k := 1 + floor(random() * 100)::int;
    RETURN regexp_replace(p, '^\s*\{', '{"deep": ' || repeat('[', k) || repeat(']', k) || ', ');
  WHEN 8 THEN	-- splice of two payloads
    RETURN left(p, pos) || substr(other, 1 + floor(random() * length(other))::int);
  WHEN 9 THEN	-- single quotes
    RETURN replace(p, '"', '''');
  WHEN 10 THEN	-- a field of the wrong type
    RETURN regexp_replace(p, '"[a-z_]+": ("[^"]*"|[-0-9.eE]+|\{\}|null|true)',
      '"' || fuzz.pick(ARRAY['model', 'cost', 'latency', 'prompt_tokens', 'timestamp', 'status_code',
        'metadata', 'customer_params', 'usage', 'prompt_messages', 'customer_identifier']) || '": '
      || fuzz.pick(ARRAY['"x"', '[]', '{}', 'null', 'true', '-1', '1.5', '"2099-01-01T00:00:00Z"',
        '"1999-12-31T23:59:59Z"', '"275000-01-01"', '""', '{"customer_identifier": "c1"}']),
      1, 1 + floor(random() * 3)::int);	-- one of the first three fields
  WHEN 11 THEN	-- a deleted byte
    RETURN overlay(p PLACING '' FROM pos FOR 1);
  WHEN 12 THEN	-- a long key or identifier
    RETURN regexp_replace(p, '"c([0-9])"', '"c\1' || repeat('k', floor(random() * 400)::int) || '"');
  ELSE			-- a duplicated fragment
    RETURN left(p, pos) || substr(p, pos, 1 + floor(random() * 40)::int) || substr(p, pos + 1);
  END CASE;
END $$;

CREATE FUNCTION fuzz.mutate(p text, other text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  n int := floor(random() * 4)::int;	-- 0 to 3 mutations: some stay valid
BEGIN
  FOR i IN 1..n LOOP
    p := fuzz.mutate1(p, other);
  END LOOP;
  RETURN p;
END $$;

-- Run payloads until the deadline or the limit, committing every 200 calls.
CREATE PROCEDURE fuzz.run(seed float8, seconds float8, max_calls bigint) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  deadline timestamptz := clock_timestamp() + seconds * interval '1 second';
  calls bigint := 0;
  payloads bigint := 0;
  last_id bigint := coalesce((SELECT max(id) FROM analytics.logs), 0);
  customers_before bigint;
  corpus text[] := ARRAY(SELECT payload FROM fuzz.corpus WHERE kind = 'ingest');
  requests text[] := ARRAY(SELECT payload FROM fuzz.corpus WHERE kind = 'openai');
  responses text[] := ARRAY(SELECT response FROM fuzz.corpus WHERE kind = 'openai');
  what text;
  p text;
  r text;
  batch text[];
  n bigint;
  got bigint;
  new_logs bigint;
  state text;
  msg text;
  t int;
BEGIN
  PERFORM setseed(seed);
  WHILE clock_timestamp() < deadline AND (max_calls = 0 OR payloads < max_calls) LOOP
    FOR i IN 1..200 LOOP
      t := floor(random() * 9)::int;
      p := fuzz.mutate(fuzz.pick(corpus), fuzz.pick(corpus));
      customers_before := (SELECT count(*) FROM analytics.customers);
      n := 1;
      BEGIN
        CASE t
        WHEN 0, 1 THEN what := 'ingest(text)'; got := analytics.ingest(p);
        WHEN 2 THEN what := 'ingest(json)'; got := analytics.ingest(fuzz.cast_json(p));
        WHEN 3 THEN what := 'ingest(jsonb)'; got := analytics.ingest(fuzz.cast_jsonb(p));
        WHEN 4, 5 THEN
          <<k_openai>> DECLARE j int := 1 + floor(random() * array_length(requests, 1))::int; BEGIN
            IF random() < 0.5 THEN
              p := fuzz.mutate(requests[j], fuzz.pick(corpus)); r := responses[j];
            ELSE
              p := requests[j]; r := fuzz.mutate(responses[j], fuzz.pick(responses));
            END IF;
            CASE floor(random() * 3)::int
            WHEN 0 THEN what := 'ingest_openai(text)'; got := analytics.ingest_openai(p, r, CASE WHEN random() < 0.3 THEN random() * 10 END);
            WHEN 1 THEN what := 'ingest_openai(json)'; got := analytics.ingest_openai(fuzz.cast_json(p), fuzz.cast_json(r));
            ELSE what := 'ingest_openai(jsonb)'; got := analytics.ingest_openai(fuzz.cast_jsonb(p), fuzz.cast_jsonb(r));
            END CASE;
            p := p || E'\n' || r;
          END k_openai;
        ELSE
          n := 1 + floor(random() * 5)::int;
          batch := ARRAY(SELECT CASE WHEN random() < 0.5 THEN fuzz.mutate(fuzz.pick(corpus), fuzz.pick(corpus))
                                     ELSE fuzz.pick(corpus) END FROM generate_series(1, n));
          -- A mutation may split or empty a payload (a newline, a comma at
          -- the top level): then only "records what it says" is checked.
          IF EXISTS (SELECT FROM unnest(batch) b WHERE b <> ALL (corpus)) THEN
            n := -1;
          END IF;
          IF random() < 0.5 THEN
            what := 'ingest_batch(ndjson)'; p := array_to_string(batch, E'\n');
          ELSE
            what := 'ingest_batch(array)'; p := '[' || array_to_string(batch, ', ') || ']';
          END IF;
          payloads := payloads + array_length(batch, 1) - 1;
          got := analytics.ingest_batch(p);
        END CASE;
        -- Recorded: exactly what it says.
        new_logs := (SELECT count(*) FROM analytics.logs WHERE id > last_id);
        IF what LIKE 'ingest_batch%' THEN
          IF new_logs <> got OR (n >= 0 AND got <> n) THEN
            INSERT INTO fuzz.bad VALUES (left(p, 2000), what, 'count', format('said %s, recorded %s of %s', got, new_logs, n));
          END IF;
        ELSIF new_logs <> 1 OR NOT EXISTS (SELECT FROM analytics.logs WHERE id = got) THEN
          INSERT INTO fuzz.bad VALUES (left(p, 2000), what, 'count', format('id %s, recorded %s', got, new_logs));
        END IF;
        last_id := coalesce((SELECT max(id) FROM analytics.logs), last_id);
        state := 'ok';
        msg := NULL;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        IF state = 'FZ001' THEN
          state := 'cast';		-- the text does not cast: the function was not called
        ELSIF NOT EXISTS (SELECT FROM fuzz.allowed a WHERE a.sqlstate = state) THEN
          INSERT INTO fuzz.bad VALUES (left(p, 2000), what, state, msg);
        END IF;
        -- Rejected: nothing written.
        IF EXISTS (SELECT FROM analytics.logs WHERE id > last_id)
           OR (SELECT count(*) FROM analytics.customers) <> customers_before THEN
          INSERT INTO fuzz.bad VALUES (left(p, 2000), what, state, 'wrote something: ' || msg);
        END IF;
      END;
      INSERT INTO fuzz.outcomes VALUES (what, state, 1, CASE WHEN state <> 'ok' THEN left(msg, 70) END)
        ON CONFLICT (what, sqlstate) DO UPDATE SET n = fuzz.outcomes.n + 1;
      calls := calls + 1;
      payloads := payloads + 1;
    END LOOP;
    COMMIT;
  END LOOP;
  RAISE NOTICE 'calls %, payloads %', calls, payloads;
END $$;
SQL
is($ret, 0, 'the driver was created') or BAIL_OUT("could not create the driver: $err");

my $start = time;
($ret, $out, $err) = $node->psql('fuzz', "CALL fuzz.run($seed, $seconds, $max)");
my $end = time;
is($ret, 0, "the driver ran (seed $seed)") or BAIL_OUT("the driver failed: $err");
my ($calls, $payloads) = $err =~ /calls (\d+), payloads (\d+)/;
ok(defined $payloads, 'the driver printed its totals') or BAIL_OUT("no totals: $err");
diag sprintf('%d calls, %d payloads in %.1f s: %.0f payloads/s',
	$calls, $payloads, $end - $start, $payloads / ($end - $start));
diag '-- outcomes (function, SQLSTATE or ok, calls, first message)';
diag "   $_"
  for split /\n/,
  $node->safe_psql('fuzz',
	"SELECT what, sqlstate, n, coalesce(sample, '') FROM fuzz.outcomes ORDER BY what, sqlstate",
	extra_params => [ '-F', ' ' ]);
diag '   '
  . $node->safe_psql('fuzz',
	"SELECT 'logs ' || (SELECT count(*) FROM analytics.logs) || ', customers ' || (SELECT count(*) FROM analytics.customers)"
  );

is($node->safe_psql('fuzz', 'SELECT count(*) FROM fuzz.bad'), '0', "no call broke the contract (seed $seed)")
  or diag $node->safe_psql('fuzz',
	'SELECT what, sqlstate, left(message, 300), left(payload, 300) FROM fuzz.bad LIMIT 10');
my @crashes = grep { /terminated by signal|PANIC|TRAP|server process .* exited with exit code [^0]/ }
  split /\n/, log_since($node, 0);
ok(!@crashes, 'the server log shows no crash') or diag join("\n", @crashes);
($ret, $out, $err) = $node->psql('fuzz', 'SELECT analytics.rollup_now()');
is($ret, 0, 'rollup_now() succeeds') or diag $err;
($ret, $out, $err) = $node->psql('fuzz', $USERS_MISMATCHES);
is($ret, 0, 'analytics.users and the raw GROUP BY can be read') or diag $err;
is($out, '0', 'analytics.users equals the GROUP BY over the raw logs');

$node->stop;
done_testing();
