-- The Users page's first page and the costliest rows of cost_by_user at a
-- scale where plans matter: read in the order of an index of the rollups,
-- merged with the customers that have logs not folded yet, and equal to
-- the same ORDER BY ... LIMIT over a raw GROUP BY (SPEC section 8).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
SET analytics.budget_enforcement = 'record';

-- 20,000 customers, 3,000 of them with logs over 30 days, folded; then
-- pending logs of 300 customers (some on days new to them, some of
-- customers without any folded log).
INSERT INTO analytics.customers (customer_identifier)
SELECT 'c' || lpad(i::text, 5, '0') FROM generate_series(1, 20000) i;
INSERT INTO analytics.logs (customer_identifier, created_at, model, prompt_tokens,
                            completion_tokens, cost, status_code)
SELECT 'c' || lpad((1 + (i * 7919) % 3000)::text, 5, '0'),
       date_trunc('day', now()) - (i % 30) * interval '1 day' + (i % 1000) * interval '1 second',
       'm' || (i % 4), i % 97, i % 31, ((i % 89) * 0.0013)::numeric(10,4),
       CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END
  FROM generate_series(1, 30000) i;
SELECT analytics.rollup_now() > 0 AS folded;
SELECT analytics.rollup_now() = 0 AS nothing_left;
INSERT INTO analytics.logs (customer_identifier, created_at, model, prompt_tokens,
                            completion_tokens, cost)
SELECT 'c' || lpad((1 + (i * 104729) % 4000)::text, 5, '0'),
       now() - (i % 3) * interval '1 day', 'm9', 1000 + i, 7, (i * 0.9)::numeric(10,2)
  FROM generate_series(1, 300) i;
ANALYZE analytics.customers, analytics.usage_customer, analytics.usage_customer_day;

-- Every customer has exactly one usage_customer row.
SELECT (SELECT count(*) FROM analytics.usage_customer) = 20000 AS one_row_each,
       (SELECT count(*) FROM analytics.usage_customer WHERE first_seen IS NULL) AS without_logs;

-- The raw Users page columns that sort it.
CREATE TEMP VIEW raw_users AS
SELECT c.customer_identifier,
       coalesce(sum(l.cost), 0) AS cost, count(l.id) AS requests,
       coalesce(sum(l.total_tokens), 0) AS total_tokens,
       max(l.created_at) AS last_active, min(l.created_at) AS first_seen,
       count(DISTINCT (l.created_at AT TIME ZONE 'UTC')::date) AS active_days
  FROM analytics.customers c
  LEFT JOIN analytics.logs l ON l.customer_identifier = c.customer_identifier
 GROUP BY c.customer_identifier;

-- The plan's nodes that read usage_customer or usage_customer_day, and the
-- merges: an index scan merged with the pending customers (sorted), and
-- no sequential scan of usage_customer (the pending customers' rows are
-- probed by primary key).  Whether their new days are counted by probes
-- of usage_customer_day or from a hash of it is the planner's choice by
-- size (a hash here, with 20,000 logs and 300 pending).
CREATE FUNCTION pg_temp.plan_nodes(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON, COSTS OFF) ' || q INTO plan;
    RETURN (SELECT string_agg(DISTINCT concat_ws(' ', n ->> 'Node Type', n ->> 'Relation Name',
                                                 n ->> 'Index Name'), ', ')
              FROM jsonb_path_query(plan::jsonb, 'strict $.**') n
             WHERE jsonb_typeof(n) = 'object' AND n ? 'Node Type'
               AND (n ->> 'Relation Name' IN ('usage_customer', 'usage_customer_day')
                    OR n ->> 'Node Type' IN ('Merge Append', 'Sort')));
END;
$$;

-- Positions where two queries' customer lists differ, plus the difference
-- in length.
CREATE FUNCTION pg_temp.page_diff(a text, b text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    x text[];
    y text[];
BEGIN
    EXECUTE format('SELECT array_agg(q.k) FROM (%s) q', a) INTO x;
    EXECUTE format('SELECT array_agg(q.k) FROM (%s) q', b) INTO y;
    RETURN (SELECT count(*) FILTER (WHERE x[i] IS DISTINCT FROM y[i])
              FROM generate_series(1, greatest(cardinality(x), cardinality(y))) i);
END;
$$;

SELECT f, d,
       pg_temp.plan_nodes(format('SELECT * FROM analytics.users ORDER BY %I %s, customer_identifier LIMIT 50', f, d)) AS plan,
       pg_temp.page_diff(
           format('SELECT customer_identifier || %L || %I AS k FROM analytics.users ORDER BY %I %s, customer_identifier LIMIT 50', ' ', f, f, d),
           format('SELECT customer_identifier || %L || %I AS k FROM raw_users ORDER BY %I %s, customer_identifier LIMIT 50', ' ', f, f, d)) AS differ
  FROM unnest(ARRAY['cost', 'requests', 'total_tokens', 'last_active', 'first_seen', 'active_days']) f,
       unnest(ARRAY['ASC', 'DESC']) d
 ORDER BY f, d;

-- The 100 costliest (day, customer) rows of 30 days.
SELECT pg_temp.plan_nodes($$SELECT * FROM analytics.cost_by_user WHERE day >= current_date - 29
                             ORDER BY cost DESC, day, customer_identifier LIMIT 100$$) AS plan,
       pg_temp.page_diff(
           $$SELECT concat_ws(' ', day, customer_identifier, requests, prompt_tokens, completion_tokens, cost) AS k
               FROM analytics.cost_by_user WHERE day >= current_date - 29
              ORDER BY cost DESC, day, customer_identifier LIMIT 100$$,
           $$SELECT concat_ws(' ', day, customer_identifier, requests, prompt_tokens, completion_tokens, cost) AS k
               FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, customer_identifier,
                            count(*) AS requests, sum(prompt_tokens) AS prompt_tokens,
                            sum(completion_tokens) AS completion_tokens, sum(cost) AS cost
                       FROM analytics.logs GROUP BY 1, 2) r
              WHERE day >= current_date - 29
              ORDER BY cost DESC, day, customer_identifier LIMIT 100$$) AS differ;

-- Many pending logs (as after a bulk load: here 20,000 of 8,000 customers,
-- planned with fresh statistics) leave the outer condition a hashed
-- subplan, one hash table probed per row, not a scan of every pending key
-- per row; and the pages still equal the raw ones.
INSERT INTO analytics.logs (customer_identifier, created_at, model, prompt_tokens,
                            completion_tokens, cost)
SELECT 'c' || lpad((1 + (i * 7919) % 8000)::text, 5, '0'),
       now() - (i % 40) * interval '1 day', 'm' || (i % 5), i % 50, i % 20, (i % 13) * 0.01
  FROM generate_series(1, 20000) i;
ANALYZE analytics.logs;
CREATE FUNCTION pg_temp.subplans(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    line text;
    found text[] := '{}';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        IF line ~ 'NOT \((hashed )?SubPlan' THEN
            found := found || substring(line from 'NOT \(((hashed )?SubPlan)');
        END IF;
    END LOOP;
    RETURN array_to_string(ARRAY(SELECT DISTINCT unnest(found)), ', ');
END;
$$;
SELECT pg_temp.subplans('SELECT * FROM analytics.users ORDER BY cost DESC, customer_identifier LIMIT 50') AS users_page,
       pg_temp.subplans('SELECT count(*) FROM analytics.users') AS users_whole,
       pg_temp.subplans('SELECT * FROM analytics.cost_by_user ORDER BY cost DESC, day, customer_identifier LIMIT 100') AS cost_by_user;
SELECT f, d,
       pg_temp.page_diff(
           format('SELECT customer_identifier || %L || %I AS k FROM analytics.users ORDER BY %I %s, customer_identifier LIMIT 50', ' ', f, f, d),
           format('SELECT customer_identifier || %L || %I AS k FROM raw_users ORDER BY %I %s, customer_identifier LIMIT 50', ' ', f, f, d)) AS differ
  FROM unnest(ARRAY['cost', 'active_days', 'first_seen']) f,
       unnest(ARRAY['ASC', 'DESC']) d
 ORDER BY f, d;
SELECT (SELECT count(*) FROM analytics.users) = (SELECT count(*) FROM analytics.customers) AS one_row_per_customer;

-- A customer created without logs has its row of zeros at once, keeps it
-- through a rebuild of the rollups, and loses it with the customer.
INSERT INTO analytics.customers (customer_identifier) VALUES ('zz_new');
SELECT customer_identifier, requests, cost, active_days, first_seen, last_seen
  FROM analytics.usage_customer WHERE customer_identifier = 'zz_new';
SELECT customer_identifier, requests, cost, active_days, first_seen
  FROM analytics.users ORDER BY first_seen DESC, customer_identifier DESC LIMIT 1;
SELECT analytics.set_timezone('Europe/Paris');
SELECT (SELECT count(*) FROM analytics.usage_customer) = 20001 AS one_row_each,
       EXISTS (SELECT 1 FROM analytics.usage_customer WHERE customer_identifier = 'zz_new') AS kept;
SELECT analytics.delete_customer('zz_new');
SELECT count(*) AS left_behind FROM analytics.usage_customer WHERE customer_identifier = 'zz_new';
