-- Piece 10: customers, one row per end user, and upsert_customer().

CREATE TABLE analytics.customers (
    customer_identifier text PRIMARY KEY
        CONSTRAINT customer_identifier_length
        CHECK (length(customer_identifier) BETWEEN 1 AND 255),
    name text CONSTRAINT name_length CHECK (length(name) <= 1000),
    email text CONSTRAINT email_length CHECK (length(email) <= 1000),
    metadata jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT metadata_is_object CHECK (jsonb_typeof(metadata) = 'object')
        CONSTRAINT metadata_size CHECK (octet_length(metadata::text) <= 1048576),
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
    updated_at timestamptz NOT NULL DEFAULT now(),
    rate_limit integer CONSTRAINT rate_limit_positive CHECK (rate_limit > 0),
    token_rate_limit integer CONSTRAINT token_rate_limit_positive CHECK (token_rate_limit > 0),
    alert_thresholds numeric[] NOT NULL DEFAULT '{80,100}'
        CONSTRAINT alert_thresholds_range
        CHECK (coalesce(array_ndims(alert_thresholds), 1) = 1
               AND cardinality(alert_thresholds) <= 16
               AND (0 < ALL (alert_thresholds)) IS TRUE
               AND (1000 >= ALL (alert_thresholds)) IS TRUE)
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
COMMENT ON COLUMN analytics.customers.rate_limit IS 'Requests per minute: at most this many admissions (analytics.admit) in any 60 seconds, else UA004; null means no limit.';
COMMENT ON COLUMN analytics.customers.token_rate_limit IS 'Tokens per minute: at most this many estimated tokens of admissions (analytics.admit) in any 60 seconds, else UA004; null means no limit.';
COMMENT ON COLUMN analytics.customers.alert_thresholds IS 'Percentages of period_budget and total_budget at which a budget event is recorded (analytics.budget_events) and NOTIFY analytics_budget sent, once per period (total: once) and budget setting; empty means no alerts.';

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

-- Sessions cache the customers they have seen (src/customers.c): removing
-- customers waits for their log writers and makes every session forget them.
CREATE FUNCTION analytics.customers_removing() RETURNS trigger
    AS 'MODULE_PATHNAME', 'customers_removing' LANGUAGE C;
COMMENT ON FUNCTION analytics.customers_removing() IS
    'Trigger: before customers are deleted, waits for log writers and invalidates the sessions'' customer caches.';
CREATE TRIGGER customers_removing BEFORE DELETE OR TRUNCATE ON analytics.customers
    FOR EACH STATEMENT EXECUTE FUNCTION analytics.customers_removing();

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

-- Read a JSON string of at most 1000 characters, or NULL for JSON null.
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
    IF length(v #>> '{}') > 1000 THEN
        PERFORM analytics._param_error(key, 'a string of at most 1000 characters', v);
    END IF;
    RETURN v #>> '{}';
END;
$$;
COMMENT ON FUNCTION analytics._param_text(jsonb, text) IS 'Internal: a string customer_params value.';

-- Read a positive JSON integer (a per-minute limit), or NULL for JSON null.
CREATE FUNCTION analytics._param_limit(params jsonb, key text)
RETURNS integer LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    v jsonb := params -> key;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'number'
       OR (v #>> '{}')::numeric OPERATOR(pg_catalog.<>) trunc((v #>> '{}')::numeric)
       OR (v #>> '{}')::numeric NOT BETWEEN 1 AND 2147483647 THEN
        PERFORM analytics._param_error(key, 'an integer from 1 to 2147483647, or null', v);
    END IF;
    RETURN (v #>> '{}')::integer;
END;
$$;
COMMENT ON FUNCTION analytics._param_limit(jsonb, text) IS 'Internal: a per-minute limit of customer_params.';

-- Read alert_thresholds: a JSON array of at most 16 percentages in
-- (0, 1000]; JSON null clears them (no alerts).
CREATE FUNCTION analytics._param_thresholds(params jsonb)
RETURNS numeric[] LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    v jsonb := params -> 'alert_thresholds';
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(v) IS DISTINCT FROM 'array' OR jsonb_array_length(v) > 16
       OR EXISTS (SELECT FROM jsonb_array_elements(v) e
                   WHERE jsonb_typeof(e) IS DISTINCT FROM 'number'
                      OR (e #>> '{}')::numeric NOT BETWEEN 0 AND 1000
                      OR (e #>> '{}')::numeric OPERATOR(pg_catalog.=) 0) THEN
        PERFORM analytics._param_error('alert_thresholds',
            'an array of at most 16 percentages above 0 and at most 1000, or null', v);
    END IF;
    RETURN ARRAY(SELECT (e #>> '{}')::numeric FROM jsonb_array_elements(v) e);
END;
$$;
COMMENT ON FUNCTION analytics._param_thresholds(jsonb) IS 'Internal: the alert_thresholds of customer_params.';

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
    v_rate_limit integer;
    v_token_rate_limit integer;
    v_thresholds numeric[];
    result analytics.customers;
    stored analytics.customers;
    k text;
    differs boolean;
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
        ELSIF octet_length(v_metadata::text) > 1048576 THEN
            PERFORM analytics._param_error('metadata', 'a JSON object of at most 1 MB', v_metadata);
        END IF;
    END IF;
    v_period_budget := analytics._param_amount(params, 'period_budget');
    v_total_budget := analytics._param_amount(params, 'total_budget');
    v_markup := coalesce(analytics._param_amount(params, 'markup_percentage'), 0);
    v_rate_limit := analytics._param_limit(params, 'rate_limit');
    v_token_rate_limit := analytics._param_limit(params, 'token_rate_limit');
    v_thresholds := coalesce(analytics._param_thresholds(params), '{80,100}');
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

    -- Budget keys are applied only for members of analytics_admin (SPEC
    -- section 13).  From anyone else a key equal to the stored value (or to
    -- the column default, for a new customer) passes silently, and a
    -- different one is ignored with a WARNING; the rest is applied with an
    -- INSERT and UPDATE of only the columns analytics_writer holds
    -- privileges on, so the grants, not this function, enforce the rule.
    IF NOT pg_catalog.pg_has_role('analytics_admin', 'USAGE') THEN
        SELECT * INTO stored FROM analytics.customers x
         WHERE x.customer_identifier OPERATOR(pg_catalog.=) ident;
        IF NOT FOUND THEN
            stored.budget_duration := 'monthly';
            stored.period_start := now();
            stored.markup_percentage := 0;
            stored.alert_thresholds := '{80,100}';
        END IF;
        FOR k, differs IN
            SELECT v.k, v.differs FROM (VALUES
                (1, 'period_budget', v_period_budget IS DISTINCT FROM stored.period_budget),
                (2, 'budget_duration', v_duration IS DISTINCT FROM stored.budget_duration),
                (3, 'period_start', v_period_start IS DISTINCT FROM stored.period_start),
                (4, 'total_budget', v_total_budget IS DISTINCT FROM stored.total_budget),
                (5, 'markup_percentage', v_markup IS DISTINCT FROM stored.markup_percentage),
                (6, 'rate_limit', v_rate_limit IS DISTINCT FROM stored.rate_limit),
                (7, 'token_rate_limit', v_token_rate_limit IS DISTINCT FROM stored.token_rate_limit),
                (8, 'alert_thresholds', v_thresholds IS DISTINCT FROM stored.alert_thresholds)) v (n, k, differs)
             ORDER BY v.n
        LOOP
            IF params ? k AND differs THEN
                RAISE WARNING 'customer_params key "%" ignored for customer "%"', k, ident
                    USING DETAIL = 'Only members of analytics_admin may change budget settings. The stored value is kept.',
                          HINT = 'Set budgets as a member of analytics_admin, with upsert_customer() or UPDATE analytics.customers.';
            END IF;
        END LOOP;

        INSERT INTO analytics.customers AS c (customer_identifier, name, email, metadata)
        VALUES (ident, v_name, v_email, coalesce(v_metadata, '{}'))
        ON CONFLICT (customer_identifier) DO UPDATE SET
            name = CASE WHEN params ? 'name' THEN EXCLUDED.name ELSE c.name END,
            email = CASE WHEN params ? 'email' THEN EXCLUDED.email ELSE c.email END,
            metadata = CASE WHEN params ? 'metadata' THEN EXCLUDED.metadata ELSE c.metadata END
        WHERE (params ? 'name' AND c.name IS DISTINCT FROM EXCLUDED.name)
           OR (params ? 'email' AND c.email IS DISTINCT FROM EXCLUDED.email)
           OR (params ? 'metadata' AND c.metadata IS DISTINCT FROM EXCLUDED.metadata)
        RETURNING * INTO result;
        IF NOT FOUND THEN
            SELECT * INTO result FROM analytics.customers
             WHERE customer_identifier OPERATOR(pg_catalog.=) ident;
        END IF;
        RETURN result;
    END IF;

    INSERT INTO analytics.customers AS c
        (customer_identifier, name, email, metadata, period_budget, budget_duration,
         period_start, total_budget, markup_percentage, rate_limit, token_rate_limit,
         alert_thresholds)
    VALUES (ident, v_name, v_email, coalesce(v_metadata, '{}'), v_period_budget, v_duration,
            v_period_start, v_total_budget, v_markup, v_rate_limit, v_token_rate_limit,
            v_thresholds)
    ON CONFLICT (customer_identifier) DO UPDATE SET
        name = CASE WHEN params ? 'name' THEN EXCLUDED.name ELSE c.name END,
        email = CASE WHEN params ? 'email' THEN EXCLUDED.email ELSE c.email END,
        metadata = CASE WHEN params ? 'metadata' THEN EXCLUDED.metadata ELSE c.metadata END,
        period_budget = CASE WHEN params ? 'period_budget' THEN EXCLUDED.period_budget ELSE c.period_budget END,
        budget_duration = CASE WHEN params ? 'budget_duration' THEN EXCLUDED.budget_duration ELSE c.budget_duration END,
        period_start = CASE WHEN params ? 'period_start' THEN EXCLUDED.period_start ELSE c.period_start END,
        total_budget = CASE WHEN params ? 'total_budget' THEN EXCLUDED.total_budget ELSE c.total_budget END,
        markup_percentage = CASE WHEN params ? 'markup_percentage' THEN EXCLUDED.markup_percentage ELSE c.markup_percentage END,
        rate_limit = CASE WHEN params ? 'rate_limit' THEN EXCLUDED.rate_limit ELSE c.rate_limit END,
        token_rate_limit = CASE WHEN params ? 'token_rate_limit' THEN EXCLUDED.token_rate_limit ELSE c.token_rate_limit END,
        alert_thresholds = CASE WHEN params ? 'alert_thresholds' THEN EXCLUDED.alert_thresholds ELSE c.alert_thresholds END
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
       OR (params ? 'rate_limit' AND c.rate_limit IS DISTINCT FROM EXCLUDED.rate_limit)
       OR (params ? 'token_rate_limit' AND c.token_rate_limit IS DISTINCT FROM EXCLUDED.token_rate_limit)
       OR (params ? 'alert_thresholds' AND c.alert_thresholds IS DISTINCT FROM EXCLUDED.alert_thresholds)
    RETURNING * INTO result;
    IF NOT FOUND THEN
        SELECT * INTO result FROM analytics.customers
         WHERE customer_identifier OPERATOR(pg_catalog.=) ident;
    END IF;
    RETURN result;
END;
$$;
COMMENT ON FUNCTION analytics.upsert_customer(jsonb) IS
    'Creates or updates a customer from a customer_params object; absent keys keep their value, JSON null clears it. Budget and limit keys (budgets, duration, period_start, markup, rate_limit, token_rate_limit, alert_thresholds) apply only for members of analytics_admin; from others a changed one is ignored with a WARNING.';
