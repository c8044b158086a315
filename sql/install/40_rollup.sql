-- Piece 40: rollup tables, folded in from analytics.logs by rollup.c.
--
-- A log is "folded in" when its id is at most rollup_state.watermark and
-- outside every range of rollup_gaps: its counts are then in usage_daily,
-- committed in the same transaction that moved the watermark or shrank the
-- gap.  Views read usage_daily plus the logs above the watermark or inside
-- a gap (41_rollup_pending.sql).  Only logs with a customer_identifier
-- are rolled up.  The rollup columns are defined once, in
-- sql/rollup_columns.tsv: the lists between "rollup columns" markers are
-- written from it (make rollup-columns).

CREATE TABLE analytics.rollup_state (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT one_row CHECK (singleton),
    watermark bigint NOT NULL DEFAULT 0,
    last_pass timestamptz,
    last_pass_folded bigint NOT NULL DEFAULT 0,
    timezone text NOT NULL DEFAULT 'UTC',
    retained_from timestamptz,
    last_error text,
    last_error_at timestamptz
);
COMMENT ON TABLE analytics.rollup_state IS 'Progress of the rollup: one row.';
COMMENT ON COLUMN analytics.rollup_state.singleton IS 'Always true: the table has one row.';
COMMENT ON COLUMN analytics.rollup_state.watermark IS 'Every log with id at most this and outside rollup_gaps is counted in usage_daily.';
COMMENT ON COLUMN analytics.rollup_state.last_pass IS 'When the last fold-in pass committed.';
COMMENT ON COLUMN analytics.rollup_state.last_pass_folded IS 'How many logs the last pass folded in.';
COMMENT ON COLUMN analytics.rollup_state.timezone IS 'Time zone whose calendar days the rollups use (analytics.set_timezone).';
COMMENT ON COLUMN analytics.rollup_state.retained_from IS 'Start of a day in the rollup time zone: rollup days from here on are backed by raw logs and rebuilt by set_timezone; earlier days include purged logs and are kept as they are. Null: nothing purged yet.';
COMMENT ON COLUMN analytics.rollup_state.last_error IS 'SQLSTATE and message of the last pass of the background worker that failed (null: none failed yet); see last_error_at.';
COMMENT ON COLUMN analytics.rollup_state.last_error_at IS 'When the last failed pass of the background worker ended.';
INSERT INTO analytics.rollup_state DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('analytics.rollup_state', '');

-- The ids at most the watermark that the fold did not see committed: the
-- watermark does not wait for the transactions writing logs (rollup.c,
-- src/README.md "How a log is counted exactly once").  A range is recorded
-- with the transactions that could still commit an id of it; the fold
-- counts the logs of a range as they commit, and drops the range once all
-- of them have ended.  Ranges are disjoint.
CREATE TABLE analytics.rollup_gaps (
    lo bigint PRIMARY KEY,
    hi bigint NOT NULL,
    lockers bigint[] NOT NULL,
    server_started timestamptz NOT NULL,
    CONSTRAINT range_order CHECK (lo <= hi)
);
COMMENT ON TABLE analytics.rollup_gaps IS 'Ranges of log ids at most the rollup watermark whose logs were not seen committed yet: not counted in usage_daily; the views count those that have committed since.';
COMMENT ON COLUMN analytics.rollup_gaps.lo IS 'First id of the range.';
COMMENT ON COLUMN analytics.rollup_gaps.hi IS 'Last id of the range.';
COMMENT ON COLUMN analytics.rollup_gaps.lockers IS 'Virtual transaction ids ((backend id << 32) | local id) of the transactions writing logs when the range was recorded; the range is dropped once all have ended.';
COMMENT ON COLUMN analytics.rollup_gaps.server_started IS 'pg_postmaster_start_time() when the range was recorded (for diagnosis: after a restart, a restore or a promotion the lockers may name nobody, or a newer transaction, which only makes the gap wait longer; while a prepared transaction holds a lock on logs no gap is dropped).';
SELECT pg_catalog.pg_extension_config_dump('analytics.rollup_gaps', '');

CREATE TABLE analytics.usage_daily (
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    day date NOT NULL,
    model text NOT NULL,
    -- rollup columns: table all
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
    cached_tokens bigint NOT NULL DEFAULT 0,
    -- end rollup columns
    PRIMARY KEY (customer_identifier, day, model)
);
COMMENT ON TABLE analytics.usage_daily IS 'Usage per customer, calendar day (in rollup_state.timezone) and model, folded in from logs.';
COMMENT ON COLUMN analytics.usage_daily.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.usage_daily.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics.usage_daily.model IS 'Model name as logged.';
-- rollup columns: comments all usage_daily
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
COMMENT ON COLUMN analytics.usage_daily.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns
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
    -- rollup columns: table per_day
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost numeric NOT NULL DEFAULT 0,
    -- end rollup columns
    PRIMARY KEY (customer_identifier, day)
);
COMMENT ON TABLE analytics.usage_customer_day IS 'Usage per customer and calendar day (rollup time zone), all models: usage_daily summed over model, folded in with it.';
COMMENT ON COLUMN analytics.usage_customer_day.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics.usage_customer_day.day IS 'Calendar day of created_at in the rollup time zone.';
-- rollup columns: comments per_day usage_customer_day
COMMENT ON COLUMN analytics.usage_customer_day.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.usage_customer_day.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.usage_customer_day.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics.usage_customer_day.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics.usage_customer_day.cost IS 'Sum of cost (USD, before markup).';
-- end rollup columns
CREATE INDEX usage_customer_day_day ON analytics.usage_customer_day (day);
-- The costliest (day, customer) rows of analytics.cost_by_user first.
CREATE INDEX usage_customer_day_cost ON analytics.usage_customer_day (cost);
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_customer_day', '');

CREATE TABLE analytics.usage_customer (
    customer_identifier text PRIMARY KEY
        REFERENCES analytics.customers ON DELETE CASCADE,
    -- rollup columns: table all@1.0
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
    -- end rollup columns
    active_days bigint NOT NULL DEFAULT 0,
    -- rollup columns: table all@1.1 last
    cached_tokens bigint NOT NULL DEFAULT 0
    -- end rollup columns
);
COMMENT ON TABLE analytics.usage_customer IS 'Usage per customer over all time: usage_daily summed per customer, folded in with it; one row per customer, zeros without logs.';
COMMENT ON COLUMN analytics.usage_customer.customer_identifier IS 'The customer.';
-- rollup columns: comments all usage_customer
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
COMMENT ON COLUMN analytics.usage_customer.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns
COMMENT ON COLUMN analytics.usage_customer.active_days IS 'Calendar days (rollup time zone) with at least one log: the customer''s rows in usage_customer_day.';
-- Every customer has a row, with zeros (and null first_seen, last_seen)
-- while it has no folded log: the insert of a customer adds it (the
-- trigger below), so that analytics.users reads every customer from this
-- one table in the order of an index.  (The generated column list above
-- is the one of usage_daily, where they are never null.)
ALTER TABLE analytics.usage_customer ALTER COLUMN first_seen DROP NOT NULL,
                                     ALTER COLUMN last_seen DROP NOT NULL;
COMMENT ON COLUMN analytics.usage_customer.first_seen IS 'Earliest created_at; null without logs.';
COMMENT ON COLUMN analytics.usage_customer.last_seen IS 'Latest created_at; null without logs.';
--
-- The sort orders of the Users page (analytics.users, ORDER BY <column>
-- ASC or DESC, customer_identifier), one index each: read forwards or
-- backwards, a tie of the first key ordered by the second key, or sorted
-- in groups of equal first key (an incremental sort) when the directions
-- differ.  active_days has both directions, because its ties are large
-- either way (a small integer); first_seen and last_seen are descending, so
-- that the customers without logs (null, first in DESC) come in the order
-- of their identifier.  The descending orders of cost, requests and tokens
-- also serve top_users: the all-time value bounds the value over any window
-- (metrics are sums of non-negative numbers).
CREATE INDEX usage_customer_cost ON analytics.usage_customer (cost, customer_identifier);
CREATE INDEX usage_customer_requests ON analytics.usage_customer (requests, customer_identifier);
CREATE INDEX usage_customer_tokens ON analytics.usage_customer ((prompt_tokens + completion_tokens), customer_identifier);
CREATE INDEX usage_customer_active_days ON analytics.usage_customer (active_days, customer_identifier);
CREATE INDEX usage_customer_active_days_desc ON analytics.usage_customer (active_days DESC, customer_identifier);
CREATE INDEX usage_customer_first_seen ON analytics.usage_customer (first_seen DESC, customer_identifier);
CREATE INDEX usage_customer_last_seen ON analytics.usage_customer (last_seen DESC, customer_identifier);

-- The row of a new customer (zeros), with the extension owner's rights
-- (whoever inserts the customer may not write the rollups).  On a Citus
-- cluster the trigger runs on the customers shard and Citus routes the
-- INSERT to the co-located usage_customer shard.
CREATE FUNCTION analytics._usage_customer_created() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, analytics AS $$
BEGIN
    INSERT INTO analytics.usage_customer (customer_identifier)
    VALUES (NEW.customer_identifier)
    ON CONFLICT (customer_identifier) DO NOTHING;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION analytics._usage_customer_created() IS
    'Trigger: the usage_customer row (zeros) of a new customer.';
CREATE TRIGGER usage_customer_created AFTER INSERT ON analytics.customers
    FOR EACH ROW EXECUTE FUNCTION analytics._usage_customer_created();
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_customer', '');

CREATE TABLE analytics.usage_day (
    day date PRIMARY KEY,
    active_users bigint NOT NULL DEFAULT 0,
    -- rollup columns: table per_day last
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost numeric NOT NULL DEFAULT 0
    -- end rollup columns
);
COMMENT ON TABLE analytics.usage_day IS 'Usage per calendar day (rollup time zone), all customers: usage_customer_day summed per day, folded in with it. Rows of a deleted customer are subtracted by a trigger on usage_customer_day.';
COMMENT ON COLUMN analytics.usage_day.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics.usage_day.active_users IS 'Customers with at least one log that day: rows of usage_customer_day for the day.';
-- rollup columns: comments per_day usage_day
COMMENT ON COLUMN analytics.usage_day.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics.usage_day.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics.usage_day.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics.usage_day.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics.usage_day.cost IS 'Sum of cost (USD, before markup).';
-- end rollup columns
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_day', '');

-- The gap counters: with them the distinct customers active in any range of
-- days [a, b) is one indexed sum, whatever the number of customers:
--   sum(customers) over the rows with a <= day < b AND prev_day < a
-- (a customer counts once, at its first active day inside the range).  The
-- fold keeps them with usage_day (rollup.c); node-local, not kept on a
-- Citus cluster (the views count usage_customer_day there).  Rows whose
-- count falls to 0 are left (at most one per pair of days).
CREATE TABLE analytics.usage_day_gaps (
    day date NOT NULL,
    prev_day date NOT NULL,
    customers bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, prev_day)
);
COMMENT ON TABLE analytics.usage_day_gaps IS 'Active days by the gap since the customer''s previous one: for each day and previous day, the rows of usage_customer_day on that day whose customer was last active before it on prev_day. Folded in with usage_day; on a Citus cluster not kept (empty).';
COMMENT ON COLUMN analytics.usage_day_gaps.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics.usage_day_gaps.prev_day IS 'The customer''s previous active day (its greatest usage_customer_day day before day); -infinity when day is its first.';
COMMENT ON COLUMN analytics.usage_day_gaps.customers IS 'Customers active on day whose previous active day is prev_day.';
SELECT pg_catalog.pg_extension_config_dump('analytics.usage_day_gaps', '');

-- A customer's rows of usage_customer_day leave (delete_customer, or the
-- cascade of any deletion of a customer): take them out of usage_day too,
-- and drop the days left without a customer.  Statement level, so one
-- UPDATE per deleting statement.
CREATE FUNCTION analytics._usage_customer_day_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
BEGIN
    UPDATE analytics.usage_day d
       SET active_users = d.active_users OPERATOR(pg_catalog.-) o.active_users,
           -- rollup columns: subtract per_day d o last
           requests = d.requests OPERATOR(pg_catalog.-) o.requests,
           errors = d.errors OPERATOR(pg_catalog.-) o.errors,
           prompt_tokens = d.prompt_tokens OPERATOR(pg_catalog.-) o.prompt_tokens,
           completion_tokens = d.completion_tokens OPERATOR(pg_catalog.-) o.completion_tokens,
           cost = d.cost OPERATOR(pg_catalog.-) o.cost
           -- end rollup columns
      FROM (SELECT x.day, pg_catalog.count(*) AS active_users,
                   -- rollup columns: merge per_day x last
                   pg_catalog.sum(x.requests)::pg_catalog.int8 AS requests,
                   pg_catalog.sum(x.errors)::pg_catalog.int8 AS errors,
                   pg_catalog.sum(x.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
                   pg_catalog.sum(x.completion_tokens)::pg_catalog.int8 AS completion_tokens,
                   pg_catalog.sum(x.cost) AS cost
                   -- end rollup columns
              FROM old_rows x GROUP BY x.day) o
     WHERE d.day OPERATOR(pg_catalog.=) o.day;
    DELETE FROM analytics.usage_day d WHERE d.active_users OPERATOR(pg_catalog.<=) 0;
    -- The gap counters, when kept (empty on a Citus cluster, and emptied
    -- first by a rebuild): the affected customers' pairs (day, previous
    -- day) before the deletion (the rows left plus old_rows) come out, those
    -- of the rows left go in, so a partial deletion is right too.
    IF EXISTS (SELECT FROM analytics.usage_day_gaps) THEN
        INSERT INTO analytics.usage_day_gaps AS g (day, prev_day, customers)
        SELECT c.day, c.prev_day, pg_catalog.sum(c.delta)
          FROM (SELECT r.day,
                       COALESCE(pg_catalog.lag(r.day) OVER (PARTITION BY r.customer_identifier, r.kept
                                                            ORDER BY r.day),
                                '-infinity'::pg_catalog.date) AS prev_day,
                       CASE WHEN r.kept THEN 1 ELSE -1 END AS delta
                  FROM (SELECT x.customer_identifier, x.day, false AS kept FROM old_rows x
                        UNION ALL
                        SELECT u.customer_identifier, u.day, k.kept
                          FROM analytics.usage_customer_day u
                          CROSS JOIN (VALUES (false), (true)) k (kept)
                         WHERE u.customer_identifier IN (SELECT x.customer_identifier FROM old_rows x)) r) c
         GROUP BY c.day, c.prev_day
        HAVING pg_catalog.sum(c.delta) OPERATOR(pg_catalog.<>) 0
        ON CONFLICT (day, prev_day) DO UPDATE
           SET customers = g.customers OPERATOR(pg_catalog.+) EXCLUDED.customers;
        DELETE FROM analytics.usage_day_gaps g
         WHERE g.day IN (SELECT x.day FROM old_rows x UNION SELECT u.day FROM analytics.usage_customer_day u
                          WHERE u.customer_identifier IN (SELECT x.customer_identifier FROM old_rows x))
           AND g.customers OPERATOR(pg_catalog.<=) 0;
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION analytics._usage_customer_day_deleted() IS
    'Internal: trigger keeping usage_day equal to usage_customer_day summed per day, and usage_day_gaps equal to its rows counted by day and previous day, when rows of the latter are deleted.';
CREATE TRIGGER usage_customer_day_deleted
    AFTER DELETE ON analytics.usage_customer_day
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analytics._usage_customer_day_deleted();

-- Logs the fold could not count (rollup.c): a fold statement that fails for
-- its data is halved until the one log that makes it fail is found, and that
-- log is listed here and skipped from then on, so no single log can stop the
-- fold or make the views fail.  The write path's bounds (SPEC section 14)
-- keep new logs from getting here; what remains is defence in depth, and
-- logs recorded before those bounds existed.
CREATE TABLE analytics.rollup_set_aside (
    log_id bigint PRIMARY KEY,
    customer_identifier text NOT NULL
        REFERENCES analytics.customers ON DELETE CASCADE,
    set_aside_at timestamptz NOT NULL DEFAULT now(),
    sqlstate text NOT NULL,
    error text NOT NULL
);
COMMENT ON TABLE analytics.rollup_set_aside IS 'Logs the rollup could not fold in: not counted by the rollups or the views. Removed with their customer.';
COMMENT ON COLUMN analytics.rollup_set_aside.log_id IS 'Id of the log in analytics.logs (the row may since have been purged).';
COMMENT ON COLUMN analytics.rollup_set_aside.customer_identifier IS 'The log''s customer.';
COMMENT ON COLUMN analytics.rollup_set_aside.set_aside_at IS 'When the fold set it aside.';
COMMENT ON COLUMN analytics.rollup_set_aside.sqlstate IS 'SQLSTATE of the error folding it raised.';
COMMENT ON COLUMN analytics.rollup_set_aside.error IS 'Message of that error (at most 1000 bytes).';
SELECT pg_catalog.pg_extension_config_dump('analytics.rollup_set_aside', '');
