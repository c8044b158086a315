-- Roles and privileges (SPEC section 13): what analytics_reader,
-- analytics_writer and analytics_admin may do, and every attack on budgets,
-- rollups and message bodies refused with 42501 and nothing changed.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
DROP ROLE IF EXISTS regress_roles_reader;
DROP ROLE IF EXISTS regress_roles_writer;
DROP ROLE IF EXISTS regress_roles_admin;
DROP FUNCTION IF EXISTS public.roles_try(text);
DROP FUNCTION IF EXISTS public.roles_state();
DROP FUNCTION IF EXISTS public.roles_catalog();
RESET client_min_messages;
\set SHOW_CONTEXT never

-- A 1.0 database updated to 1.1 gets the same roles, grants, function
-- properties, constraints and views as a fresh install: compare the
-- catalogs (privileges recorded as the extension's initial ones included).
CREATE FUNCTION public.roles_catalog() RETURNS TABLE (kind text, name text, detail text)
LANGUAGE sql AS $$
SELECT 'relation', c.relname, c.relacl::text
  FROM pg_class c WHERE c.relnamespace = 'analytics'::regnamespace
UNION ALL
SELECT 'column', c.relname || '.' || a.attname, a.attacl::text
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'analytics'::regnamespace AND a.attacl IS NOT NULL
UNION ALL
SELECT 'function', p.oid::regprocedure::text,
       concat_ws(' ', p.proacl::text, p.prosecdef, p.proconfig::text, md5(p.prosrc))
  FROM pg_proc p WHERE p.pronamespace = 'analytics'::regnamespace
UNION ALL
SELECT 'constraint', t.conrelid::regclass || '.' || t.conname, pg_get_constraintdef(t.oid)
  FROM pg_constraint t WHERE t.connamespace = 'analytics'::regnamespace
UNION ALL
SELECT 'view', c.relname, md5(pg_get_viewdef(c.oid))
  FROM pg_class c WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT 'init_privs', pg_describe_object(i.classoid, i.objoid, i.objsubid), i.initprivs::text
  FROM pg_init_privs i JOIN pg_depend d ON d.classid = i.classoid AND d.objid = i.objoid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'analytics')
UNION ALL
SELECT 'membership', m.roleid::regrole || ' > ' || m.member::regrole, NULL
  FROM pg_auth_members m WHERE m.roleid::regrole::text LIKE 'analytics\_%'
$$;
SET client_min_messages = warning;
DROP EXTENSION analytics;
CREATE EXTENSION analytics VERSION '1.0';
ALTER EXTENSION analytics UPDATE;
RESET client_min_messages;
CREATE TEMP TABLE catalog_updated AS SELECT * FROM public.roles_catalog();
SET client_min_messages = warning;
DROP EXTENSION analytics;
CREATE EXTENSION analytics;
RESET client_min_messages;
CREATE TEMP TABLE catalog_fresh AS SELECT * FROM public.roles_catalog();
SELECT count(*) > 100 AS compared FROM catalog_fresh;
SELECT 'only after update' AS side, * FROM (TABLE catalog_updated EXCEPT TABLE catalog_fresh) u
UNION ALL
SELECT 'only in fresh install', * FROM (TABLE catalog_fresh EXCEPT TABLE catalog_updated) f
ORDER BY 1, 2, 3;

-- The three group roles: NOLOGIN, admin includes reader and writer.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'analytics\_%' ORDER BY 1;
SELECT pg_has_role('analytics_admin', 'analytics_reader', 'MEMBER') AS admin_reads,
       pg_has_role('analytics_admin', 'analytics_writer', 'MEMBER') AS admin_writes,
       pg_has_role('analytics_writer', 'analytics_reader', 'MEMBER') AS writer_reads;

-- Nothing is granted to PUBLIC: no function, relation or column.
SELECT count(*) AS public_functions FROM pg_proc p
 WHERE p.pronamespace = 'analytics'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE');
SELECT count(*) AS public_relation_grants FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = 'analytics'::regnamespace AND a.grantee = 0;
SELECT count(*) AS public_column_grants FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid,
       aclexplode(t.attacl) a
 WHERE c.relnamespace = 'analytics'::regnamespace AND a.grantee = 0;

-- Running CREATE EXTENSION again in the same cluster reuses the roles.
SET client_min_messages = warning;
DROP EXTENSION analytics;
SELECT count(*) AS roles_left_by_drop FROM pg_roles WHERE rolname LIKE 'analytics\_%';
CREATE EXTENSION analytics;
RESET client_min_messages;

CREATE ROLE regress_roles_reader NOLOGIN IN ROLE analytics_reader;
CREATE ROLE regress_roles_writer NOLOGIN IN ROLE analytics_writer;
CREATE ROLE regress_roles_admin NOLOGIN IN ROLE analytics_admin;

-- Runs a statement and says what happened: "done" or SQLSTATE and message.
CREATE FUNCTION public.roles_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'done';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END;
$$;
-- Everything an attack could change (not the worker's pass times).
CREATE FUNCTION public.roles_state() RETURNS text LANGUAGE sql AS $$
SELECT md5(concat_ws('|',
    (SELECT string_agg(c::text, ',' ORDER BY c.customer_identifier) FROM analytics.customers c),
    (SELECT string_agg(b::text, ',' ORDER BY b.customer_identifier, b.period_start) FROM analytics.budget_counters b),
    (SELECT string_agg(a::text, ',' ORDER BY a.id) FROM analytics.admissions a),
    (SELECT string_agg(l::text, ',' ORDER BY l.id) FROM analytics.logs l),
    (SELECT string_agg(u::text, ',' ORDER BY u.customer_identifier, u.day, u.model) FROM analytics.usage_daily u),
    (SELECT string_agg(u::text, ',' ORDER BY u.customer_identifier, u.day) FROM analytics.usage_customer_day u),
    (SELECT string_agg(u::text, ',' ORDER BY u.customer_identifier) FROM analytics.usage_customer u),
    (SELECT string_agg(u::text, ',' ORDER BY u.day) FROM analytics.usage_day u),
    (SELECT string_agg(p::text, ',' ORDER BY p.model) FROM analytics.model_prices p),
    (SELECT concat_ws(',', s.watermark, s.timezone, s.retained_from) FROM analytics.rollup_state s)))
$$;

-- Customers with budgets, one blocked, and logs with message bodies.
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "capped", "period_budget": 1}');
SELECT customer_identifier FROM analytics.upsert_customer('{"customer_identifier": "victim", "period_budget": 1}');
INSERT INTO analytics.customers (customer_identifier, blocked) VALUES ('blocked1', true);
INSERT INTO analytics.logs (customer_identifier, model, cost, prompt_messages, completion_message)
VALUES ('capped', 'gpt-4o', 0.5, '[{"role": "user", "content": "secret prompt"}]',
        '{"role": "assistant", "content": "secret answer"}');

---------------------------------------------------------------------------
-- analytics_writer: records logs through every path.
SET ROLE regress_roles_writer;
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, prompt_messages)
VALUES ('w1', 'gpt-4o', 1000, 100, '[{"role": "user", "content": "hello"}]');
COPY analytics.logs (customer_identifier, model, cost) FROM stdin;
w1	gpt-4o	0.02
\.
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "w1", "cost": 0.03}') > 0 AS ingest;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "w1", "cost": 0.03}'::json) > 0 AS ingest_json;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "w1", "cost": 0.03}'::jsonb) > 0 AS ingest_jsonb;
SELECT analytics.ingest_openai(
    '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "customer_params": {"customer_identifier": "w2", "name": "W Two"}}',
    '{"model": "gpt-4o", "usage": {"prompt_tokens": 3, "completion_tokens": 4}, "choices": [{"message": {"role": "assistant", "content": "yo"}}]}') > 0 AS ingest_openai;
SELECT analytics.ingest_batch(E'{"model": "gpt-4o", "customer_identifier": "w2", "cost": 0.01}\n{"model": "gpt-4o", "customer_identifier": "w3", "cost": 0.01}') AS ingest_batch;
SELECT allowed, reason, period_budget FROM analytics.check_budget('capped');
SELECT analytics.admit('w1', 0.01, 10) > 0 AS admit;
-- Limit keys from a writer are ignored like budget keys.
SELECT rate_limit, token_rate_limit, alert_thresholds
  FROM analytics.upsert_customer('{"customer_identifier": "w1", "rate_limit": 1000000, "token_rate_limit": null, "alert_thresholds": [50]}');
SELECT customer_identifier, name, email, metadata
  FROM analytics.upsert_customer('{"customer_identifier": "w1", "name": "W One", "email": "w1@example.com", "metadata": {"plan": "pro"}}');
-- A blocked customer's log is still refused, a budget still holds.
SELECT public.roles_try($$INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('blocked1', 'gpt-4o', 0)$$);
-- Budget keys from a writer: equal to the stored value, silent; different,
-- a WARNING naming the key and the value kept; the rest applied.
SELECT name, period_budget, markup_percentage
  FROM analytics.upsert_customer('{"customer_identifier": "capped", "name": "Capped", "period_budget": 1.0, "markup_percentage": 0}');
SELECT name, period_budget, total_budget, budget_duration
  FROM analytics.upsert_customer('{"customer_identifier": "capped", "name": "Capped Co", "period_budget": 1000, "total_budget": null, "budget_duration": "daily"}');
-- A new customer: its keys are compared with the column defaults.
SELECT customer_identifier, period_budget, markup_percentage
  FROM analytics.upsert_customer('{"customer_identifier": "w4", "period_budget": 50, "markup_percentage": 0}');
-- Through ingest's customer_params: the WARNINGs, and the log is recorded.
SELECT analytics.ingest('{"model": "gpt-4o", "cost": 0.25, "customer_params": {"customer_identifier": "capped", "period_budget": null, "total_budget": 5, "email": "c@example.com"}}') > 0 AS log_kept;
RESET ROLE;
SELECT customer_identifier, name, email, metadata, period_budget, budget_duration, total_budget, markup_percentage
  FROM analytics.customers ORDER BY 1;
SELECT customer_identifier, count(*) AS logs FROM analytics.logs GROUP BY 1 ORDER BY 1;

---------------------------------------------------------------------------
-- The attacks.  Fold everything first, so that the worker has nothing to do
-- while the state is compared.
SELECT analytics.rollup_now() >= 0 AS folded;
CREATE TEMP TABLE state_before AS SELECT public.roles_state() AS s;
GRANT SELECT ON state_before TO PUBLIC;

SET ROLE regress_roles_writer;
SELECT q AS writer_attempts, public.roles_try(q) AS outcome FROM (VALUES
    ('UPDATE analytics.budget_counters SET spend = -1000'),
    ($$INSERT INTO analytics.budget_counters VALUES ('victim', '-infinity', 'infinity', -1000)$$),
    ('DELETE FROM analytics.budget_counters'),
    ($$UPDATE analytics.customers SET period_budget = NULL WHERE customer_identifier = 'victim'$$),
    ($$UPDATE analytics.customers SET blocked = false WHERE customer_identifier = 'blocked1'$$),
    ($$UPDATE analytics.customers SET markup_percentage = 0, total_budget = NULL$$),
    ($$INSERT INTO analytics.customers (customer_identifier, period_budget) VALUES ('x', 1)$$),
    ('DELETE FROM analytics.customers'),
    ($$INSERT INTO analytics.usage_daily (customer_identifier, day, model, cost, first_seen, last_seen) VALUES ('victim', current_date, 'gpt-4o', -1000, now(), now())$$),
    ($$INSERT INTO analytics.usage_customer (customer_identifier, first_seen, last_seen) VALUES ('x', now(), now())$$),
    ($$INSERT INTO analytics.usage_customer_day (customer_identifier, day) VALUES ('victim', current_date)$$),
    ('INSERT INTO analytics.usage_day (day) VALUES (current_date)'),
    ('UPDATE analytics.usage_customer SET cost = 0'),
    ('UPDATE analytics.rollup_state SET watermark = 0'),
    ('INSERT INTO analytics.rollup_state DEFAULT VALUES'),
    ($$INSERT INTO analytics.logs (id, model, cost) OVERRIDING SYSTEM VALUE VALUES (1, 'gpt-4o', 0)$$),
    ('UPDATE analytics.model_prices SET prompt_per_million = 0'),
    ($$SELECT analytics.set_timezone('Europe/Paris')$$),
    ('SELECT analytics.purge_logs(now())'),
    ($$SELECT analytics.delete_customer('victim')$$),
    ('SELECT analytics.rollup_now()'),
    ('SELECT prompt_messages FROM analytics.logs'),
    ('SET analytics.budget_enforcement = record'),
    ('SET analytics.admission_timeout = 1'),
    ('UPDATE analytics.admissions SET settled_by = 1'),
    ('DELETE FROM analytics.admissions'),
    ($$INSERT INTO analytics.admissions (customer_identifier, created_at, expires_at, estimated_cost, estimated_tokens) VALUES ('victim', now(), now(), 0, 0)$$),
    ($$UPDATE analytics.customers SET rate_limit = NULL WHERE customer_identifier = 'w1'$$)) v (q);
RESET ROLE;
SELECT public.roles_state() = s AS writer_changed_nothing FROM state_before;

SET ROLE regress_roles_reader;
SELECT q AS reader_attempts, public.roles_try(q) AS outcome FROM (VALUES
    ($$INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('r', 'gpt-4o', 0)$$),
    ($$SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "r"}')$$),
    ($$SELECT analytics.ingest_batch('{"model": "gpt-4o", "customer_identifier": "r"}')$$),
    ($$SELECT analytics.upsert_customer('{"customer_identifier": "r"}')$$),
    ($$UPDATE analytics.customers SET name = 'x'$$),
    ('UPDATE analytics.budget_counters SET spend = -1000'),
    ('SELECT prompt_messages FROM analytics.logs'),
    ('SELECT completion_message FROM analytics.logs'),
    ('SELECT * FROM analytics.logs'),
    ($$SELECT * FROM analytics._ingest_batch_rows('{"model": "gpt-4o"}')$$),
    ($$SELECT analytics.set_timezone('Europe/Paris')$$),
    ('SELECT analytics.purge_logs(now())'),
    ($$SELECT analytics.delete_customer('victim')$$)) v (q);
RESET ROLE;
SELECT public.roles_state() = s AS reader_changed_nothing FROM state_before;

-- The check inside the administrative functions does not rely on EXECUTE
-- alone: granted EXECUTE, a non-admin is still refused, before any lock.
GRANT EXECUTE ON FUNCTION analytics.set_timezone(text), analytics.purge_logs(timestamptz),
    analytics.delete_customer(text) TO regress_roles_writer;
SET ROLE regress_roles_writer;
SELECT q AS granted_execute, public.roles_try(q) AS outcome FROM (VALUES
    ($$SELECT analytics.set_timezone('Europe/Paris')$$),
    ('SELECT analytics.purge_logs(now())'),
    ($$SELECT analytics.delete_customer('victim')$$)) v (q);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION analytics.set_timezone(text), analytics.purge_logs(timestamptz),
    analytics.delete_customer(text) FROM regress_roles_writer;
SELECT public.roles_state() = s AS still_nothing_changed FROM state_before;

-- The attack of the 1.0 grants: a negative counter let 100 logs of $5
-- through a $1 budget.  The counter cannot go negative, even for the owner,
-- and a writer gets exactly the one crossing log in.
SELECT public.roles_try('UPDATE analytics.budget_counters SET spend = -1000') AS owner_negative_spend;
SET ROLE regress_roles_writer;
DO $$
DECLARE
    accepted int := 0;
BEGIN
    FOR i IN 1..100 LOOP
        BEGIN
            INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('victim', 'gpt-4o', 5);
            accepted := accepted + 1;
        EXCEPTION WHEN SQLSTATE 'UA001' THEN
            NULL;
        END;
    END LOOP;
    RAISE NOTICE 'accepted % of 100 logs of $5 on a $1 budget', accepted;
END;
$$;
RESET ROLE;

---------------------------------------------------------------------------
-- analytics_reader: every view (every column: SELECT *), the read
-- functions, never the message bodies.
SET ROLE regress_roles_reader;
SELECT c.relname AS view, public.roles_try(format('SELECT count(*) FROM (SELECT * FROM %s) s', c.oid::regclass)) AS outcome
  FROM pg_class c
 WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind IN ('v', 'm')
 ORDER BY 1;
SELECT count(*) AS logs, count(prompt_messages) AS prompts, count(completion_message) AS completions
  FROM analytics.logs_with_customer;
SELECT count(*) AS logs, count(prompt_messages) AS prompts, count(completion_message) AS completions
  FROM analytics.customer_logs('capped');
SELECT count(*) AS filtered FROM analytics.logs WHERE customer_identifier = 'w1' AND model = 'gpt-4o';
SELECT customer_identifier, requests FROM analytics.top_users(now() - interval '1 day', now() + interval '1 day', 'requests', 3);
SELECT active_users FROM analytics.active_users(now() - interval '1 day', now() + interval '1 day', 'month');
SELECT allowed, reason FROM analytics.check_budget('blocked1');
SELECT period_end > period_start AS current_period FROM analytics.current_period(now(), 'monthly');
SELECT analytics.period_spend('capped') AS period_spend;
SELECT customer_identifier, requests, blocked FROM analytics.users WHERE customer_identifier IN ('capped', 'blocked1') ORDER BY 1;
SELECT watermark > 0 AS folded FROM analytics.status;
RESET ROLE;
-- The owner (and a role granted the body columns) sees the bodies.
SELECT count(prompt_messages) AS prompts, count(completion_message) AS completions
  FROM analytics.logs_with_customer;
SELECT count(prompt_messages) AS prompts FROM analytics.customer_logs('capped');

---------------------------------------------------------------------------
-- analytics_admin: customers and budgets, model prices, the administrative
-- functions; still no write to derived state.
SET ROLE regress_roles_admin;
SELECT period_budget, total_budget
  FROM analytics.upsert_customer('{"customer_identifier": "capped", "period_budget": 2, "total_budget": 10}');
UPDATE analytics.customers SET blocked = true, markup_percentage = 10 WHERE customer_identifier = 'w3';
INSERT INTO analytics.customers (customer_identifier, period_budget) VALUES ('a1', 3);
UPDATE analytics.model_prices SET prompt_per_million = 3 WHERE model = 'gpt-4o';
INSERT INTO analytics.model_prices VALUES ('regress-model', 1, 2);
DELETE FROM analytics.model_prices WHERE model = 'regress-model';
SELECT analytics.rollup_now() >= 0 AS rollup_now;
SELECT analytics.purge_logs(now() - interval '400 days') AS purged;
SELECT analytics.set_timezone('UTC');
SELECT analytics.delete_customer('w4');
SELECT analytics.ingest('{"model": "gpt-4o", "cost": 0.01, "customer_params": {"customer_identifier": "a2", "period_budget": 7}}') > 0 AS admin_ingest;
SELECT count(*) AS views_rows FROM analytics.users;
SELECT q AS admin_attempts, public.roles_try(q) AS outcome FROM (VALUES
    ('UPDATE analytics.budget_counters SET spend = 0'),
    ('DELETE FROM analytics.budget_counters'),
    ($$INSERT INTO analytics.usage_day (day) VALUES (current_date)$$),
    ('UPDATE analytics.rollup_state SET watermark = 0'),
    ('DELETE FROM analytics.customers'),
    ('SELECT prompt_messages FROM analytics.logs'),
    ('SET analytics.budget_enforcement = record')) v (q);
RESET ROLE;
SELECT customer_identifier, period_budget, total_budget, blocked, markup_percentage
  FROM analytics.customers WHERE customer_identifier IN ('capped', 'w3', 'w4', 'a1', 'a2') ORDER BY 1;
SELECT prompt_per_million FROM analytics.model_prices WHERE model = 'gpt-4o';
-- The writer's next log of w3 is refused: the admin blocked it.
SET ROLE regress_roles_writer;
SELECT public.roles_try($$SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "w3"}')$$) AS blocked_by_admin;
RESET ROLE;

DROP FUNCTION public.roles_try(text);
DROP FUNCTION public.roles_state();
DROP FUNCTION public.roles_catalog();
DROP ROLE regress_roles_reader;
DROP ROLE regress_roles_writer;
DROP ROLE regress_roles_admin;
