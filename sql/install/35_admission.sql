-- Piece 35: admissions (SPEC section 10) and budget events (section 11).
-- analytics.admit() (src/admission.c) records an admission, which holds its
-- estimated cost against the customer's budgets until the log carrying its
-- id settles it or it expires; a customer's budget alerts are rows of
-- budget_events, added by the insert trigger in the transaction of the log
-- that crossed the threshold.

CREATE SEQUENCE analytics.admission_ids AS bigint;
COMMENT ON SEQUENCE analytics.admission_ids IS 'Ids of analytics.admissions.';

CREATE TABLE analytics.admissions (
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    id bigint NOT NULL DEFAULT nextval('analytics.admission_ids'),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    estimated_cost numeric NOT NULL
        CONSTRAINT estimated_cost_range
        CHECK (estimated_cost >= 0 AND estimated_cost <= 1000000),
    estimated_tokens integer NOT NULL
        CONSTRAINT estimated_tokens_non_negative CHECK (estimated_tokens >= 0),
    settled_by bigint,
    settled_at timestamptz,
    PRIMARY KEY (customer_identifier, id)
);
-- The last minute of a customer's admissions (rate limits); its open ones
-- (the estimates held); its settled ones (forgotten after a minute).
CREATE INDEX admissions_customer_created_at ON analytics.admissions (customer_identifier, created_at);
CREATE INDEX admissions_open ON analytics.admissions (customer_identifier, created_at)
    WHERE settled_by IS NULL;
CREATE INDEX admissions_settled ON analytics.admissions (customer_identifier, created_at)
    WHERE settled_by IS NOT NULL;
COMMENT ON TABLE analytics.admissions IS
    'Admissions of analytics.admit(): each holds its estimated cost against the customer''s budgets until a log settles it (logs.admission_id) or it expires; the last minute of them is what rate_limit and token_rate_limit count.';
COMMENT ON COLUMN analytics.admissions.customer_identifier IS 'The customer admitted.';
COMMENT ON COLUMN analytics.admissions.id IS 'The admission id admit() returned; a log carries it in admission_id.';
COMMENT ON COLUMN analytics.admissions.created_at IS 'When admit() granted it (clock time).';
COMMENT ON COLUMN analytics.admissions.expires_at IS 'created_at + analytics.admission_timeout: after it the estimate is no longer held, and a log naming it is checked like one without.';
COMMENT ON COLUMN analytics.admissions.estimated_cost IS 'USD (before markup) held against the budgets while open.';
COMMENT ON COLUMN analytics.admissions.estimated_tokens IS 'Tokens counted against token_rate_limit.';
COMMENT ON COLUMN analytics.admissions.settled_by IS 'Id of the log that settled it; null while open.';
COMMENT ON COLUMN analytics.admissions.settled_at IS 'When the log that settled it was recorded.';
SELECT pg_catalog.pg_extension_config_dump('analytics.admissions', '');
SELECT pg_catalog.pg_extension_config_dump('analytics.admission_ids', '');

CREATE SEQUENCE analytics.budget_event_ids AS bigint;
COMMENT ON SEQUENCE analytics.budget_event_ids IS 'Ids of analytics.budget_events.';

CREATE TABLE analytics.budget_events (
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    id bigint NOT NULL DEFAULT nextval('analytics.budget_event_ids'),
    created_at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL
        CONSTRAINT kind_known CHECK (kind IN ('period_threshold', 'total_threshold', 'blocked')),
    threshold numeric,
    spend numeric,
    budget numeric,
    period_start timestamptz,
    period_end timestamptz,
    notified boolean NOT NULL DEFAULT false,
    PRIMARY KEY (customer_identifier, id)
);
CREATE INDEX budget_events_created_at ON analytics.budget_events (created_at);
-- The events a cluster's coordinator has still to send (src/alerts.c).
CREATE INDEX budget_events_unsent ON analytics.budget_events (id) WHERE NOT notified;
COMMENT ON TABLE analytics.budget_events IS
    'Budget alerts: a row when a customer''s billed spend first reaches one of its alert_thresholds in a period (or over its lifetime), and when it becomes blocked; each is also sent as JSON by NOTIFY analytics_budget when its transaction commits.';
COMMENT ON COLUMN analytics.budget_events.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.budget_events.id IS 'Identity of the event.';
COMMENT ON COLUMN analytics.budget_events.created_at IS 'When the transaction that recorded it started (the log that crossed the threshold, or the change that blocked the customer).';
COMMENT ON COLUMN analytics.budget_events.kind IS 'period_threshold (period_budget), total_threshold (total_budget) or blocked.';
COMMENT ON COLUMN analytics.budget_events.threshold IS 'The percentage of the budget reached; null for blocked.';
COMMENT ON COLUMN analytics.budget_events.spend IS 'Billed spend (USD) of the period, or of all time, with the log that reached the threshold; null for blocked.';
COMMENT ON COLUMN analytics.budget_events.budget IS 'The budget (USD) in force: period_budget or total_budget; null for blocked.';
COMMENT ON COLUMN analytics.budget_events.period_start IS 'Start of the budget period; null for total_threshold and blocked.';
COMMENT ON COLUMN analytics.budget_events.period_end IS 'End of the budget period (exclusive); null for total_threshold and blocked.';
SELECT pg_catalog.pg_extension_config_dump('analytics.budget_events', '');
COMMENT ON COLUMN analytics.budget_events.notified IS 'Whether its NOTIFY analytics_budget has been queued: at once on a single node (sent when the transaction commits); on a Citus cluster false until the coordinator''s rollup worker sends it, one pass after the commit.';
SELECT pg_catalog.pg_extension_config_dump('analytics.budget_event_ids', '');

-- The estimates held against [p_start, p_end) by a customer's admissions
-- open at `at`: those a log of the period may settle (made before its end,
-- expiring after its start), their sum (USD before markup), when the first
-- of them expires, and how many there are.  The insert trigger and admit()
-- recompute a budget counter's reserved amount with it (src/budget.c);
-- check_budget() reports it.
CREATE FUNCTION analytics._admissions_held(ident text, p_start timestamptz,
    p_end timestamptz, at timestamptz,
    OUT held numeric, OUT held_until timestamptz, OUT open_admissions bigint)
RETURNS record LANGUAGE sql STABLE SET search_path = pg_catalog, analytics AS $$
    SELECT coalesce(sum(a.estimated_cost), 0), min(a.expires_at), count(*)
      FROM analytics.admissions a
     WHERE a.customer_identifier OPERATOR(pg_catalog.=) ident
       AND a.settled_by IS NULL
       AND a.created_at OPERATOR(pg_catalog.<) p_end
       AND a.expires_at OPERATOR(pg_catalog.>) p_start
       AND a.expires_at OPERATOR(pg_catalog.>) at
$$;
COMMENT ON FUNCTION analytics._admissions_held(text, timestamptz, timestamptz, timestamptz) IS
    'Internal: sum of estimated_cost, earliest expiry and number of the customer''s admissions open at at that a log of [p_start, p_end) may settle.';

-- The rate state of a customer at `at`: its admissions of the 60 seconds
-- before (at - 60 s, at] and their estimated tokens, and, when one more
-- admission of estimated_tokens would go past rate_limit or
-- token_rate_limit (null: none), the first moment it would not: when
-- enough of those admissions have left the window.
CREATE FUNCTION analytics._admission_rate(ident text, rate_limit integer,
    token_rate_limit integer, at timestamptz, estimated_tokens integer,
    OUT requests bigint, OUT tokens bigint, OUT retry_at timestamptz)
RETURNS record LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
BEGIN
    SELECT count(*), coalesce(sum(a.estimated_tokens), 0) INTO requests, tokens
      FROM analytics.admissions a
     WHERE a.customer_identifier OPERATOR(pg_catalog.=) ident
       AND a.created_at OPERATOR(pg_catalog.>) (at OPERATOR(pg_catalog.-) interval '60 seconds');
    IF rate_limit IS NOT NULL AND requests OPERATOR(pg_catalog.>=) rate_limit THEN
        -- The window must lose requests - rate_limit + 1 admissions.
        SELECT a.created_at OPERATOR(pg_catalog.+) interval '60 seconds' INTO retry_at
          FROM analytics.admissions a
         WHERE a.customer_identifier OPERATOR(pg_catalog.=) ident
           AND a.created_at OPERATOR(pg_catalog.>) (at OPERATOR(pg_catalog.-) interval '60 seconds')
         ORDER BY a.created_at, a.id
        OFFSET requests OPERATOR(pg_catalog.-) rate_limit LIMIT 1;
    END IF;
    IF token_rate_limit IS NOT NULL
       AND (tokens OPERATOR(pg_catalog.+) estimated_tokens) OPERATOR(pg_catalog.>) token_rate_limit THEN
        -- The window must lose the oldest admissions up to the first whose
        -- leaving leaves room for estimated_tokens.
        retry_at := greatest(retry_at,
            (SELECT min(s.created_at) OPERATOR(pg_catalog.+) interval '60 seconds'
               FROM (SELECT a.created_at,
                            sum(a.estimated_tokens) OVER (ORDER BY a.created_at, a.id) AS gone
                       FROM analytics.admissions a
                      WHERE a.customer_identifier OPERATOR(pg_catalog.=) ident
                        AND a.created_at OPERATOR(pg_catalog.>) (at OPERATOR(pg_catalog.-) interval '60 seconds')) s
              WHERE (tokens OPERATOR(pg_catalog.-) s.gone OPERATOR(pg_catalog.+) estimated_tokens)
                    OPERATOR(pg_catalog.<=) token_rate_limit));
    END IF;
END;
$$;
COMMENT ON FUNCTION analytics._admission_rate(text, integer, integer, timestamptz, integer) IS
    'Internal: a customer''s admissions and estimated tokens in the 60 seconds up to at, and when one more admission of estimated_tokens would fit its rate limits (null: now).';

CREATE FUNCTION analytics.admit(customer_identifier text, estimated_cost numeric DEFAULT 0,
    estimated_tokens integer DEFAULT 0)
RETURNS bigint AS 'MODULE_PATHNAME', 'admission_admit' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION analytics.admit(text, numeric, integer) IS
    'Admits one LLM request of the customer before the model is called: raises UA003 (blocked), UA001/UA002 (billed spend of logs plus open admissions at or over a budget) or UA004 (rate_limit or token_rate_limit, DETAIL: when to retry); else returns an admission id that holds estimated_cost against the budgets until the log carrying it (logs.admission_id) settles it or analytics.admission_timeout passes.';
-- The alert thresholds already recorded for a customer's budget period
-- ('-infinity', 'infinity': the lifetime) under this budget: the `alerted`
-- of a counter the insert trigger builds (src/budget.c, src/alerts.c), so
-- that a rebuilt counter (after a restore, set_timezone(), a budget set
-- again) does not record them twice.
CREATE FUNCTION analytics._budget_alerted(ident text, p_start timestamptz,
    p_end timestamptz, p_budget numeric)
RETURNS numeric[] LANGUAGE sql STABLE SET search_path = pg_catalog, analytics AS $$
    SELECT coalesce(array_agg(DISTINCT e.threshold), '{}')
      FROM analytics.budget_events e
     WHERE e.customer_identifier OPERATOR(pg_catalog.=) ident
       AND e.budget OPERATOR(pg_catalog.=) p_budget
       AND CASE WHEN p_start OPERATOR(pg_catalog.=) '-infinity'
                THEN e.kind OPERATOR(pg_catalog.=) 'total_threshold'
                ELSE e.kind OPERATOR(pg_catalog.=) 'period_threshold'
                     AND e.period_start OPERATOR(pg_catalog.=) p_start
                     AND e.period_end OPERATOR(pg_catalog.=) p_end END
$$;
COMMENT ON FUNCTION analytics._budget_alerted(text, timestamptz, timestamptz, numeric) IS
    'Internal: the thresholds recorded in budget_events for a customer''s period (-infinity to infinity: lifetime) under this budget.';

-- A customer created blocked became blocked too: its `blocked` budget event
-- (src/alerts.c).  Only such rows call the function.
CREATE FUNCTION analytics.budget_customer_created_blocked() RETURNS trigger
    AS 'MODULE_PATHNAME', 'budget_customer_created_blocked' LANGUAGE C;
COMMENT ON FUNCTION analytics.budget_customer_created_blocked() IS
    'Trigger: records the blocked budget event of a customer inserted blocked.';
CREATE TRIGGER budget_customer_created_blocked AFTER INSERT ON analytics.customers
    FOR EACH ROW WHEN (NEW.blocked) EXECUTE FUNCTION analytics.budget_customer_created_blocked();
