-- The per-customer change protocol (src/changes.c) in one session: a
-- transaction that changes many customers at once falls back to the global
-- protocol after its first few, and every change applies to the next insert.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
\set SHOW_CONTEXT never

INSERT INTO analytics.logs (customer_identifier, model, cost)
SELECT 'c' || g, 'm', 1 FROM generate_series(1, 100) g;
-- One statement changes 100 customers: it completes.
UPDATE analytics.customers SET period_budget = 1 WHERE customer_identifier LIKE 'c%';
SELECT count(*) AS budgeted FROM analytics.customers WHERE period_budget = 1;
-- Every one of them is now over its budget, whether it was changed under
-- the per-customer protocol or the global one.
CREATE FUNCTION pg_temp.try_log(c text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES (c, 'm', 1);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END;
$$;
SELECT pg_temp.try_log('c' || g) AS result, count(*) FROM generate_series(1, 100) g GROUP BY 1;
-- In one transaction: a change, then a log of the same customer obeys it.
BEGIN;
UPDATE analytics.customers SET period_budget = 5 WHERE customer_identifier = 'c1';
SELECT pg_temp.try_log('c1') AS after_raise;
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'c1';
SELECT pg_temp.try_log('c1') AS after_block;
COMMIT;
-- Many transactions' changes in a row leave nothing registered behind.
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        UPDATE analytics.customers SET markup_percentage = i WHERE customer_identifier = 'c2';
        COMMIT;
    END LOOP;
END;
$$;
SELECT markup_percentage FROM analytics.customers WHERE customer_identifier = 'c2';
SELECT pg_temp.try_log('c3') AS still_over_budget;
