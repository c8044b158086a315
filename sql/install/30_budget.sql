-- Piece 30: budgets.  The counters the insert trigger keeps per customer and
-- budget period (src/budget.c), the period arithmetic (src/periods.c), the
-- spend functions, check_budget(), and the trigger that serializes budget
-- changes with the inserts they govern.

CREATE TABLE analytics.budget_counters (
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    spend numeric NOT NULL DEFAULT 0
        CONSTRAINT spend_non_negative CHECK (spend >= 0),
    PRIMARY KEY (customer_identifier, period_start, period_end),
    reserved numeric NOT NULL DEFAULT 0,
    reserved_until timestamptz,
    alerted numeric[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE analytics.budget_counters IS
    'Derived state of the budget trigger: raw cost of a customer''s committed logs per budget period. Rebuilt from the logs when missing; not dumped.';
COMMENT ON COLUMN analytics.budget_counters.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.budget_counters.period_start IS 'Start of the budget period (inclusive); -infinity for the lifetime counter.';
COMMENT ON COLUMN analytics.budget_counters.period_end IS 'End of the budget period (exclusive); infinity for the lifetime counter.';
COMMENT ON COLUMN analytics.budget_counters.spend IS 'Sum of cost (USD, before markup) of the customer''s logs in the period.';
COMMENT ON COLUMN analytics.budget_counters.reserved IS 'Sum of estimated_cost (USD, before markup) of the customer''s open admissions made in the period, as of the last check.';
COMMENT ON COLUMN analytics.budget_counters.reserved_until IS 'When the earliest of those admissions expires: reserved is recomputed from analytics.admissions at the first check after it; null when none is open.';
COMMENT ON COLUMN analytics.budget_counters.alerted IS 'The alert thresholds (percentages) already recorded in analytics.budget_events for this period under the current budget.';
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

-- billed = raw * (1 + markup / 100), computed exactly: the same C function
-- the insert trigger compares budgets with.
CREATE FUNCTION analytics._budget_billed(raw numeric, markup numeric)
RETURNS numeric AS 'MODULE_PATHNAME', 'budget_billed'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION analytics._budget_billed(numeric, numeric) IS
    'Internal: billed cost = raw cost * (1 + markup_percentage / 100).';

-- The spend functions: the insert trigger builds a missing counter with
-- them (use_counter false, src/budget.c), check_budget() and the views read
-- them.
--
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
-- the rollups plus the logs not folded in yet (purged logs still count), in
-- one statement (one shard on a cluster).
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
               AND ((l.id OPERATOR(pg_catalog.>) analytics._fold_watermark()
                     AND l.id OPERATOR(pg_catalog.<=) analytics._fold_id_last())
                    OR l.id OPERATOR(pg_catalog.=) ANY (analytics._fold_gap_ids())))
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
    OUT total_spend numeric, OUT total_budget numeric, OUT total_remaining numeric,
    OUT open_admissions bigint, OUT period_reserved numeric, OUT total_reserved numeric,
    OUT rate_limit integer, OUT rate_remaining integer,
    OUT token_rate_limit integer, OUT token_rate_remaining integer,
    OUT retry_after interval)
RETURNS record LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, analytics, pg_temp AS $$
DECLARE
    c analytics.customers;
    p record;
    held record;
    held_all record;
    rate record;
    at timestamptz := pg_catalog.clock_timestamp();
BEGIN
    SELECT * INTO c FROM analytics.customers x
     WHERE x.customer_identifier OPERATOR(pg_catalog.=) $1;
    IF NOT FOUND THEN
        -- Its first log or admission creates it without a budget or limit:
        -- it will be accepted.
        allowed := true;
        period_spend := 0;
        total_spend := 0;
        open_admissions := 0;
        period_reserved := 0;
        total_reserved := 0;
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
    -- The estimates of open admissions are held against the budgets.
    held := analytics._admissions_held($1, p.period_start, p.period_end, at);
    held_all := analytics._admissions_held($1, '-infinity', 'infinity', at);
    open_admissions := held_all.open_admissions;
    period_reserved := analytics._budget_billed(held.held, c.markup_percentage);
    total_reserved := analytics._budget_billed(held_all.held, c.markup_percentage);
    -- GREATEST ignores NULLs: no budget must stay "no remaining amount".
    period_remaining := CASE WHEN c.period_budget IS NOT NULL
        THEN greatest(c.period_budget - period_spend - period_reserved, 0) END;
    total_remaining := CASE WHEN c.total_budget IS NOT NULL
        THEN greatest(c.total_budget - total_spend - total_reserved, 0) END;
    rate_limit := c.rate_limit;
    token_rate_limit := c.token_rate_limit;
    IF c.rate_limit IS NOT NULL OR c.token_rate_limit IS NOT NULL THEN
        rate := analytics._admission_rate($1, c.rate_limit, c.token_rate_limit, at, 0);
        rate_remaining := greatest(c.rate_limit - rate.requests, 0);
        token_rate_remaining := greatest(c.token_rate_limit - rate.tokens, 0);
        retry_after := rate.retry_at - at;
    END IF;
    reason := CASE
        WHEN c.blocked THEN 'blocked'
        WHEN period_spend + period_reserved >= c.period_budget THEN 'period_budget'
        WHEN total_spend + total_reserved >= c.total_budget THEN 'total_budget'
        WHEN retry_after IS NOT NULL THEN 'rate_limit'
    END;
    allowed := reason IS NULL
        OR (reason <> 'rate_limit' AND current_setting('analytics.budget_enforcement') = 'record');
END;
$$;
COMMENT ON FUNCTION analytics.check_budget(text) IS
    'What analytics.admit() would answer now for the customer (an estimate of 0): whether it is allowed and why not (blocked, period_budget, total_budget, rate_limit), its current period, spend, budgets and what remains once the open admissions are held (billed USD), and its rate state: admissions left in the last 60 seconds and how long until the next would pass (retry_after, null: now). An unknown customer is allowed.';
