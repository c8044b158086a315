-- analytics 1.0 install script, assembled from sql/install/*.sql in name order.
-- Piece 00: the guard against running it by hand.
\echo Use "CREATE EXTENSION analytics" to load this file. \quit

CREATE SCHEMA analytics;
COMMENT ON SCHEMA analytics IS 'Per-user analytics and budgets for LLM applications.';
-- Piece 10: customers, one row per end user, and upsert_customer().

CREATE TABLE analytics.customers (
    customer_identifier text PRIMARY KEY
        CONSTRAINT customer_identifier_length
        CHECK (length(customer_identifier) BETWEEN 1 AND 255),
    name text,
    email text,
    metadata jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT metadata_is_object CHECK (jsonb_typeof(metadata) = 'object'),
    period_budget numeric
        CONSTRAINT period_budget_range
        CHECK (period_budget >= 0 AND period_budget < 'Infinity'),
    budget_duration text NOT NULL DEFAULT 'monthly'
        CONSTRAINT budget_duration_known
        CHECK (budget_duration IN ('daily', 'weekly', 'monthly', 'yearly')),
    period_start timestamptz NOT NULL DEFAULT now()
        CONSTRAINT period_start_finite CHECK (isfinite(period_start)),
    total_budget numeric
        CONSTRAINT total_budget_range
        CHECK (total_budget >= 0 AND total_budget < 'Infinity'),
    markup_percentage numeric NOT NULL DEFAULT 0
        CONSTRAINT markup_percentage_range
        CHECK (markup_percentage >= 0 AND markup_percentage < 'Infinity'),
    blocked boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE analytics.customers IS
    'End users of the LLM application, one row each: created explicitly or by the first log naming them.';
COMMENT ON COLUMN analytics.customers.customer_identifier IS 'The application''s id for the end user, 1-255 characters, case-sensitive.';
COMMENT ON COLUMN analytics.customers.name IS 'Display name (optional).';
COMMENT ON COLUMN analytics.customers.email IS 'Email address (optional).';
COMMENT ON COLUMN analytics.customers.metadata IS 'Free-form JSON object.';
COMMENT ON COLUMN analytics.customers.period_budget IS 'USD the customer may spend per budget period (billed cost); null means no period budget.';
COMMENT ON COLUMN analytics.customers.budget_duration IS 'Length of a budget period: daily, weekly, monthly or yearly.';
COMMENT ON COLUMN analytics.customers.period_start IS 'Anchor of the budget periods; periods are period_start + k * budget_duration.';
COMMENT ON COLUMN analytics.customers.total_budget IS 'Lifetime USD budget (billed cost); null means none.';
COMMENT ON COLUMN analytics.customers.markup_percentage IS 'Billed cost = cost * (1 + markup_percentage / 100).';
COMMENT ON COLUMN analytics.customers.blocked IS 'When true, every new log of this customer is rejected (SQLSTATE UA003).';
COMMENT ON COLUMN analytics.customers.created_at IS 'When the customer row was created.';
COMMENT ON COLUMN analytics.customers.updated_at IS 'When the customer row was last changed.';

SELECT pg_catalog.pg_extension_config_dump('analytics.customers', '');

CREATE FUNCTION analytics.customers_touch() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION analytics.customers_touch() IS 'Keeps customers.updated_at current.';

CREATE TRIGGER customers_touch BEFORE UPDATE ON analytics.customers
    FOR EACH ROW EXECUTE FUNCTION analytics.customers_touch();

-- Raise the house error for a customer_params key of the wrong type or value.
CREATE FUNCTION analytics._param_error(key text, expected text, got jsonb)
RETURNS void LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
BEGIN
    RAISE EXCEPTION 'invalid value for customer_params key "%"', key
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('Expected %s, got %s.', expected,
                              coalesce(left(got::text, 80), 'nothing')),
              HINT = 'See the customer_params keys in the analytics README.';
END;
$$;
COMMENT ON FUNCTION analytics._param_error(text, text, jsonb) IS 'Internal: error for a bad customer_params key.';

-- Read a non-negative finite JSON number, or NULL for JSON null.
CREATE FUNCTION analytics._param_amount(params jsonb, key text)
RETURNS numeric LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    v jsonb := params -> key;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'number' OR (v #>> '{}')::numeric < 0 THEN
        PERFORM analytics._param_error(key, 'a non-negative number or null', v);
    END IF;
    RETURN (v #>> '{}')::numeric;
END;
$$;
COMMENT ON FUNCTION analytics._param_amount(jsonb, text) IS 'Internal: a non-negative customer_params amount.';

-- Read a JSON string, or NULL for JSON null.
CREATE FUNCTION analytics._param_text(params jsonb, key text)
RETURNS text LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    v jsonb := params -> key;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        PERFORM analytics._param_error(key, 'a string or null', v);
    END IF;
    RETURN v #>> '{}';
END;
$$;
COMMENT ON FUNCTION analytics._param_text(jsonb, text) IS 'Internal: a string customer_params value.';

CREATE FUNCTION analytics.upsert_customer(params jsonb)
RETURNS analytics.customers
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, analytics AS $$
DECLARE
    ident text;
    v_name text;
    v_email text;
    v_metadata jsonb;
    v_period_budget numeric;
    v_duration text;
    v_period_start timestamptz;
    v_total_budget numeric;
    v_markup numeric;
    result analytics.customers;
BEGIN
    IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
        RAISE EXCEPTION 'customer_params must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s.', coalesce(jsonb_typeof(params), 'SQL NULL'));
    END IF;
    IF NOT params ? 'customer_identifier' OR jsonb_typeof(params -> 'customer_identifier') = 'null' THEN
        RAISE EXCEPTION 'customer_params key "customer_identifier" is required'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the application''s id of the end user as a string.';
    END IF;
    ident := analytics._param_text(params, 'customer_identifier');
    IF length(ident) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'customer_identifier must be 1 to 255 characters long'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s characters.', length(ident));
    END IF;

    v_name := analytics._param_text(params, 'name');
    v_email := analytics._param_text(params, 'email');
    IF params ? 'metadata' THEN
        v_metadata := params -> 'metadata';
        IF jsonb_typeof(v_metadata) = 'null' THEN
            v_metadata := '{}';
        ELSIF jsonb_typeof(v_metadata) <> 'object' THEN
            PERFORM analytics._param_error('metadata', 'a JSON object or null', v_metadata);
        END IF;
    END IF;
    v_period_budget := analytics._param_amount(params, 'period_budget');
    v_total_budget := analytics._param_amount(params, 'total_budget');
    v_markup := coalesce(analytics._param_amount(params, 'markup_percentage'), 0);
    v_duration := coalesce(analytics._param_text(params, 'budget_duration'), 'monthly');
    IF v_duration NOT IN ('daily', 'weekly', 'monthly', 'yearly') THEN
        RAISE EXCEPTION 'invalid value for customer_params key "budget_duration"'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got "%s".', v_duration),
                  HINT = 'Use daily, weekly, monthly or yearly.';
    END IF;
    IF params ? 'period_start' AND jsonb_typeof(params -> 'period_start') <> 'null' THEN
        BEGIN
            v_period_start := analytics._param_text(params, 'period_start')::timestamptz;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
            PERFORM analytics._param_error('period_start', 'an ISO 8601 timestamp', params -> 'period_start');
        END;
        IF NOT isfinite(v_period_start) THEN
            PERFORM analytics._param_error('period_start', 'a finite ISO 8601 timestamp', params -> 'period_start');
        END IF;
    ELSE
        v_period_start := now();
    END IF;

    INSERT INTO analytics.customers AS c
        (customer_identifier, name, email, metadata, period_budget, budget_duration,
         period_start, total_budget, markup_percentage)
    VALUES (ident, v_name, v_email, coalesce(v_metadata, '{}'), v_period_budget, v_duration,
            v_period_start, v_total_budget, v_markup)
    ON CONFLICT (customer_identifier) DO UPDATE SET
        name = CASE WHEN params ? 'name' THEN EXCLUDED.name ELSE c.name END,
        email = CASE WHEN params ? 'email' THEN EXCLUDED.email ELSE c.email END,
        metadata = CASE WHEN params ? 'metadata' THEN EXCLUDED.metadata ELSE c.metadata END,
        period_budget = CASE WHEN params ? 'period_budget' THEN EXCLUDED.period_budget ELSE c.period_budget END,
        budget_duration = CASE WHEN params ? 'budget_duration' THEN EXCLUDED.budget_duration ELSE c.budget_duration END,
        period_start = CASE WHEN params ? 'period_start' THEN EXCLUDED.period_start ELSE c.period_start END,
        total_budget = CASE WHEN params ? 'total_budget' THEN EXCLUDED.total_budget ELSE c.total_budget END,
        markup_percentage = CASE WHEN params ? 'markup_percentage' THEN EXCLUDED.markup_percentage ELSE c.markup_percentage END
    -- Touch the row only when a given key changes it: repeated ingests that
    -- carry the same customer_params must not queue on the customer's row.
    WHERE (params ? 'name' AND c.name IS DISTINCT FROM EXCLUDED.name)
       OR (params ? 'email' AND c.email IS DISTINCT FROM EXCLUDED.email)
       OR (params ? 'metadata' AND c.metadata IS DISTINCT FROM EXCLUDED.metadata)
       OR (params ? 'period_budget' AND c.period_budget IS DISTINCT FROM EXCLUDED.period_budget)
       OR (params ? 'budget_duration' AND c.budget_duration IS DISTINCT FROM EXCLUDED.budget_duration)
       OR (params ? 'period_start' AND c.period_start IS DISTINCT FROM EXCLUDED.period_start)
       OR (params ? 'total_budget' AND c.total_budget IS DISTINCT FROM EXCLUDED.total_budget)
       OR (params ? 'markup_percentage' AND c.markup_percentage IS DISTINCT FROM EXCLUDED.markup_percentage)
    RETURNING * INTO result;
    IF NOT FOUND THEN
        SELECT * INTO result FROM analytics.customers
         WHERE customer_identifier OPERATOR(pg_catalog.=) ident;
    END IF;
    RETURN result;
END;
$$;
COMMENT ON FUNCTION analytics.upsert_customer(jsonb) IS
    'Creates or updates a customer from a customer_params object; absent keys keep their value, JSON null clears it.';
-- Piece 20: logs (one row per LLM request), model prices, and the guards
-- that make logs facts.

CREATE TABLE analytics.model_prices (
    model text PRIMARY KEY CONSTRAINT model_not_empty CHECK (model <> ''),
    prompt_per_million numeric NOT NULL
        CONSTRAINT prompt_price_range
        CHECK (prompt_per_million >= 0 AND prompt_per_million < 'Infinity'),
    completion_per_million numeric NOT NULL
        CONSTRAINT completion_price_range
        CHECK (completion_per_million >= 0 AND completion_per_million < 'Infinity')
);
COMMENT ON TABLE analytics.model_prices IS
    'USD per million tokens by model; a model uses the longest entry its name starts with. Yours to edit.';
COMMENT ON COLUMN analytics.model_prices.model IS 'Model name or name prefix (gpt-4o matches gpt-4o-2024-08-06).';
COMMENT ON COLUMN analytics.model_prices.prompt_per_million IS 'USD per million prompt (input) tokens.';
COMMENT ON COLUMN analytics.model_prices.completion_per_million IS 'USD per million completion (output) tokens.';

-- List prices as published by the vendors in 2025 (standard tier, USD per
-- million tokens).  Edit the table to match your contract.
INSERT INTO analytics.model_prices VALUES
    ('gpt-4o', 2.50, 10.00),
    ('gpt-4o-mini', 0.15, 0.60),
    ('gpt-4.1', 2.00, 8.00),
    ('gpt-4.1-mini', 0.40, 1.60),
    ('gpt-4.1-nano', 0.10, 0.40),
    ('o3-mini', 1.10, 4.40),
    ('claude-3-5-haiku', 0.80, 4.00),
    ('claude-3-7-sonnet', 3.00, 15.00),
    ('claude-sonnet-4', 3.00, 15.00),
    ('gemini-2.0-flash', 0.10, 0.40);

-- Dump the whole table: the shipped rows may have been edited.
SELECT pg_catalog.pg_extension_config_dump('analytics.model_prices', '');

CREATE TABLE analytics.logs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    customer_identifier text,
    model text NOT NULL,
    prompt_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT prompt_tokens_non_negative CHECK (prompt_tokens >= 0),
    completion_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT completion_tokens_non_negative CHECK (completion_tokens >= 0),
    total_tokens integer GENERATED ALWAYS AS (prompt_tokens + completion_tokens) STORED,
    cost numeric NOT NULL
        CONSTRAINT cost_range CHECK (cost >= 0 AND cost < 'Infinity'),
    latency double precision
        CONSTRAINT latency_range CHECK (latency >= 0 AND latency < 'Infinity'),
    time_to_first_token double precision
        CONSTRAINT time_to_first_token_range
        CHECK (time_to_first_token >= 0 AND time_to_first_token < 'Infinity'),
    status_code integer NOT NULL DEFAULT 200,
    error_message text,
    thread_identifier text,
    custom_identifier text,
    metadata jsonb,
    prompt_messages jsonb,
    completion_message jsonb
);

COMMENT ON TABLE analytics.logs IS
    'One row per LLM request. Facts: only metadata, error_message and the message bodies may change; rows leave through purge_logs() and delete_customer().';
COMMENT ON COLUMN analytics.logs.id IS 'Identity; also the order in which the rollup folds logs in.';
COMMENT ON COLUMN analytics.logs.created_at IS 'When the request finished.';
COMMENT ON COLUMN analytics.logs.customer_identifier IS 'The end user; an unknown identifier creates the customer. Null for requests of no end user.';
COMMENT ON COLUMN analytics.logs.model IS 'Model name as reported by the provider.';
COMMENT ON COLUMN analytics.logs.prompt_tokens IS 'Prompt (input) tokens.';
COMMENT ON COLUMN analytics.logs.completion_tokens IS 'Completion (output) tokens.';
COMMENT ON COLUMN analytics.logs.total_tokens IS 'prompt_tokens + completion_tokens.';
COMMENT ON COLUMN analytics.logs.cost IS 'USD; when not given, computed from analytics.model_prices.';
COMMENT ON COLUMN analytics.logs.latency IS 'Seconds from request to last token.';
COMMENT ON COLUMN analytics.logs.time_to_first_token IS 'Seconds from request to first token.';
COMMENT ON COLUMN analytics.logs.status_code IS 'HTTP-style status; 400 and above counts as an error.';
COMMENT ON COLUMN analytics.logs.error_message IS 'Provider error message, if any.';
COMMENT ON COLUMN analytics.logs.thread_identifier IS 'Conversation thread id (optional).';
COMMENT ON COLUMN analytics.logs.custom_identifier IS 'Application-defined id (optional).';
COMMENT ON COLUMN analytics.logs.metadata IS 'Free-form JSON.';
COMMENT ON COLUMN analytics.logs.prompt_messages IS 'Request messages (optional).';
COMMENT ON COLUMN analytics.logs.completion_message IS 'Response message (optional).';

CREATE INDEX logs_customer_created_at ON analytics.logs (customer_identifier, created_at);

SELECT pg_catalog.pg_extension_config_dump('analytics.logs', '');
SELECT pg_catalog.pg_extension_config_dump('analytics.logs_id_seq', '');

-- Validates a new log, fills in its cost, makes sure its customer exists
-- (creating it when unknown) and enforces the customer's budget.
CREATE FUNCTION analytics.logs_before_insert() RETURNS trigger
    AS 'MODULE_PATHNAME', 'logs_before_insert' LANGUAGE C;
COMMENT ON FUNCTION analytics.logs_before_insert() IS
    'Trigger: validates a log, computes its cost, creates its customer and enforces budgets.';

-- Rejects UPDATEs of the fact columns, and DELETE and TRUNCATE outside
-- purge_logs() and delete_customer().
CREATE FUNCTION analytics.logs_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'logs_guard' LANGUAGE C;
COMMENT ON FUNCTION analytics.logs_guard() IS
    'Trigger: keeps logs facts (no UPDATE of fact columns, no DELETE or TRUNCATE by hand).';

CREATE TRIGGER logs_before_insert BEFORE INSERT ON analytics.logs
    FOR EACH ROW EXECUTE FUNCTION analytics.logs_before_insert();
CREATE TRIGGER logs_guard_update BEFORE UPDATE ON analytics.logs
    FOR EACH ROW EXECUTE FUNCTION analytics.logs_guard();
CREATE TRIGGER logs_guard_delete BEFORE DELETE ON analytics.logs
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.logs_guard();
CREATE TRIGGER logs_guard_truncate BEFORE TRUNCATE ON analytics.logs
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.logs_guard();

CREATE FUNCTION analytics.model_prices_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'model_prices_changed' LANGUAGE C;
COMMENT ON FUNCTION analytics.model_prices_changed() IS
    'Trigger: makes the next log of this session read model_prices afresh.';
CREATE TRIGGER model_prices_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON analytics.model_prices
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.model_prices_changed();

-- Sessions cache the customers they have seen (logs.c): removing customers
-- waits for the log writers and makes every session forget them.
CREATE FUNCTION analytics.customers_removing() RETURNS trigger
    AS 'MODULE_PATHNAME', 'customers_removing' LANGUAGE C;
COMMENT ON FUNCTION analytics.customers_removing() IS
    'Trigger: before customers are deleted, waits for log writers and invalidates the sessions'' customer caches.';
CREATE TRIGGER customers_removing BEFORE DELETE OR TRUNCATE ON analytics.customers
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.customers_removing();
-- Piece 30: budgets.  The counters the insert trigger keeps per customer and
-- budget period (src/budget.c), the period arithmetic, check_budget(), and
-- the trigger that serializes budget changes with the inserts they govern.

CREATE TABLE analytics.budget_counters (
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    spend numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_identifier, period_start, period_end)
);
COMMENT ON TABLE analytics.budget_counters IS
    'Derived state of the budget trigger: raw cost of a customer''s committed logs per budget period. Rebuilt from the logs when missing; not dumped.';
COMMENT ON COLUMN analytics.budget_counters.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.budget_counters.period_start IS 'Start of the budget period (inclusive); -infinity for the lifetime counter.';
COMMENT ON COLUMN analytics.budget_counters.period_end IS 'End of the budget period (exclusive); infinity for the lifetime counter.';
COMMENT ON COLUMN analytics.budget_counters.spend IS 'Sum of cost (USD, before markup) of the customer''s logs in the period.';
-- No pg_extension_config_dump: the counters are derived from the logs and
-- rebuilt lazily after a restore.

CREATE FUNCTION analytics.budget_period_bounds(anchor timestamptz, duration text,
    at timestamptz, timezone text,
    OUT period_start timestamptz, OUT period_end timestamptz)
    AS 'MODULE_PATHNAME', 'budget_period_bounds'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION analytics.budget_period_bounds(timestamptz, text, timestamptz, text) IS
    'The budget period [period_start, period_end) containing at: anchor + k * duration (daily, weekly, monthly, yearly), calendar arithmetic on wall-clock time in timezone.';

CREATE FUNCTION analytics.budget_customers_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'budget_customers_changed' LANGUAGE C;
COMMENT ON FUNCTION analytics.budget_customers_changed() IS
    'Trigger: a budget change waits for the customer''s in-flight log inserts and applies from the next insert on.';

CREATE TRIGGER budget_customers_changed BEFORE UPDATE ON analytics.customers
    FOR EACH ROW EXECUTE FUNCTION analytics.budget_customers_changed();

-- billed = raw * (1 + markup / 100), computed exactly.
CREATE FUNCTION analytics._budget_billed(raw numeric, markup numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.trim_scale(raw OPERATOR(pg_catalog.*)
        (1 OPERATOR(pg_catalog.+) (markup OPERATOR(pg_catalog.*) 0.01)))
$$;
COMMENT ON FUNCTION analytics._budget_billed(numeric, numeric) IS
    'Internal: billed cost = raw cost * (1 + markup_percentage / 100).';

-- Raw spend of a customer in [p_start, p_end): from its counter when the
-- counter is kept (use_counter), else from the logs.
CREATE FUNCTION analytics._budget_period_raw(ident text, p_start timestamptz,
    p_end timestamptz, use_counter boolean)
RETURNS numeric LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    v numeric;
BEGIN
    IF use_counter THEN
        SELECT c.spend INTO v FROM analytics.budget_counters c
         WHERE c.customer_identifier OPERATOR(pg_catalog.=) ident
           AND c.period_start OPERATOR(pg_catalog.=) p_start
           AND c.period_end OPERATOR(pg_catalog.=) p_end;
        IF FOUND THEN
            RETURN v;
        END IF;
    END IF;
    SELECT coalesce(sum(l.cost), 0) INTO v FROM analytics.logs l
     WHERE l.customer_identifier OPERATOR(pg_catalog.=) ident
       AND l.created_at OPERATOR(pg_catalog.>=) p_start
       AND l.created_at OPERATOR(pg_catalog.<) p_end;
    RETURN v;
END;
$$;
COMMENT ON FUNCTION analytics._budget_period_raw(text, timestamptz, timestamptz, boolean) IS
    'Internal: raw spend of a customer in a budget period.';

-- Raw lifetime spend of a customer: its lifetime counter when kept, else
-- the rollups plus the logs not folded in yet (purged logs still count).
CREATE FUNCTION analytics._budget_total_raw(ident text, use_counter boolean)
RETURNS numeric LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    v numeric;
BEGIN
    IF use_counter THEN
        SELECT c.spend INTO v FROM analytics.budget_counters c
         WHERE c.customer_identifier OPERATOR(pg_catalog.=) ident
           AND c.period_start OPERATOR(pg_catalog.=) '-infinity'
           AND c.period_end OPERATOR(pg_catalog.=) 'infinity';
        IF FOUND THEN
            RETURN v;
        END IF;
    END IF;
    SELECT (SELECT coalesce(sum(u.cost), 0) FROM analytics.usage_daily u
             WHERE u.customer_identifier OPERATOR(pg_catalog.=) ident)
         + (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
             WHERE l.customer_identifier OPERATOR(pg_catalog.=) ident
               AND l.id OPERATOR(pg_catalog.>) (SELECT s.watermark FROM analytics.rollup_state s))
      INTO v;
    RETURN v;
END;
$$;
COMMENT ON FUNCTION analytics._budget_total_raw(text, boolean) IS
    'Internal: raw lifetime spend of a customer.';

CREATE FUNCTION analytics.budget_period(customer_identifier text, at timestamptz DEFAULT now(),
    OUT period_start timestamptz, OUT period_end timestamptz)
RETURNS record LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
BEGIN
    SELECT b.period_start, b.period_end INTO period_start, period_end
      FROM analytics.customers c
     CROSS JOIN analytics.rollup_state s
     CROSS JOIN LATERAL analytics.budget_period_bounds(c.period_start, c.budget_duration, $2, s.timezone) b
     WHERE c.customer_identifier OPERATOR(pg_catalog.=) $1;
END;
$$;
COMMENT ON FUNCTION analytics.budget_period(text, timestamptz) IS
    'The customer''s budget period containing at (default now()); nulls for an unknown customer.';

CREATE FUNCTION analytics.period_spend(customer_identifier text)
RETURNS numeric LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    c analytics.customers;
    p record;
BEGIN
    SELECT * INTO c FROM analytics.customers x
     WHERE x.customer_identifier OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    p := analytics.budget_period($1);
    RETURN analytics._budget_billed(
        analytics._budget_period_raw($1, p.period_start, p.period_end, c.period_budget IS NOT NULL),
        c.markup_percentage);
END;
$$;
COMMENT ON FUNCTION analytics.period_spend(text) IS
    'Billed spend (markup applied) of the customer in its current budget period; null for an unknown customer.';

CREATE FUNCTION analytics.check_budget(customer_identifier text,
    OUT allowed boolean, OUT reason text,
    OUT period_start timestamptz, OUT period_end timestamptz,
    OUT period_spend numeric, OUT period_budget numeric, OUT period_remaining numeric,
    OUT total_spend numeric, OUT total_budget numeric, OUT total_remaining numeric)
RETURNS record LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    c analytics.customers;
    p record;
BEGIN
    SELECT * INTO c FROM analytics.customers x
     WHERE x.customer_identifier OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND THEN
        -- Its first log creates it without a budget: it will be accepted.
        allowed := true;
        period_spend := 0;
        total_spend := 0;
        RETURN;
    END IF;
    p := analytics.budget_period($1);
    period_start := p.period_start;
    period_end := p.period_end;
    period_budget := c.period_budget;
    total_budget := c.total_budget;
    period_spend := analytics._budget_billed(
        analytics._budget_period_raw($1, p.period_start, p.period_end, c.period_budget IS NOT NULL),
        c.markup_percentage);
    total_spend := analytics._budget_billed(
        analytics._budget_total_raw($1, c.total_budget IS NOT NULL), c.markup_percentage);
    -- GREATEST ignores NULLs: no budget must stay "no remaining amount".
    period_remaining := CASE WHEN c.period_budget IS NOT NULL THEN greatest(c.period_budget - period_spend, 0) END;
    total_remaining := CASE WHEN c.total_budget IS NOT NULL THEN greatest(c.total_budget - total_spend, 0) END;
    reason := CASE
        WHEN c.blocked THEN 'blocked'
        WHEN period_spend >= c.period_budget THEN 'period_budget'
        WHEN total_spend >= c.total_budget THEN 'total_budget'
    END;
    allowed := reason IS NULL
        OR current_setting('analytics.budget_enforcement') = 'record';
END;
$$;
COMMENT ON FUNCTION analytics.check_budget(text) IS
    'Whether the customer''s next log would be accepted now, why not (blocked, period_budget, total_budget), and its billed spend, budgets and remaining amounts. Read-only; an unknown customer is allowed.';
-- Piece 40: rollup tables, folded in from analytics.logs by rollup.c.
--
-- A log is "folded in" when its id is at most rollup_state.watermark: its
-- counts are then in usage_daily, committed in the same transaction that
-- moved the watermark.  Views read usage_daily plus the logs above the
-- watermark.  Only logs with a customer_identifier are rolled up.

CREATE TABLE analytics.rollup_state (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT one_row CHECK (singleton),
    watermark bigint NOT NULL DEFAULT 0,
    last_pass timestamptz,
    last_pass_folded bigint NOT NULL DEFAULT 0,
    timezone text NOT NULL DEFAULT 'UTC',
    retained_from timestamptz
);
COMMENT ON TABLE analytics.rollup_state IS 'Progress of the rollup: one row.';
COMMENT ON COLUMN analytics.rollup_state.singleton IS 'Always true: the table has one row.';
COMMENT ON COLUMN analytics.rollup_state.watermark IS 'Every log with id at most this is counted in usage_daily.';
COMMENT ON COLUMN analytics.rollup_state.last_pass IS 'When the last fold-in pass committed.';
COMMENT ON COLUMN analytics.rollup_state.last_pass_folded IS 'How many logs the last pass folded in.';
COMMENT ON COLUMN analytics.rollup_state.timezone IS 'Time zone whose calendar days the rollups use (analytics.set_timezone).';
COMMENT ON COLUMN analytics.rollup_state.retained_from IS 'Start of a day in the rollup time zone: rollup days from here on are backed by raw logs and rebuilt by set_timezone; earlier days include purged logs and are kept as they are. Null: nothing purged yet.';
INSERT INTO analytics.rollup_state DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('analytics.rollup_state', '');

CREATE TABLE analytics.usage_daily (
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    day date NOT NULL,
    model text NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost numeric NOT NULL DEFAULT 0,
    latency_sum double precision NOT NULL DEFAULT 0,
    latency_count bigint NOT NULL DEFAULT 0,
    ttft_sum double precision NOT NULL DEFAULT 0,
    ttft_count bigint NOT NULL DEFAULT 0,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (customer_identifier, day, model)
);
COMMENT ON TABLE analytics.usage_daily IS 'Usage per customer, calendar day (in rollup_state.timezone) and model, folded in from logs.';
COMMENT ON COLUMN analytics.usage_daily.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.usage_daily.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics.usage_daily.model IS 'Model name as logged.';
COMMENT ON COLUMN analytics.usage_daily.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.usage_daily.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.usage_daily.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics.usage_daily.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics.usage_daily.cost IS 'Sum of cost (USD, before markup).';
COMMENT ON COLUMN analytics.usage_daily.latency_sum IS 'Sum of non-null latency.';
COMMENT ON COLUMN analytics.usage_daily.latency_count IS 'Logs with a latency.';
COMMENT ON COLUMN analytics.usage_daily.ttft_sum IS 'Sum of non-null time_to_first_token.';
COMMENT ON COLUMN analytics.usage_daily.ttft_count IS 'Logs with a time_to_first_token.';
COMMENT ON COLUMN analytics.usage_daily.first_seen IS 'Earliest created_at.';
COMMENT ON COLUMN analytics.usage_daily.last_seen IS 'Latest created_at.';
CREATE INDEX usage_daily_day ON analytics.usage_daily (day);
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_daily', '');

-- Coarser rollups, written by the same fold-in statement as usage_daily
-- (rollup.c), so they always describe exactly the logs up to the
-- watermark.  They let the views read one row per customer, per day, or per
-- customer and day instead of aggregating usage_daily.  An "active day" is
-- a (customer, day) pair with a usage_customer_day row: the fold counts the
-- pairs it creates (those without a row before it) into
-- usage_customer.active_days and usage_day.active_users.
CREATE TABLE analytics.usage_customer_day (
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    day date NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_identifier, day)
);
COMMENT ON TABLE analytics.usage_customer_day IS 'Usage per customer and calendar day (rollup time zone), all models: usage_daily summed over model, folded in with it.';
COMMENT ON COLUMN analytics.usage_customer_day.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.usage_customer_day.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics.usage_customer_day.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.usage_customer_day.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.usage_customer_day.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics.usage_customer_day.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics.usage_customer_day.cost IS 'Sum of cost (USD, before markup).';
CREATE INDEX usage_customer_day_day ON analytics.usage_customer_day (day);
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_customer_day', '');

CREATE TABLE analytics.usage_customer (
    customer_identifier text PRIMARY KEY
        REFERENCES analytics.customers ON DELETE CASCADE,
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost numeric NOT NULL DEFAULT 0,
    latency_sum double precision NOT NULL DEFAULT 0,
    latency_count bigint NOT NULL DEFAULT 0,
    ttft_sum double precision NOT NULL DEFAULT 0,
    ttft_count bigint NOT NULL DEFAULT 0,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    active_days bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE analytics.usage_customer IS 'Usage per customer over all time: usage_daily summed per customer, folded in with it.';
COMMENT ON COLUMN analytics.usage_customer.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.usage_customer.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.usage_customer.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.usage_customer.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics.usage_customer.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics.usage_customer.cost IS 'Sum of cost (USD, before markup).';
COMMENT ON COLUMN analytics.usage_customer.latency_sum IS 'Sum of non-null latency.';
COMMENT ON COLUMN analytics.usage_customer.latency_count IS 'Logs with a latency.';
COMMENT ON COLUMN analytics.usage_customer.ttft_sum IS 'Sum of non-null time_to_first_token.';
COMMENT ON COLUMN analytics.usage_customer.ttft_count IS 'Logs with a time_to_first_token.';
COMMENT ON COLUMN analytics.usage_customer.first_seen IS 'Earliest created_at.';
COMMENT ON COLUMN analytics.usage_customer.last_seen IS 'Latest created_at.';
COMMENT ON COLUMN analytics.usage_customer.active_days IS 'Calendar days (rollup time zone) with at least one log: the customer''s rows in usage_customer_day.';
-- Descending orders of each top_users metric: the all-time value bounds the
-- value over any window (metrics are sums of non-negative numbers).
CREATE INDEX usage_customer_cost ON analytics.usage_customer (cost DESC);
CREATE INDEX usage_customer_requests ON analytics.usage_customer (requests DESC);
CREATE INDEX usage_customer_tokens ON analytics.usage_customer ((prompt_tokens + completion_tokens) DESC);
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_customer', '');

CREATE TABLE analytics.usage_day (
    day date PRIMARY KEY,
    active_users bigint NOT NULL DEFAULT 0,
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost numeric NOT NULL DEFAULT 0
);
COMMENT ON TABLE analytics.usage_day IS 'Usage per calendar day (rollup time zone), all customers: usage_customer_day summed per day, folded in with it. Rows of a deleted customer are subtracted by a trigger on usage_customer_day.';
COMMENT ON COLUMN analytics.usage_day.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics.usage_day.active_users IS 'Customers with at least one log that day: rows of usage_customer_day for the day.';
COMMENT ON COLUMN analytics.usage_day.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.usage_day.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.usage_day.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics.usage_day.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics.usage_day.cost IS 'Sum of cost (USD, before markup).';
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_day', '');

-- A customer's rows of usage_customer_day leave (delete_customer, or the
-- cascade of any deletion of a customer): take them out of usage_day too,
-- and drop the days left without a customer.  Statement level, so one
-- UPDATE per deleting statement.
CREATE FUNCTION analytics._usage_customer_day_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
BEGIN
    UPDATE analytics.usage_day d
       SET active_users = d.active_users - o.active_users,
           requests = d.requests - o.requests,
           errors = d.errors - o.errors,
           prompt_tokens = d.prompt_tokens - o.prompt_tokens,
           completion_tokens = d.completion_tokens - o.completion_tokens,
           cost = d.cost - o.cost
      FROM (SELECT x.day, count(*) AS active_users, sum(x.requests) AS requests,
                   sum(x.errors) AS errors, sum(x.prompt_tokens) AS prompt_tokens,
                   sum(x.completion_tokens) AS completion_tokens, sum(x.cost) AS cost
              FROM old_rows x GROUP BY x.day) o
     WHERE d.day OPERATOR(pg_catalog.=) o.day;
    DELETE FROM analytics.usage_day d WHERE d.active_users OPERATOR(pg_catalog.<=) 0;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION analytics._usage_customer_day_deleted() IS
    'Internal: trigger keeping usage_day equal to usage_customer_day summed per day when rows of the latter are deleted.';
CREATE TRIGGER usage_customer_day_deleted
    AFTER DELETE ON analytics.usage_customer_day
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_customer_day_deleted();
-- Piece 45: the fold-in and retention functions (rollup.c) and the status
-- view.  See src/README.md for the fold-in protocol.

CREATE FUNCTION analytics.rollup_now() RETURNS bigint
    AS 'MODULE_PATHNAME', 'rollup_now' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION analytics.rollup_now() IS
    'Folds every committed log not yet rolled up into usage_daily and the coarser rollups, in the calling (READ COMMITTED) transaction; returns how many logs with a customer it folded.';

CREATE FUNCTION analytics.purge_logs(older_than timestamptz) RETURNS bigint
    AS 'MODULE_PATHNAME', 'rollup_purge_logs' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics.purge_logs(timestamptz) IS
    'Retention: folds pending logs in, then deletes the raw logs created before the start of older_than''s day (rollup time zone); usage_daily keeps their counts. Returns the number of logs deleted.';
REVOKE ALL ON FUNCTION analytics.purge_logs(timestamptz) FROM PUBLIC;

CREATE FUNCTION analytics.delete_customer(customer_identifier text) RETURNS void
    AS 'MODULE_PATHNAME', 'rollup_delete_customer' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics.delete_customer(text) IS
    'Removes a customer, all its logs and its rollups; an unknown customer is an error (SQLSTATE 42704).';
REVOKE ALL ON FUNCTION analytics.delete_customer(text) FROM PUBLIC;

CREATE FUNCTION analytics.set_timezone(timezone text) RETURNS void
    AS 'MODULE_PATHNAME', 'rollup_set_timezone' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION analytics.set_timezone(text) IS
    'Sets the time zone whose calendar days rollups and budget periods use, and rebuilds usage_daily from the retained raw logs (days of purged logs stay as they were), then usage_customer_day, usage_day and usage_customer from usage_daily.';

CREATE VIEW analytics.status AS
SELECT s.watermark,
       (SELECT pg_catalog.count(*) FROM analytics.logs l
         WHERE l.id OPERATOR(pg_catalog.>) s.watermark) AS logs_pending,
       s.last_pass,
       s.last_pass_folded,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                WHERE a.backend_type OPERATOR(pg_catalog.=) 'analytics rollup'
                  AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) AS worker_running,
       s.timezone,
       s.retained_from
  FROM analytics.rollup_state s;
COMMENT ON VIEW analytics.status IS 'Progress of the rollup and whether its background worker runs in this database.';
COMMENT ON COLUMN analytics.status.watermark IS 'Every log with id at most this is counted in usage_daily.';
COMMENT ON COLUMN analytics.status.logs_pending IS 'Logs above the watermark, not folded in yet (views still count them, from the raw logs).';
COMMENT ON COLUMN analytics.status.last_pass IS 'When the last fold-in pass (worker or rollup_now) committed.';
COMMENT ON COLUMN analytics.status.last_pass_folded IS 'How many logs the last pass folded in.';
COMMENT ON COLUMN analytics.status.worker_running IS 'Whether a rollup background worker is connected to this database.';
COMMENT ON COLUMN analytics.status.timezone IS 'Time zone whose calendar days the rollups use.';
COMMENT ON COLUMN analytics.status.retained_from IS 'Rollup days from here on are backed by raw logs; earlier days include purged logs. Null: nothing purged yet.';

-- Rebuild usage_customer_day, usage_day and usage_customer from usage_daily
-- (set_timezone calls it after refolding usage_daily by the new zone's
-- days).  The caller holds the rollup_state row lock, so no fold runs
-- meanwhile.
CREATE FUNCTION analytics._rollup_rebuild_summaries() RETURNS void
LANGUAGE sql SET search_path = pg_catalog, analytics AS $$
DELETE FROM analytics.usage_day;
DELETE FROM analytics.usage_customer_day;
DELETE FROM analytics.usage_customer;
INSERT INTO analytics.usage_customer_day
       (customer_identifier, day, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT d.customer_identifier, d.day, sum(d.requests), sum(d.errors), sum(d.prompt_tokens),
       sum(d.completion_tokens), sum(d.cost)
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier, d.day;
INSERT INTO analytics.usage_day
       (day, active_users, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT x.day, count(*), sum(x.requests), sum(x.errors), sum(x.prompt_tokens),
       sum(x.completion_tokens), sum(x.cost)
  FROM analytics.usage_customer_day x
 GROUP BY x.day;
INSERT INTO analytics.usage_customer
       (customer_identifier, requests, errors, prompt_tokens, completion_tokens, cost,
        latency_sum, latency_count, ttft_sum, ttft_count, first_seen, last_seen, active_days)
SELECT d.customer_identifier, sum(d.requests), sum(d.errors), sum(d.prompt_tokens),
       sum(d.completion_tokens), sum(d.cost), sum(d.latency_sum), sum(d.latency_count),
       sum(d.ttft_sum), sum(d.ttft_count), min(d.first_seen), max(d.last_seen),
       count(DISTINCT d.day)
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier;
$$;
COMMENT ON FUNCTION analytics._rollup_rebuild_summaries() IS
    'Internal: rebuilds usage_customer_day, usage_day and usage_customer from usage_daily.';
-- Piece 50: the views and functions for people and BI tools (SPEC section 6).
--
-- Every figure is real time: it reads analytics.usage_daily (the logs folded
-- in, including those purge_logs() removed since) plus the logs above
-- rollup_state.watermark (not folded in yet), so it equals the same GROUP BY
-- over the raw logs at any moment.  The watermark and the time zone are read
-- by uncorrelated subqueries of the same statement that reads the rollups
-- and the logs: one snapshot sees both sides of a fold-in or neither, and
-- rollup_state is read once per statement, not once per row.  No function
-- here reads the watermark into a variable and queries later: under READ
-- COMMITTED a fold-in could commit in between and count logs twice.
--
-- A day is a calendar day in rollup_state.timezone.  Functions taking
-- since/until count every day that overlaps [since, until) in full: the day
-- containing since counts, the day containing until counts unless until is
-- exactly its midnight.  A null since or until is unbounded.

-- The logs not folded in yet (id above the watermark, with a customer),
-- aggregated like usage_daily.  plpgsql so that the watermark is a known
-- value when the query is planned: the planner then reads the few pending
-- logs through the primary key (or all logs, when nothing is folded)
-- instead of guessing.  STABLE: both statements run in the caller's
-- snapshot, so the watermark read here matches the usage_daily the caller
-- reads.  EXECUTE passes the values as parameters; nothing is pasted in.
CREATE FUNCTION analytics._pending_usage()
RETURNS TABLE (customer_identifier text, day date, model text, requests bigint,
               errors bigint, prompt_tokens bigint, completion_tokens bigint,
               cost numeric, latency_sum double precision, latency_count bigint,
               ttft_sum double precision, ttft_count bigint,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE plpgsql STABLE ROWS 1000 SET search_path = pg_catalog, analytics AS $$
DECLARE
    wm bigint;
    tz text;
BEGIN
    SELECT s.watermark, s.timezone INTO wm, tz FROM analytics.rollup_state s;
    RETURN QUERY EXECUTE $q$
        SELECT l.customer_identifier,
               (l.created_at AT TIME ZONE $2)::date,
               l.model,
               count(*),
               count(*) FILTER (WHERE l.status_code OPERATOR(pg_catalog.>=) 400),
               sum(l.prompt_tokens)::bigint,
               sum(l.completion_tokens)::bigint,
               sum(l.cost),
               coalesce(sum(l.latency), 0),
               count(l.latency),
               coalesce(sum(l.time_to_first_token), 0),
               count(l.time_to_first_token),
               min(l.created_at),
               max(l.created_at)
          FROM analytics.logs l
         WHERE l.id OPERATOR(pg_catalog.>) $1
           AND l.customer_identifier IS NOT NULL
         GROUP BY 1, 2, 3$q$
    USING wm, tz;
END;
$$;
COMMENT ON FUNCTION analytics._pending_usage() IS
    'Internal: the logs above the rollup watermark, aggregated per customer, day and model like usage_daily.';

-- usage_daily plus the logs not folded in yet, in the shape of usage_daily.
-- A (customer, day, model) may appear twice, once folded and once pending:
-- callers sum.  Quals on customer_identifier, day or model reach
-- usage_daily's indexes; the pending part is small and read whole.
CREATE VIEW analytics._usage_live AS
SELECT d.customer_identifier, d.day, d.model, d.requests, d.errors,
       d.prompt_tokens, d.completion_tokens, d.cost,
       d.latency_sum, d.latency_count, d.ttft_sum, d.ttft_count,
       d.first_seen, d.last_seen
  FROM analytics.usage_daily d
UNION ALL
SELECT p.customer_identifier, p.day, p.model, p.requests, p.errors,
       p.prompt_tokens, p.completion_tokens, p.cost,
       p.latency_sum, p.latency_count, p.ttft_sum, p.ttft_count,
       p.first_seen, p.last_seen
  FROM analytics._pending_usage() p;

COMMENT ON VIEW analytics._usage_live IS
    'Internal: usage_daily plus the logs not folded in yet, same columns; a (customer, day, model) may appear in two rows, sum them.';
COMMENT ON COLUMN analytics._usage_live.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_live.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics._usage_live.model IS 'Model name as logged.';
COMMENT ON COLUMN analytics._usage_live.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_live.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_live.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_live.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_live.cost IS 'Sum of cost (USD, before markup).';
COMMENT ON COLUMN analytics._usage_live.latency_sum IS 'Sum of non-null latency.';
COMMENT ON COLUMN analytics._usage_live.latency_count IS 'Logs with a latency.';
COMMENT ON COLUMN analytics._usage_live.ttft_sum IS 'Sum of non-null time_to_first_token.';
COMMENT ON COLUMN analytics._usage_live.ttft_count IS 'Logs with a time_to_first_token.';
COMMENT ON COLUMN analytics._usage_live.first_seen IS 'Earliest created_at.';
COMMENT ON COLUMN analytics._usage_live.last_seen IS 'Latest created_at.';

-- Raise the house error for a bad argument of the functions below.  Declared
-- IMMUTABLE so that SQL functions calling it stay inlinable.
CREATE FUNCTION analytics._argument_error(argument text, got text, expected text)
RETURNS void LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
BEGIN
    RAISE EXCEPTION 'invalid value for argument "%"', argument
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('Got %s.', coalesce('"' || got || '"', 'null')),
              HINT = format('Use %s.', expected);
END;
$$;
COMMENT ON FUNCTION analytics._argument_error(text, text, text) IS
    'Internal: raises SQLSTATE 22023 naming a bad argument of a view function.';

-- {start, end} of the budget period containing as_of (C, views.c).
-- Marked expensive so that analytics.users computes it only for the rows
-- it returns after ORDER BY ... LIMIT.
CREATE FUNCTION analytics._period_bounds(anchor timestamptz, duration text,
                                         as_of timestamptz, zone text)
RETURNS timestamptz[]
AS 'MODULE_PATHNAME', 'views_period_bounds'
LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100;
COMMENT ON FUNCTION analytics._period_bounds(timestamptz, text, timestamptz, text) IS
    'Internal: {start, end} of the budget period containing as_of, in calendar arithmetic on local time in the given zone.';

-- The budget period [anchor + k*d, anchor + (k+1)*d) that contains as_of,
-- in calendar arithmetic on local time in the rollup time zone: an anchor
-- on Jan 31 gives Feb 28 (29), Mar 31, Apr 30...
CREATE FUNCTION analytics.current_period(anchor timestamptz, duration text,
                                         as_of timestamptz DEFAULT now())
RETURNS TABLE (period_start timestamptz, period_end timestamptz)
LANGUAGE sql STABLE AS $$
SELECT b.b[1], b.b[2]
  FROM (SELECT analytics._period_bounds(anchor, duration, as_of,
                                        (SELECT s.timezone FROM analytics.rollup_state s)) AS b
        OFFSET 0) b
$$;
COMMENT ON FUNCTION analytics.current_period(timestamptz, text, timestamptz) IS
    'The budget period [anchor + k*duration, anchor + (k+1)*duration) containing as_of, in calendar arithmetic in the rollup time zone.';

-- Billed cost of one customer's logs with created_at in [since, until), from
-- the raw logs by the (customer_identifier, created_at) index: the same sum
-- and markup as check_budget() (30_budget.sql).  Marked expensive so that
-- the planner computes it after ORDER BY ... LIMIT when a query over
-- analytics.users has one.
CREATE FUNCTION analytics._period_spend(customer text, since timestamptz,
                                        until timestamptz, markup numeric)
RETURNS numeric LANGUAGE sql STABLE COST 10000 AS $$
SELECT analytics._budget_billed(analytics._budget_period_raw(customer, since, until, false), markup)
$$;
COMMENT ON FUNCTION analytics._period_spend(text, timestamptz, timestamptz, numeric) IS
    'Internal: billed cost of a customer''s logs created in [since, until), from the raw logs.';

-- The pending logs per customer and day, with whether the pair is a new
-- active day (no usage_customer_day row yet).  SQL, so the planner inlines
-- it; the NOT EXISTS reads usage_customer_day in the caller's snapshot, the
-- one _pending_usage() reads the watermark in.
CREATE FUNCTION analytics._pending_customer_day()
RETURNS TABLE (customer_identifier text, day date, requests bigint, errors bigint,
               prompt_tokens bigint, completion_tokens bigint, cost numeric,
               new_day boolean)
LANGUAGE sql STABLE ROWS 1000 AS $$
SELECT p.customer_identifier, p.day, sum(p.requests)::bigint, sum(p.errors)::bigint,
       sum(p.prompt_tokens)::bigint, sum(p.completion_tokens)::bigint, sum(p.cost),
       NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day x
                    WHERE x.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
                      AND x.day OPERATOR(pg_catalog.=) p.day)
  FROM analytics._pending_usage() p
 GROUP BY p.customer_identifier, p.day
$$;
COMMENT ON FUNCTION analytics._pending_customer_day() IS
    'Internal: the logs above the rollup watermark per customer and day, and whether the customer had no rollup row for that day yet.';

-- usage_customer_day plus the logs not folded in yet, in its shape.  A
-- (customer, day) may appear twice: callers sum.
CREATE VIEW analytics._usage_customer_day_live AS
SELECT x.customer_identifier, x.day, x.requests, x.errors, x.prompt_tokens,
       x.completion_tokens, x.cost
  FROM analytics.usage_customer_day x
UNION ALL
SELECT p.customer_identifier, p.day, p.requests, p.errors, p.prompt_tokens,
       p.completion_tokens, p.cost
  FROM analytics._pending_customer_day() p;
COMMENT ON VIEW analytics._usage_customer_day_live IS
    'Internal: usage_customer_day plus the logs not folded in yet, same columns; a (customer, day) may appear in two rows, sum them.';
COMMENT ON COLUMN analytics._usage_customer_day_live.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_customer_day_live.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics._usage_customer_day_live.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_customer_day_live.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_customer_day_live.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_live.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_live.cost IS 'Sum of cost (USD, before markup).';

-- The model with the most requests in a group, ties to the first name in
-- sort order (C, views.c): one pass over the rollups for analytics.users.
CREATE FUNCTION analytics._top_model_step(internal, text, bigint) RETURNS internal
AS 'MODULE_PATHNAME', 'views_top_model_step' LANGUAGE C CALLED ON NULL INPUT;
COMMENT ON FUNCTION analytics._top_model_step(internal, text, bigint) IS
    'Internal: transition function of analytics._top_model.';
CREATE FUNCTION analytics._top_model_final(internal) RETURNS text
AS 'MODULE_PATHNAME', 'views_top_model_final' LANGUAGE C;
COMMENT ON FUNCTION analytics._top_model_final(internal) IS
    'Internal: final function of analytics._top_model.';
CREATE AGGREGATE analytics._top_model(text, bigint) (
    SFUNC = analytics._top_model_step,
    STYPE = internal,
    FINALFUNC = analytics._top_model_final
);
COMMENT ON AGGREGATE analytics._top_model(text, bigint) IS
    'Internal: the model with the most requests (summed per model), ties to the first name in sort order.';

-- A customer's top model: its usage_daily rows plus the pending
-- (model, requests) pairs the caller passes.  Marked expensive so that a
-- query over analytics.users with ORDER BY ... LIMIT computes it only for
-- the rows it returns.
CREATE FUNCTION analytics._customer_top_model(customer text, pending_models text[],
                                              pending_requests bigint[])
RETURNS text LANGUAGE sql STABLE COST 10000 AS $$
SELECT analytics._top_model(m.model, m.requests)
  FROM (SELECT d.model, d.requests FROM analytics.usage_daily d
         WHERE d.customer_identifier OPERATOR(pg_catalog.=) customer
        UNION ALL
        SELECT t.model, t.requests FROM unnest(pending_models, pending_requests) t(model, requests)) m
$$;
COMMENT ON FUNCTION analytics._customer_top_model(text, text[], bigint[]) IS
    'Internal: a customer''s model with the most requests, from usage_daily plus the given pending (model, requests) pairs.';

-- One row per customer: usage_customer (all the folded logs) plus the
-- pending logs aggregated per customer; a pending (customer, day) without a
-- usage_customer_day row is one more active day.
CREATE VIEW analytics.users AS
SELECT c.customer_identifier,
       c.name,
       c.email,
       c.metadata,
       c.created_at,
       LEAST(u.first_seen, p.first_seen) AS first_seen,
       GREATEST(u.last_seen, p.last_seen) AS last_active,
       coalesce(u.active_days, 0) + coalesce(p.new_days, 0) AS active_days,
       coalesce(u.requests, 0) + coalesce(p.requests, 0) AS requests,
       coalesce(u.errors, 0) + coalesce(p.errors, 0) AS errors,
       coalesce(u.prompt_tokens, 0) + coalesce(p.prompt_tokens, 0) AS prompt_tokens,
       coalesce(u.completion_tokens, 0) + coalesce(p.completion_tokens, 0) AS completion_tokens,
       coalesce(u.prompt_tokens + u.completion_tokens, 0)
           + coalesce(p.prompt_tokens + p.completion_tokens, 0) AS total_tokens,
       coalesce(u.cost, 0) + coalesce(p.cost, 0) AS cost,
       (coalesce(u.cost, 0) + coalesce(p.cost, 0)) * (1 + c.markup_percentage / 100) AS billed_cost,
       (coalesce(u.latency_sum, 0) + coalesce(p.latency_sum, 0))
           / nullif(coalesce(u.latency_count, 0) + coalesce(p.latency_count, 0), 0) AS avg_latency,
       (coalesce(u.ttft_sum, 0) + coalesce(p.ttft_sum, 0))
           / nullif(coalesce(u.ttft_count, 0) + coalesce(p.ttft_count, 0), 0) AS avg_ttft,
       analytics._customer_top_model(c.customer_identifier, p.models, p.model_requests) AS top_model,
       c.period_budget,
       c.budget_duration,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(),
                                 (SELECT s.timezone FROM analytics.rollup_state s)))[1] AS period_start,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(),
                                 (SELECT s.timezone FROM analytics.rollup_state s)))[2] AS period_end,
       analytics._period_spend(
           c.customer_identifier,
           (analytics._period_bounds(c.period_start, c.budget_duration, now(),
                                     (SELECT s.timezone FROM analytics.rollup_state s)))[1],
           (analytics._period_bounds(c.period_start, c.budget_duration, now(),
                                     (SELECT s.timezone FROM analytics.rollup_state s)))[2],
           c.markup_percentage) AS period_spend,
       c.total_budget,
       (coalesce(u.cost, 0) + coalesce(p.cost, 0)) * (1 + c.markup_percentage / 100) AS total_spend,
       c.blocked
  FROM analytics.customers c
  LEFT JOIN analytics.usage_customer u ON u.customer_identifier = c.customer_identifier
  LEFT JOIN (SELECT g.customer_identifier,
                    min(g.first_seen) AS first_seen,
                    max(g.last_seen) AS last_seen,
                    count(DISTINCT g.day) FILTER (WHERE g.new_day) AS new_days,
                    sum(g.requests)::bigint AS requests,
                    sum(g.errors)::bigint AS errors,
                    sum(g.prompt_tokens)::bigint AS prompt_tokens,
                    sum(g.completion_tokens)::bigint AS completion_tokens,
                    sum(g.cost) AS cost,
                    sum(g.latency_sum) AS latency_sum,
                    sum(g.latency_count)::bigint AS latency_count,
                    sum(g.ttft_sum) AS ttft_sum,
                    sum(g.ttft_count)::bigint AS ttft_count,
                    array_agg(g.model) AS models,
                    array_agg(g.requests) AS model_requests
               FROM (SELECT q.*,
                            NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day x
                                         WHERE x.customer_identifier OPERATOR(pg_catalog.=) q.customer_identifier
                                           AND x.day OPERATOR(pg_catalog.=) q.day) AS new_day
                       FROM analytics._pending_usage() q) g
              GROUP BY g.customer_identifier) p
         ON p.customer_identifier = c.customer_identifier;

COMMENT ON VIEW analytics.users IS
    'The Users page: one row per customer, including customers with no logs, with usage over all time (real time: rollups plus pending logs).';
COMMENT ON COLUMN analytics.users.customer_identifier IS 'The application''s id for the end user.';
COMMENT ON COLUMN analytics.users.name IS 'Display name.';
COMMENT ON COLUMN analytics.users.email IS 'Email address.';
COMMENT ON COLUMN analytics.users.metadata IS 'The customer''s free-form JSON.';
COMMENT ON COLUMN analytics.users.created_at IS 'When the customer row was created.';
COMMENT ON COLUMN analytics.users.first_seen IS 'created_at of the customer''s first log; null without logs.';
COMMENT ON COLUMN analytics.users.last_active IS 'created_at of the customer''s latest log; null without logs.';
COMMENT ON COLUMN analytics.users.active_days IS 'Calendar days (rollup time zone) with at least one log.';
COMMENT ON COLUMN analytics.users.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.users.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.users.prompt_tokens IS 'Sum of prompt tokens.';
COMMENT ON COLUMN analytics.users.completion_tokens IS 'Sum of completion tokens.';
COMMENT ON COLUMN analytics.users.total_tokens IS 'Sum of prompt and completion tokens.';
COMMENT ON COLUMN analytics.users.cost IS 'USD, sum of log cost before markup.';
COMMENT ON COLUMN analytics.users.billed_cost IS 'USD, cost * (1 + markup_percentage / 100) with the customer''s current markup.';
COMMENT ON COLUMN analytics.users.avg_latency IS 'Mean latency in seconds over logs that have one.';
COMMENT ON COLUMN analytics.users.avg_ttft IS 'Mean time to first token in seconds over logs that have one.';
COMMENT ON COLUMN analytics.users.top_model IS 'Model with the most requests; ties go to the first name in sort order.';
COMMENT ON COLUMN analytics.users.period_budget IS 'USD budget per period (billed cost); null means none.';
COMMENT ON COLUMN analytics.users.budget_duration IS 'Length of a budget period: daily, weekly, monthly or yearly.';
COMMENT ON COLUMN analytics.users.period_start IS 'Start of the current budget period (see analytics.current_period).';
COMMENT ON COLUMN analytics.users.period_end IS 'End (exclusive) of the current budget period.';
COMMENT ON COLUMN analytics.users.period_spend IS 'USD, billed cost of the logs created in the current budget period.';
COMMENT ON COLUMN analytics.users.total_budget IS 'Lifetime USD budget (billed cost); null means none.';
COMMENT ON COLUMN analytics.users.total_spend IS 'USD, billed cost over all time.';
COMMENT ON COLUMN analytics.users.blocked IS 'True when the customer''s new logs are rejected.';

-- Customers ranked by a metric over the days overlapping [since, until).
--
-- With n given, the threshold algorithm (exact): a customer's all-time
-- value (usage_customer, indexed in descending order) bounds its value over
-- any window, every metric being a sum of non-negative numbers.  Take the k
-- customers with the highest all-time values plus every customer with
-- pending logs in the window, compute their window values; if n of them are
-- active in the window, the n-th best value T is a lower bound of the n-th
-- best overall, so only customers whose all-time value is at least T (an
-- index range scan) and the pending ones can be in the first n rows or
-- rank above one of them.  Their window values, ranked, give the answer:
-- a row's rank counts the customers with a strictly higher value, all of
-- which are candidates; ties at the n-th value are all candidates too, so
-- the order by customer_identifier among them is the same.  Otherwise k
-- grows; when every customer was taken, or n is null, every customer
-- active in the window is computed: from its usage_customer_day rows in the
-- window, or, when fewer rows lie outside the window than inside, from its
-- all-time totals minus its rows outside (numeric and integer sums, so the
-- difference is exact).  The metric picks one of three fixed expressions
-- pasted into the query text (never a value: values are parameters).
CREATE FUNCTION analytics.top_users(since timestamptz, until timestamptz,
                                    metric text DEFAULT 'cost', n integer DEFAULT 10)
RETURNS TABLE (rank bigint, customer_identifier text, name text, email text,
               requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
DECLARE
    d0 date;
    d1 date;
    a_expr text;
    u_expr text;
    u_type text;
    pend text[];
    top text[];
    k integer;
    found_n bigint := 0;
    threshold numeric;
    rows_in numeric;
    rows_out numeric;
    n_customers numeric;
    has_pending boolean;
BEGIN
    IF metric IS NULL OR metric NOT IN ('cost', 'requests', 'tokens') THEN
        PERFORM analytics._argument_error('metric', metric, 'cost, requests or tokens');
    END IF;
    IF n < 0 THEN
        PERFORM analytics._argument_error('n', n::text, 'a number of rows, at least 0, or null for all');
    END IF;
    IF n = 0 THEN
        RETURN;
    END IF;
    -- One snapshot for every statement (STABLE): the rollups, the
    -- watermark and the zone read below all agree.
    SELECT (coalesce(since, '-infinity') AT TIME ZONE s.timezone)::date,
           ((coalesce(until, 'infinity') AT TIME ZONE s.timezone) - interval '1 microsecond')::date + 1
      INTO d0, d1
      FROM analytics.rollup_state s;
    a_expr := CASE metric WHEN 'cost' THEN 'a.cost' WHEN 'requests' THEN 'a.requests'
                          ELSE 'a.total_tokens' END;
    u_expr := CASE metric WHEN 'cost' THEN 'u.cost' WHEN 'requests' THEN 'u.requests'
                          ELSE '(u.prompt_tokens + u.completion_tokens)' END;
    u_type := CASE metric WHEN 'cost' THEN 'numeric' ELSE 'bigint' END;

    IF n IS NOT NULL THEN
        -- Any log above the watermark (max(id) reads one index entry).
        has_pending := coalesce((SELECT max(l.id) FROM analytics.logs l)
                                > (SELECT s.watermark FROM analytics.rollup_state s), false);
        -- The customers with pending logs in the window (and a customers
        -- row, like every customer of usage_customer: the ranking joins
        -- customers).
        pend := CASE WHEN has_pending
                     THEN ARRAY(SELECT DISTINCT p.customer_identifier
                                  FROM analytics._pending_customer_day() p
                                  JOIN analytics.customers c
                                    ON c.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
                                 WHERE p.day >= d0 AND p.day < d1)
                     ELSE '{}' END;
        k := n;
        LOOP
            EXECUTE format('SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
                           'ORDER BY %s DESC LIMIT $1)', u_expr)
               INTO top USING k;
            EXECUTE format('SELECT count(*), min(t.v) FROM (SELECT %s AS v '
                           'FROM analytics._usage_window($1, $2, $3, $5) a ORDER BY 1 DESC LIMIT $4) t',
                           a_expr)
               INTO found_n, threshold USING top || pend, d0, d1, n, has_pending;
            EXIT WHEN found_n >= n OR cardinality(top) < k OR k >= 1000000;
            k := k * 4;
        END LOOP;
    END IF;

    IF found_n >= n THEN
        EXECUTE format('SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
                       'WHERE %s >= $1::%s)', u_expr, u_type)
           INTO top USING threshold;
        -- Every candidate has a customers row (see pend above), so the
        -- join can come after the LIMIT.
        RETURN QUERY EXECUTE format(
            'SELECT r.rank, r.customer_identifier, c.name, c.email, '
            '       r.requests, r.total_tokens, r.cost '
            '  FROM (SELECT rank() OVER (ORDER BY %s DESC) AS rank, a.customer_identifier, '
            '               a.requests, a.total_tokens, a.cost '
            '          FROM analytics._usage_window($1, $2, $3, $5) a '
            '         ORDER BY 1, a.customer_identifier '
            '         LIMIT $4) r '
            '  JOIN analytics.customers c ON c.customer_identifier OPERATOR(pg_catalog.=) r.customer_identifier '
            ' ORDER BY r.rank, r.customer_identifier', a_expr)
        USING top || pend, d0, d1, n, has_pending;
        RETURN;
    END IF;

    -- Every customer active in the window: either its usage_customer_day
    -- rows of the window, or its all-time totals minus its rows outside
    -- the window, whichever reads fewer rows (usage_day.active_users counts
    -- the rows of each day).  Plus the pending logs of the window.
    SELECT coalesce(sum(d.active_users) FILTER (WHERE d.day >= d0 AND d.day < d1), 0),
           coalesce(sum(d.active_users) FILTER (WHERE d.day < d0 OR d.day >= d1), 0)
      INTO rows_in, rows_out
      FROM analytics.usage_day d;
    SELECT greatest(r.reltuples, 0) INTO n_customers
      FROM pg_catalog.pg_class r
     WHERE r.oid = 'analytics.usage_customer'::pg_catalog.regclass;
    IF rows_out + n_customers < rows_in THEN
        RETURN QUERY
        SELECT rank() OVER (ORDER BY CASE metric WHEN 'cost' THEN a.cost
                                                 WHEN 'requests' THEN a.requests
                                                 ELSE a.total_tokens END DESC),
               a.customer_identifier, c.name, c.email, a.requests, a.total_tokens, a.cost
          FROM (SELECT coalesce(u.customer_identifier, p.customer_identifier) AS customer_identifier,
                       coalesce(u.requests, 0) - coalesce(o.requests, 0)
                           + coalesce(p.requests, 0) AS requests,
                       coalesce(u.prompt_tokens + u.completion_tokens, 0) - coalesce(o.total_tokens, 0)
                           + coalesce(p.total_tokens, 0) AS total_tokens,
                       coalesce(u.cost, 0) - coalesce(o.cost, 0) + coalesce(p.cost, 0) AS cost
                  FROM analytics.usage_customer u
                  LEFT JOIN (SELECT x.customer_identifier,
                                    sum(x.requests)::bigint AS requests,
                                    sum(x.prompt_tokens + x.completion_tokens)::bigint AS total_tokens,
                                    sum(x.cost) AS cost
                               FROM analytics.usage_customer_day x
                              WHERE x.day < d0 OR x.day >= d1
                              GROUP BY x.customer_identifier) o
                         ON o.customer_identifier = u.customer_identifier
                  FULL JOIN (SELECT q.customer_identifier,
                                    sum(q.requests)::bigint AS requests,
                                    sum(q.prompt_tokens + q.completion_tokens)::bigint AS total_tokens,
                                    sum(q.cost) AS cost
                               FROM analytics._pending_customer_day() q
                              WHERE q.day >= d0 AND q.day < d1
                              GROUP BY q.customer_identifier) p
                         ON p.customer_identifier = u.customer_identifier) a
          JOIN analytics.customers c ON c.customer_identifier = a.customer_identifier
         WHERE a.requests > 0
         ORDER BY 1, a.customer_identifier
         LIMIT n;
        RETURN;
    END IF;

    RETURN QUERY
    SELECT rank() OVER (ORDER BY CASE metric WHEN 'cost' THEN a.cost
                                             WHEN 'requests' THEN a.requests
                                             ELSE a.total_tokens END DESC),
           a.customer_identifier, c.name, c.email, a.requests, a.total_tokens, a.cost
      FROM (SELECT u.customer_identifier,
                   sum(u.requests)::bigint AS requests,
                   sum(u.prompt_tokens + u.completion_tokens)::bigint AS total_tokens,
                   sum(u.cost) AS cost
              FROM analytics._usage_customer_day_live u
             WHERE u.day >= d0 AND u.day < d1
             GROUP BY u.customer_identifier) a
      JOIN analytics.customers c ON c.customer_identifier = a.customer_identifier
     ORDER BY 1, a.customer_identifier
     LIMIT n;
END;
$$;
COMMENT ON FUNCTION analytics.top_users(timestamptz, timestamptz, text, integer) IS
    'The n customers with the most cost, requests or tokens over the calendar days (rollup time zone) overlapping [since, until); null n means all.';


-- Window usage of the given customers: their usage_customer_day rows and,
-- when with_pending, their pending logs of the days in [d0, d1), one row
-- per customer with any.  By the primary key of usage_customer_day (one
-- descent per customer).  A false with_pending (a constant when the caller
-- passes it to EXECUTE) skips reading the pending logs.
CREATE FUNCTION analytics._usage_window(customers text[], d0 date, d1 date,
                                        with_pending boolean)
RETURNS TABLE (customer_identifier text, requests bigint, total_tokens bigint, cost numeric)
LANGUAGE sql STABLE AS $$
SELECT w.customer_identifier, sum(w.requests)::bigint, sum(w.total_tokens)::bigint, sum(w.cost)
  FROM (SELECT x.customer_identifier, x.requests,
               x.prompt_tokens + x.completion_tokens AS total_tokens, x.cost
          FROM analytics.usage_customer_day x
         WHERE x.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
           AND x.day >= d0 AND x.day < d1
        UNION ALL
        SELECT p.customer_identifier, p.requests,
               p.prompt_tokens + p.completion_tokens, p.cost
          FROM analytics._pending_customer_day() p
         WHERE with_pending
           AND p.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
           AND p.day >= d0 AND p.day < d1) w
 GROUP BY w.customer_identifier
$$;
COMMENT ON FUNCTION analytics._usage_window(text[], date, date, boolean) IS
    'Internal: requests, tokens and cost of the given customers over the days in [d0, d1), rollups plus (with_pending) the pending logs.';

CREATE VIEW analytics.top_users AS
SELECT t.rank, t.customer_identifier, t.name, t.email, t.requests, t.total_tokens, t.cost
  FROM analytics.top_users(
           (SELECT ((now() AT TIME ZONE s.timezone)::date - 29)::timestamp AT TIME ZONE s.timezone
              FROM analytics.rollup_state s),
           now(), 'cost', 10) t;
COMMENT ON VIEW analytics.top_users IS
    'The 10 customers with the highest cost in the last 30 calendar days (today and the 29 before, rollup time zone), in (rank, customer_identifier) order; analytics.top_users(since, until, metric, n) gives other windows, metrics and counts.';
COMMENT ON COLUMN analytics.top_users.rank IS 'Rank by cost, 1 for the highest; equal costs share a rank.';
COMMENT ON COLUMN analytics.top_users.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.top_users.name IS 'Display name.';
COMMENT ON COLUMN analytics.top_users.email IS 'Email address.';
COMMENT ON COLUMN analytics.top_users.requests IS 'Number of logs in the 30 days.';
COMMENT ON COLUMN analytics.top_users.total_tokens IS 'Prompt plus completion tokens in the 30 days.';
COMMENT ON COLUMN analytics.top_users.cost IS 'USD before markup in the 30 days.';

-- usage_day plus the pending logs per day; a pending (customer, day)
-- without a usage_customer_day row is one more active user that day.
CREATE VIEW analytics.daily_active_users AS
SELECT coalesce(d.day, p.day) AS day,
       coalesce(d.active_users, 0) + coalesce(p.new_users, 0) AS active_users,
       coalesce(d.requests, 0) + coalesce(p.requests, 0) AS requests,
       coalesce(d.cost, 0) + coalesce(p.cost, 0) AS cost
  FROM analytics.usage_day d
  FULL JOIN (SELECT x.day,
                    count(*) FILTER (WHERE x.new_day) AS new_users,
                    sum(x.requests)::bigint AS requests,
                    sum(x.cost) AS cost
               FROM analytics._pending_customer_day() x
              GROUP BY x.day) p
         ON p.day = d.day;
COMMENT ON VIEW analytics.daily_active_users IS
    'Per calendar day (rollup time zone) with any log: distinct customers, requests and cost. Filter on day.';
COMMENT ON COLUMN analytics.daily_active_users.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics.daily_active_users.active_users IS 'Distinct customers with at least one log that day.';
COMMENT ON COLUMN analytics.daily_active_users.requests IS 'Number of logs of customers that day.';
COMMENT ON COLUMN analytics.daily_active_users.cost IS 'USD before markup that day.';

-- Distinct customers per day, week (ISO, from Monday) or month: days from
-- daily_active_users, weeks and months counted distinct over
-- usage_customer_day and the pending logs.
CREATE FUNCTION analytics.active_users(since timestamptz, until timestamptz,
                                       bucket text DEFAULT 'day')
RETURNS TABLE (bucket_start date, active_users bigint, requests bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
DECLARE
    d0 date;
    d1 date;
BEGIN
    IF bucket IS NULL OR bucket NOT IN ('day', 'week', 'month') THEN
        PERFORM analytics._argument_error('bucket', bucket, 'day, week or month');
    END IF;
    -- One snapshot for every statement (STABLE).
    SELECT (coalesce(since, '-infinity') AT TIME ZONE s.timezone)::date,
           ((coalesce(until, 'infinity') AT TIME ZONE s.timezone) - interval '1 microsecond')::date + 1
      INTO d0, d1
      FROM analytics.rollup_state s;
    IF bucket = 'day' THEN
        RETURN QUERY
        SELECT a.day, a.active_users, a.requests, a.cost
          FROM analytics.daily_active_users a
         WHERE a.day >= d0 AND a.day < d1
         ORDER BY 1;
        RETURN;
    END IF;
    -- Distinct (bucket, customer) pairs first (a hash aggregate), then
    -- counted per bucket.
    RETURN QUERY
    SELECT g.b, count(*), sum(g.requests)::bigint, sum(g.cost)
      FROM (SELECT date_trunc(bucket, u.day::timestamp)::date AS b,
                   u.customer_identifier,
                   sum(u.requests) AS requests,
                   sum(u.cost) AS cost
              FROM analytics._usage_customer_day_live u
             WHERE u.day >= d0 AND u.day < d1
             GROUP BY 1, 2) g
     GROUP BY 1
     ORDER BY 1;
END;
$$;
COMMENT ON FUNCTION analytics.active_users(timestamptz, timestamptz, text) IS
    'Distinct customers, requests and cost per day, week (from Monday) or month, over the calendar days (rollup time zone) overlapping [since, until); buckets without logs are left out.';

-- usage_customer_day rows without pending logs, and the pending (customer,
-- day) pairs with their folded part added: one row per customer and day
-- either way.  Quals on day and customer_identifier reach both arms.
CREATE VIEW analytics.cost_by_user AS
SELECT x.day, x.customer_identifier, x.requests, x.prompt_tokens, x.completion_tokens, x.cost
  FROM analytics.usage_customer_day x
 WHERE NOT EXISTS (SELECT 1 FROM analytics._pending_customer_day() p
                    WHERE p.customer_identifier = x.customer_identifier AND p.day = x.day)
UNION ALL
SELECT p.day, p.customer_identifier,
       p.requests + coalesce(x.requests, 0),
       p.prompt_tokens + coalesce(x.prompt_tokens, 0),
       p.completion_tokens + coalesce(x.completion_tokens, 0),
       p.cost + coalesce(x.cost, 0)
  FROM analytics._pending_customer_day() p
  LEFT JOIN analytics.usage_customer_day x
         ON x.customer_identifier = p.customer_identifier AND x.day = p.day;
COMMENT ON VIEW analytics.cost_by_user IS
    'LLM usage per calendar day (rollup time zone) and customer. Filter on day and customer_identifier.';
COMMENT ON COLUMN analytics.cost_by_user.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics.cost_by_user.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.cost_by_user.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.cost_by_user.prompt_tokens IS 'Sum of prompt tokens.';
COMMENT ON COLUMN analytics.cost_by_user.completion_tokens IS 'Sum of completion tokens.';
COMMENT ON COLUMN analytics.cost_by_user.cost IS 'USD before markup.';

CREATE VIEW analytics.logs_with_customer AS
SELECT l.id, l.created_at, l.customer_identifier, l.model,
       l.prompt_tokens, l.completion_tokens, l.total_tokens, l.cost,
       l.latency, l.time_to_first_token, l.status_code, l.error_message,
       l.thread_identifier, l.custom_identifier, l.metadata,
       l.prompt_messages, l.completion_message,
       c.name, c.email, c.metadata AS customer_metadata
  FROM analytics.logs l
  LEFT JOIN analytics.customers c ON c.customer_identifier = l.customer_identifier;
COMMENT ON VIEW analytics.logs_with_customer IS
    'Each log with its customer''s name, email and metadata (the log detail side panel).';
COMMENT ON COLUMN analytics.logs_with_customer.id IS 'Log id.';
COMMENT ON COLUMN analytics.logs_with_customer.created_at IS 'When the request finished.';
COMMENT ON COLUMN analytics.logs_with_customer.customer_identifier IS 'The end user; null for requests of no end user.';
COMMENT ON COLUMN analytics.logs_with_customer.model IS 'Model name.';
COMMENT ON COLUMN analytics.logs_with_customer.prompt_tokens IS 'Prompt (input) tokens.';
COMMENT ON COLUMN analytics.logs_with_customer.completion_tokens IS 'Completion (output) tokens.';
COMMENT ON COLUMN analytics.logs_with_customer.total_tokens IS 'prompt_tokens + completion_tokens.';
COMMENT ON COLUMN analytics.logs_with_customer.cost IS 'USD before markup.';
COMMENT ON COLUMN analytics.logs_with_customer.latency IS 'Seconds from request to last token.';
COMMENT ON COLUMN analytics.logs_with_customer.time_to_first_token IS 'Seconds from request to first token.';
COMMENT ON COLUMN analytics.logs_with_customer.status_code IS 'HTTP-style status; 400 and above is an error.';
COMMENT ON COLUMN analytics.logs_with_customer.error_message IS 'Provider error message, if any.';
COMMENT ON COLUMN analytics.logs_with_customer.thread_identifier IS 'Conversation thread id.';
COMMENT ON COLUMN analytics.logs_with_customer.custom_identifier IS 'Application-defined id.';
COMMENT ON COLUMN analytics.logs_with_customer.metadata IS 'The log''s free-form JSON.';
COMMENT ON COLUMN analytics.logs_with_customer.prompt_messages IS 'Request messages.';
COMMENT ON COLUMN analytics.logs_with_customer.completion_message IS 'Response message.';
COMMENT ON COLUMN analytics.logs_with_customer.name IS 'The customer''s display name.';
COMMENT ON COLUMN analytics.logs_with_customer.email IS 'The customer''s email address.';
COMMENT ON COLUMN analytics.logs_with_customer.customer_metadata IS 'The customer''s free-form JSON.';

-- One customer's logs, newest first, by the (customer_identifier,
-- created_at) index.  SQL so that the planner inlines it.
CREATE FUNCTION analytics.customer_logs(customer_identifier text,
                                        since timestamptz DEFAULT NULL,
                                        until timestamptz DEFAULT NULL,
                                        lim integer DEFAULT 100)
RETURNS SETOF analytics.logs
LANGUAGE sql STABLE ROWS 100 AS $$
SELECT l.*
  FROM analytics.logs l
 WHERE l.customer_identifier OPERATOR(pg_catalog.=) $1
   AND l.created_at >= coalesce($2, '-infinity')
   AND l.created_at < coalesce($3, 'infinity')
 ORDER BY l.created_at DESC, l.id DESC
 LIMIT $4
$$;
COMMENT ON FUNCTION analytics.customer_logs(text, timestamptz, timestamptz, integer) IS
    'A customer''s logs created in [since, until) (null: unbounded), newest first, at most lim (null: all).';
-- Piece 60: JSON ingest (src/ingest.c, json-c).  Each function records logs
-- through a plain INSERT into analytics.logs, so the BEFORE INSERT trigger
-- validates, prices, creates customers and enforces budgets as for any
-- other insert.  The text overloads are the ones an untyped literal
-- resolves to.

CREATE FUNCTION analytics.ingest(payload text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_text' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest(text) IS
    'Records one log from a logging payload (a JSON object: model, customer_identifier or customer_params, tokens or usage, cost, latency, ...) and returns its id.';

CREATE FUNCTION analytics.ingest(payload json) RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_json' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest(json) IS
    'Records one log from a logging payload given as json; see analytics.ingest(text).';

CREATE FUNCTION analytics.ingest(payload jsonb) RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_jsonb' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest(jsonb) IS
    'Records one log from a logging payload given as jsonb; see analytics.ingest(text).';

CREATE FUNCTION analytics.ingest_openai(request text, response text,
                                        latency double precision DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_openai_text' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_openai(text, text, double precision) IS
    'Records one log from an OpenAI chat-completions request body (with customer_params) and its response (a chat.completion or an error object); returns its id.';

CREATE FUNCTION analytics.ingest_openai(request json, response json,
                                        latency double precision DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_openai_json' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_openai(json, json, double precision) IS
    'Records one log from an OpenAI request and response given as json; see analytics.ingest_openai(text, text, double precision).';

CREATE FUNCTION analytics.ingest_openai(request jsonb, response jsonb,
                                        latency double precision DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_openai_jsonb' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_openai(jsonb, jsonb, double precision) IS
    'Records one log from an OpenAI request and response given as jsonb; see analytics.ingest_openai(text, text, double precision).';

CREATE FUNCTION analytics.ingest_batch(payloads text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_batch' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_batch(text) IS
    'Records many logs from newline-delimited JSON or a JSON array of ingest payloads; returns how many. One bad payload fails the call, names its position and records nothing.';

-- Internal: the rows of ingest_batch(), one per call; an error outside of it.
CREATE FUNCTION analytics._ingest_batch_rows(payloads text) RETURNS SETOF analytics.logs
    AS 'MODULE_PATHNAME', 'ingest_batch_rows' LANGUAGE C VOLATILE STRICT SECURITY INVOKER;
COMMENT ON FUNCTION analytics._ingest_batch_rows(text) IS
    'Internal: the rows analytics.ingest_batch() inserts; callable only by it.';
-- Piece 90: make pg_dump/pg_restore round trips work.
--
-- CREATE EXTENSION seeds model_prices and the rollup_state row, and a dump
-- holds those tables' rows as they were when dumped.  So that restoring the
-- dump neither fails on the seeded keys nor keeps stale seeded values, an
-- INSERT of a key that exists replaces that row.

CREATE FUNCTION analytics.replace_on_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
BEGIN
    IF TG_TABLE_NAME = 'model_prices' THEN
        UPDATE analytics.model_prices
           SET prompt_per_million = NEW.prompt_per_million,
               completion_per_million = NEW.completion_per_million
         WHERE model OPERATOR(pg_catalog.=) NEW.model;
    ELSIF TG_TABLE_NAME = 'rollup_state' THEN
        UPDATE analytics.rollup_state
           SET (watermark, last_pass, last_pass_folded, timezone, retained_from)
             = (NEW.watermark, NEW.last_pass, NEW.last_pass_folded, NEW.timezone, NEW.retained_from)
         WHERE singleton;
    ELSE
        RAISE EXCEPTION 'replace_on_insert is not meant for table %', TG_TABLE_NAME;
    END IF;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION analytics.replace_on_insert() IS
    'Trigger: an INSERT of an existing model price or of the rollup state replaces the row (so dumps restore).';

CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.model_prices
    FOR EACH ROW EXECUTE FUNCTION analytics.replace_on_insert();
CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.rollup_state
    FOR EACH ROW EXECUTE FUNCTION analytics.replace_on_insert();
