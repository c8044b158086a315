-- The write-path baselines: a plain table with the columns and indexes of
-- analytics.logs and no triggers, and the "peer": the same table with the
-- PL/pgSQL trigger one would write by hand to keep a daily rollup and a
-- spend counter per customer up to date on every insert.

CREATE TABLE bench.plain_logs (LIKE analytics.logs INCLUDING ALL);
CREATE TABLE bench.peer_logs (LIKE analytics.logs INCLUDING ALL);

CREATE TABLE bench.peer_daily (
    customer_identifier text NOT NULL,
    day date NOT NULL,
    model text NOT NULL,
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost numeric NOT NULL,
    latency_sum double precision NOT NULL,
    latency_count bigint NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (customer_identifier, day, model)
);

CREATE TABLE bench.peer_spend (
    customer_identifier text PRIMARY KEY,
    total_spend numeric NOT NULL
);

-- One upsert into the daily rollup and one into the spend counter per log.
CREATE FUNCTION bench.peer_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench.peer_daily AS d
    VALUES (NEW.customer_identifier, (NEW.created_at AT TIME ZONE 'UTC')::date, NEW.model,
            1, (NEW.status_code >= 400)::int, NEW.prompt_tokens, NEW.completion_tokens,
            NEW.cost, coalesce(NEW.latency, 0), (NEW.latency IS NOT NULL)::int,
            NEW.created_at, NEW.created_at)
    ON CONFLICT (customer_identifier, day, model) DO UPDATE SET
        requests = d.requests + 1,
        errors = d.errors + EXCLUDED.errors,
        prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
        cost = d.cost + EXCLUDED.cost,
        latency_sum = d.latency_sum + EXCLUDED.latency_sum,
        latency_count = d.latency_count + EXCLUDED.latency_count,
        first_seen = least(d.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(d.last_seen, EXCLUDED.last_seen);

    INSERT INTO bench.peer_spend AS s VALUES (NEW.customer_identifier, NEW.cost)
    ON CONFLICT (customer_identifier) DO UPDATE SET total_spend = s.total_spend + EXCLUDED.total_spend;
    RETURN NULL;
END;
$$;

CREATE TRIGGER peer_rollup AFTER INSERT ON bench.peer_logs
    FOR EACH ROW WHEN (NEW.customer_identifier IS NOT NULL)
    EXECUTE FUNCTION bench.peer_rollup();
