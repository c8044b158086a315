-- Piece 95: roles and privileges (SPEC section 13).  Keep it last: it
-- revokes PUBLIC's EXECUTE from every function of the schema, so a function
-- added by a later piece would keep it.  A new table, view or function gets
-- its grants here (and in the same section of the upgrade script).
--
-- Three NOLOGIN group roles, created when missing.  Roles belong to the
-- cluster, not to the database: DROP EXTENSION leaves them (with no
-- privileges left), and a second database's CREATE EXTENSION reuses them.
--   analytics_reader  every view and read function; not the message bodies
--   analytics_writer  records logs through every path; cannot change what
--                     decides whether its logs are accepted
--   analytics_admin   customers and budgets, model_prices (import_prices),
--                     delete_customer, purge_logs, set_timezone, rollup_now;
--                     a member of both of the others
-- Derived state (budget_counters, the usage_* rollups, rollup_state) is
-- written only by the extension's own code, with its owner's rights
-- (src/privs.c).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['analytics_reader', 'analytics_writer', 'analytics_admin'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['analytics_reader', 'analytics_writer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                        WHERE m.roleid OPERATOR(pg_catalog.=) r::regrole
                          AND m.member OPERATOR(pg_catalog.=) 'analytics_admin'::regrole) THEN
            EXECUTE pg_catalog.format('GRANT %I TO analytics_admin', r);
        END IF;
    END LOOP;
END;
$$;

-- Nothing for PUBLIC: functions are created with EXECUTE for PUBLIC.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA analytics FROM PUBLIC;

GRANT USAGE ON SCHEMA analytics TO analytics_reader, analytics_writer;

-- analytics_reader: every view; the tables the read functions use (they are
-- SECURITY INVOKER, as are the functions the views call); of logs every
-- column but the message bodies (logs_with_customer and customer_logs show
-- them as null to a role that cannot read them).
GRANT SELECT ON analytics.status, analytics._usage_live, analytics._usage_customer_day_live,
    analytics._usage_pending, analytics._usage_customer_day_pending, analytics._usage_day,
    analytics.users, analytics.top_users, analytics.daily_active_users,
    analytics.cost_by_user, analytics.logs_with_customer, analytics._day_gaps_kept,
    analytics._pending_customers, analytics._pending_customer_days,
    analytics._users_on_cluster, analytics._cost_by_user_on_cluster
    TO analytics_reader;
GRANT SELECT ON analytics.customers, analytics.model_prices, analytics.budget_counters,
    analytics.rollup_state, analytics.usage_daily, analytics.usage_customer_day,
    analytics.usage_customer, analytics.usage_day, analytics.usage_day_gaps, analytics.rollup_set_aside,
    analytics.rollup_gaps, analytics.admissions, analytics.budget_events
    TO analytics_reader;
GRANT SELECT (id, created_at, customer_identifier, model, prompt_tokens, completion_tokens,
    total_tokens, cost, latency, time_to_first_token, status_code, error_message,
    thread_identifier, custom_identifier, metadata, cached_tokens, cache_write_tokens,
    reasoning_tokens, admission_id, request_id)
    ON analytics.logs TO analytics_reader;
GRANT EXECUTE ON FUNCTION
    analytics.budget_period_bounds(timestamptz, text, timestamptz, text),
    analytics._budget_billed(numeric, numeric),
    analytics._budget_period_raw(text, timestamptz, timestamptz, boolean),
    analytics._budget_total_raw(text, boolean),
    analytics.budget_period(text, timestamptz),
    analytics.period_spend(text),
    analytics.check_budget(text),
    analytics._fold_watermark(),
    analytics._fold_id_last(),
    analytics._fold_gap_ids(),
    analytics._worker_status(),
    analytics._argument_error(text, text, text),
    analytics._period_bounds(timestamptz, text, timestamptz, text),
    analytics.current_period(timestamptz, text, timestamptz),
    analytics._top_model_step(internal, text, bigint),
    analytics._top_model_final(internal),
    analytics._top_model(text, bigint),
    analytics._top_model_in(text[], bigint[]),
    analytics._top_models_in(text[], bigint[], numeric[]),
    analytics._pending_customer_keys(),
    analytics._pending_customer_day_keys(),
    analytics._calendar_months(timestamptz, timestamptz, text),
    analytics.top_users(timestamptz, timestamptz, text, integer),
    analytics._usage_window(text[], date, date, boolean),
    analytics._window_days(timestamptz, timestamptz),
    analytics._top_users_metric(text, boolean),
    analytics._top_users_near(date, date, text, numeric),
    analytics._top_users_threshold(date, date, text, integer),
    analytics._top_users_above(date, date, text, integer, text[], numeric),
    analytics._top_users_reads_totals(date, date),
    analytics._usage_window_all(date, date, boolean),
    analytics.active_users(timestamptz, timestamptz, text),
    analytics.customer_logs(text, timestamptz, timestamptz, integer)
    TO analytics_reader;

-- analytics_writer: INSERT and COPY into logs (not the id: OVERRIDING SYSTEM
-- VALUE could place a log below the rollup watermark), the id back from
-- INSERT ... RETURNING; the ingest functions; check_budget (SECURITY
-- DEFINER); upsert_customer with name, email and metadata only: the column
-- privileges below are what keeps budgets, markup and blocked out of its
-- reach.  The insert trigger's own writes run with the owner's rights.
GRANT INSERT (created_at, customer_identifier, model, prompt_tokens, completion_tokens,
    cost, latency, time_to_first_token, status_code, error_message, thread_identifier,
    custom_identifier, metadata, prompt_messages, completion_message, cached_tokens,
    cache_write_tokens, reasoning_tokens, admission_id, request_id),
    SELECT (id)
    ON analytics.logs TO analytics_writer;
GRANT SELECT, INSERT (customer_identifier, name, email, metadata),
    UPDATE (name, email, metadata)
    ON analytics.customers TO analytics_writer;
GRANT EXECUTE ON FUNCTION
    analytics.ingest(text), analytics.ingest(json), analytics.ingest(jsonb),
    analytics.ingest_openai(text, text, double precision),
    analytics.ingest_openai(json, json, double precision),
    analytics.ingest_openai(jsonb, jsonb, double precision),
    analytics.ingest_anthropic(text, text, double precision),
    analytics.ingest_anthropic(json, json, double precision),
    analytics.ingest_anthropic(jsonb, jsonb, double precision),
    analytics.ingest_batch(text),
    analytics._ingest_batch_rows(text),
    analytics.upsert_customer(jsonb),
    analytics._param_error(text, text, jsonb),
    analytics._param_amount(jsonb, text),
    analytics._param_text(jsonb, text),
    analytics._param_limit(jsonb, text),
    analytics._param_thresholds(jsonb),
    analytics.check_budget(text),
    analytics.admit(text, numeric, integer)
    TO analytics_writer;

-- analytics_admin: customers and their budgets (not DELETE: delete_customer
-- removes a customer with its logs and rollups), model prices, and the
-- administrative functions, which check membership in analytics_admin
-- before they lock anything and then run with the owner's rights.
GRANT INSERT, UPDATE ON analytics.customers TO analytics_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON analytics.model_prices TO analytics_admin;
GRANT EXECUTE ON FUNCTION
    analytics.import_prices(jsonb),
    analytics.delete_customer(text),
    analytics.purge_logs(timestamptz),
    analytics.set_timezone(text),
    analytics.rollup_now(),
    analytics._purge_logs_node(timestamptz),
    analytics._delete_customer_node(text),
    analytics._set_timezone_node(text)
    TO analytics_admin;
