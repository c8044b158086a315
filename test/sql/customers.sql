-- Customers: created explicitly or by a log; upsert_customer semantics and
-- its bad input.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
-- Errors show their SQLSTATE on the line after them.
\set SHOW_CONTEXT never

-- Created before any request, with every key.
SELECT customer_identifier, name, email, metadata, period_budget, budget_duration,
       period_start, total_budget, markup_percentage, blocked,
       created_at = updated_at AS fresh
  FROM analytics.upsert_customer('{"customer_identifier": "customer_1",
        "name": "Hendrix Liu", "email": "hendrix@keywordsai.co",
        "metadata": {"plan": "pro"}, "period_budget": 25.5, "budget_duration": "weekly",
        "period_start": "2026-01-05T00:00:00Z", "total_budget": 100,
        "markup_percentage": 20, "unknown_key": [1, 2]}');

-- An absent key leaves the column as it is; a given key changes it.
SELECT name, email, metadata, period_budget, budget_duration, total_budget, markup_percentage
  FROM analytics.upsert_customer('{"customer_identifier": "customer_1", "email": "h@example.com"}');

-- JSON null clears a column (metadata back to {}, markup back to 0,
-- budget_duration back to monthly).
SELECT name, email, metadata, period_budget, budget_duration, total_budget, markup_percentage
  FROM analytics.upsert_customer('{"customer_identifier": "customer_1", "name": null,
        "metadata": null, "period_budget": null, "budget_duration": null,
        "total_budget": null, "markup_percentage": null}');

-- An unchanged upsert does not rewrite the row.
SELECT xmin AS before_xmin FROM analytics.customers WHERE customer_identifier = 'customer_1' \gset
SELECT (analytics.upsert_customer('{"customer_identifier": "customer_1", "email": "h@example.com"}')).email;
SELECT xmin = :'before_xmin' AS untouched FROM analytics.customers WHERE customer_identifier = 'customer_1';

-- Identifiers are case-sensitive; 255 characters is the longest.
SELECT (analytics.upsert_customer('{"customer_identifier": "Customer_1"}')).customer_identifier;
SELECT length((analytics.upsert_customer(jsonb_build_object('customer_identifier', repeat('é', 255)))).customer_identifier);
SELECT count(*) FROM analytics.customers;

-- Bad input: a specific SQLSTATE naming the key, nothing written.
SELECT analytics.upsert_customer('[1]');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"name": "no id"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": null}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": 42}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": ""}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer(jsonb_build_object('customer_identifier', repeat('x', 256)));
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "name": 7}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "metadata": "x"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "period_budget": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "period_budget": "10"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "total_budget": true}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "markup_percentage": -5}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "budget_duration": "hourly"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "period_start": "yesterday-ish"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.upsert_customer('{"customer_identifier": "c2", "period_start": "infinity"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS customers_after_errors FROM analytics.customers;

-- Direct SQL is held to the same rules by constraints (terse: the failing
-- row holds timestamps).
\set VERBOSITY terse
INSERT INTO analytics.customers (customer_identifier) VALUES ('');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.customers (customer_identifier, period_budget) VALUES ('c3', 'NaN');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.customers (customer_identifier, total_budget) VALUES ('c3', 'Infinity');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO analytics.customers (customer_identifier, budget_duration) VALUES ('c3', 'hourly');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT count(*) AS customers_after_errors FROM analytics.customers;

-- updated_at moves on change.
UPDATE analytics.customers SET updated_at = '2000-01-01' WHERE customer_identifier = 'Customer_1';
UPDATE analytics.customers SET name = 'Renamed' WHERE customer_identifier = 'Customer_1';
SELECT updated_at > '2000-01-01' AS touched FROM analytics.customers WHERE customer_identifier = 'Customer_1';

-- The identifier cannot change (logs and rollups refer to it), and customers
-- leave only through delete_customer(), with their logs and rollups.
UPDATE analytics.customers SET customer_identifier = 'renamed' WHERE customer_identifier = 'Customer_1';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM analytics.customers WHERE customer_identifier = 'Customer_1';
\echo :LAST_ERROR_SQLSTATE
TRUNCATE analytics.customers CASCADE;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS customers_kept FROM analytics.customers;
