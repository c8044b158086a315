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
