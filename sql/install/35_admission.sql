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
CREATE INDEX admissions_customer_created_at ON analytics.admissions (customer_identifier, created_at);
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
