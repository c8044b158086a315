-- Logs: defaults, cost from model_prices, customers created by logs, the
-- guards that make logs facts, and bad input.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
-- Errors show their SQLSTATE on the line after them.
\set SHOW_CONTEXT never

-- A log naming an unknown customer creates it; NULL customer is allowed.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost)
VALUES ('new_customer', 'gpt-4o', 10, 5, 0.5), (NULL, 'gpt-4o', 1, 1, 0.1);
SELECT customer_identifier, name, metadata, budget_duration, blocked FROM analytics.customers;
SELECT customer_identifier, model, prompt_tokens, completion_tokens, total_tokens, cost, status_code,
       created_at = now() AS created_now
  FROM analytics.logs ORDER BY id;

-- Cost from model_prices when not given: longest prefix wins, computed here
-- independently of the trigger.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens)
VALUES ('c1', 'gpt-4o-2024-08-06', 1000, 2000),
       ('c1', 'gpt-4o-mini-2024-07-18', 123456, 7890),
       ('c1', 'claude-3-5-haiku-20241022', 3, 0),
       ('c1', 'some-local-model', 500, 500);
SELECT l.model, l.cost,
       l.cost = coalesce((SELECT (l.prompt_tokens * p.prompt_per_million + l.completion_tokens * p.completion_per_million) / 1000000
                            FROM analytics.model_prices p
                           WHERE starts_with(l.model, p.model)
                           ORDER BY length(p.model) DESC LIMIT 1), 0) AS cost_matches_price
  FROM analytics.logs l WHERE customer_identifier = 'c1' ORDER BY id;

-- Prompt caching (SPEC section 12): the fresh prompt at the prompt price,
-- cached tokens at the cached price, cache writes at the cache-write price
-- (null: the prompt price), computed here independently of the trigger.
-- gpt-4o: 2.50 / 10.00, cached 1.25, writes at the prompt price;
-- claude-sonnet-4: 3.00 / 15.00, cached 0.30, writes 3.75.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens,
                            cached_tokens, cache_write_tokens, reasoning_tokens)
VALUES ('cache', 'gpt-4o-2024-08-06', 2000, 300, 1536, 0, 0),
       ('cache', 'gpt-4o', 1000, 100, 0, 1000, 64),
       ('cache', 'claude-sonnet-4-20250514', 12000, 500, 10000, 1500, 0),
       ('cache', 'some-local-model', 10, 10, 5, 5, 5);
SELECT l.model, l.prompt_tokens, l.cached_tokens, l.cache_write_tokens, l.reasoning_tokens, l.cost,
       l.cost = coalesce((SELECT ((l.prompt_tokens - l.cached_tokens - l.cache_write_tokens) * p.prompt_per_million
                                  + l.cached_tokens * coalesce(p.cached_prompt_per_million, p.prompt_per_million)
                                  + l.cache_write_tokens * coalesce(p.cache_write_per_million, p.prompt_per_million)
                                  + l.completion_tokens * p.completion_per_million) / 1000000
                            FROM analytics.model_prices p
                           WHERE starts_with(l.model, p.model)
                           ORDER BY length(p.model) DESC LIMIT 1), 0) AS cost_matches_price
  FROM analytics.logs l WHERE customer_identifier = 'cache' ORDER BY id;
-- 10,000 cached tokens of claude-sonnet-4 cost a tenth of fresh ones.
SELECT cost FROM analytics.logs WHERE customer_identifier = 'cache' AND model LIKE 'claude%';
SELECT (500 * 3.00 + 10000 * 0.30 + 1500 * 3.75 + 500 * 15.00) / 1000000 AS by_hand;
-- The parts are facts like the rest.
UPDATE analytics.logs SET cached_tokens = 0 WHERE customer_identifier = 'cache';
\echo :LAST_ERROR_SQLSTATE

-- Editing prices applies to the next log of the same transaction.
BEGIN;
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES ('c1', 'gpt-4o', 1000000);
UPDATE analytics.model_prices SET prompt_per_million = 3 WHERE model = 'gpt-4o';
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES ('c1', 'gpt-4o', 1000000);
SELECT cost FROM analytics.logs WHERE model = 'gpt-4o' AND prompt_tokens = 1000000 ORDER BY id;
ROLLBACK;

-- COPY goes through the same trigger.
COPY analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, latency) FROM stdin;
copy_customer	gpt-4.1-mini	100	200	0.5
copy_customer	gpt-4.1-mini	0	0	\N
\.
SELECT customer_identifier, count(*), sum(cost) = (100 * 0.40 + 200 * 1.60) / 1000000 AS priced
  FROM analytics.logs WHERE customer_identifier = 'copy_customer' GROUP BY 1;

-- Logs are facts.
UPDATE analytics.logs SET cost = 0 WHERE customer_identifier = 'c1';
\echo :LAST_ERROR_SQLSTATE
UPDATE analytics.logs SET customer_identifier = 'c2' WHERE customer_identifier = 'c1';
\echo :LAST_ERROR_SQLSTATE
UPDATE analytics.logs SET created_at = now() - interval '1 day';
\echo :LAST_ERROR_SQLSTATE
UPDATE analytics.logs SET status_code = 500;
\echo :LAST_ERROR_SQLSTATE
UPDATE analytics.logs SET prompt_tokens = 0;
\echo :LAST_ERROR_SQLSTATE
UPDATE analytics.logs SET model = 'x';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM analytics.logs;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE analytics.logs;
\echo :LAST_ERROR_SQLSTATE
-- ... but metadata, error_message and the message bodies may change.
UPDATE analytics.logs SET metadata = '{"reviewed": true}', error_message = 'note',
       prompt_messages = '[]', completion_message = '{}' WHERE customer_identifier = 'c1';
SELECT count(*) FILTER (WHERE metadata = '{"reviewed": true}') AS updated, count(*) FROM analytics.logs
 WHERE customer_identifier = 'c1';

-- Bad input: a specific SQLSTATE naming the field, and nothing written.
SELECT count(*) AS logs_before FROM analytics.logs \gset
SELECT count(*) AS customers_before FROM analytics.customers \gset
INSERT INTO analytics.logs (customer_identifier, model) VALUES ('bad', NULL);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES ('bad', 'gpt-4o', -1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, completion_tokens) VALUES ('bad', 'gpt-4o', -1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('bad', 'gpt-4o', -0.01);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('bad', 'gpt-4o', 'NaN');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('bad', 'gpt-4o', 'Infinity');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, latency) VALUES ('bad', 'gpt-4o', 'NaN');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, latency) VALUES ('bad', 'gpt-4o', -1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, time_to_first_token) VALUES ('bad', 'gpt-4o', 'Infinity');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, created_at) VALUES ('bad', 'gpt-4o', 'infinity');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model) VALUES ('', 'gpt-4o');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model) VALUES (repeat('x', 256), 'gpt-4o');
\echo :LAST_ERROR_SQLSTATE
-- The parts of the tokens: none negative, none beyond its whole.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, cached_tokens) VALUES ('bad', 'gpt-4o', 10, -1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, cache_write_tokens) VALUES ('bad', 'gpt-4o', 10, -1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, completion_tokens, reasoning_tokens) VALUES ('bad', 'gpt-4o', 10, -1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, cached_tokens) VALUES ('bad', 'gpt-4o', 10, 11);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, cached_tokens, cache_write_tokens) VALUES ('bad', 'gpt-4o', 10, 6, 5);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, cached_tokens, cache_write_tokens)
VALUES ('bad', 'gpt-4o', 2147483647, 2147483647, 2147483647);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.logs (customer_identifier, model, completion_tokens, reasoning_tokens) VALUES ('bad', 'gpt-4o', 10, 11);
\echo :LAST_ERROR_SQLSTATE
-- One bad row in a multi-row insert records none of them.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens)
VALUES ('good', 'gpt-4o', 1), ('bad', 'gpt-4o', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :logs_before AS no_log_written FROM analytics.logs;
SELECT count(*) = :customers_before AS no_customer_written FROM analytics.customers;

-- A customer created by a log in a rolled-back transaction is gone too.
BEGIN;
INSERT INTO analytics.logs (customer_identifier, model) VALUES ('rolled_back', 'gpt-4o');
ROLLBACK;
SELECT count(*) FROM analytics.customers WHERE customer_identifier = 'rolled_back';
-- A subtransaction abort does not leave a stale cached customer behind.
BEGIN;
SAVEPOINT s;
INSERT INTO analytics.logs (customer_identifier, model) VALUES ('in_savepoint', 'gpt-4o');
ROLLBACK TO s;
INSERT INTO analytics.logs (customer_identifier, model) VALUES ('in_savepoint', 'gpt-4o');
COMMIT;
SELECT (SELECT count(*) FROM analytics.customers WHERE customer_identifier = 'in_savepoint') AS customers,
       (SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'in_savepoint') AS logs;
