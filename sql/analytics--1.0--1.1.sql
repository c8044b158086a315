-- analytics 1.0 -> 1.1.  Everything here is also in the pieces under
-- sql/install/, which build the 1.1 install script; test/t/050_upgrade.pl proves
-- that the two give the same schema.
\echo Use "ALTER EXTENSION analytics UPDATE TO '1.1'" to load this file. \quit

-- Hostile input (SPEC section 14) ------------------------------------------

-- Customers: name and email of at most 1000 characters, metadata of at
-- most 1 MB as text.  Longer names and emails recorded by 1.0 are cut to
-- 1000 characters and larger metadata replaced by {} (with a warning), so
-- that the update cannot be stopped by what a writer once sent.
DO $$
DECLARE
    n bigint;
BEGIN
    UPDATE analytics.customers
       SET name = CASE WHEN length(name) > 1000 THEN left(name, 1000) ELSE name END,
           email = CASE WHEN length(email) > 1000 THEN left(email, 1000) ELSE email END
     WHERE length(name) > 1000 OR length(email) > 1000;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        RAISE WARNING 'analytics: cut the name or email of % customers to 1000 characters', n;
    END IF;
    UPDATE analytics.customers SET metadata = '{}'
     WHERE octet_length(metadata::text) > 1048576;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        RAISE WARNING 'analytics: replaced the metadata over 1 MB of % customers by {}', n;
    END IF;
END;
$$;
ALTER TABLE analytics.customers
    ADD CONSTRAINT name_length CHECK (length(name) <= 1000),
    ADD CONSTRAINT email_length CHECK (length(email) <= 1000),
    ADD CONSTRAINT metadata_size CHECK (octet_length(metadata::text) <= 1048576);

CREATE OR REPLACE FUNCTION analytics._param_text(params jsonb, key text)
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

-- The rollup: a failed worker pass is kept in rollup_state, and logs that
-- cannot be folded are set aside.
ALTER TABLE analytics.rollup_state
    ADD COLUMN last_error text,
    ADD COLUMN last_error_at timestamptz;
COMMENT ON COLUMN analytics.rollup_state.last_error IS 'SQLSTATE and message of the last pass of the background worker that failed (null: none failed yet); see last_error_at.';
COMMENT ON COLUMN analytics.rollup_state.last_error_at IS 'When the last failed pass of the background worker ended.';

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
COMMENT ON COLUMN analytics.rollup_state.watermark IS 'Every log with id at most this and outside rollup_gaps is counted in usage_daily.';

-- The pending condition, node by node (src/pending.c): a log l is not
-- folded in yet when
--   (l.id > analytics._fold_watermark() AND l.id <= analytics._fold_id_last())
--   OR l.id = ANY (analytics._fold_gap_ids())
-- On a Citus cluster these run on the node of each shard task and read that
-- node's state.
CREATE FUNCTION analytics._fold_watermark() RETURNS bigint
    AS 'MODULE_PATHNAME', 'pending_watermark' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION analytics._fold_watermark() IS
    'Internal: this node''s rollup watermark (the pending condition, src/pending.c).';
CREATE FUNCTION analytics._fold_id_last() RETURNS bigint
    AS 'MODULE_PATHNAME', 'pending_id_last' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION analytics._fold_id_last() IS
    'Internal: the greatest log id this node draws (the greatest bigint on a single node).';
CREATE FUNCTION analytics._fold_gap_ids() RETURNS bigint[]
    AS 'MODULE_PATHNAME', 'pending_gap_ids' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION analytics._fold_gap_ids() IS
    'Internal: the ids of this node''s logs inside a rollup gap that the caller sees (null: none).';

-- The lifetime spend counts the logs not folded in yet by the pending
-- condition (inside a gap too).
CREATE OR REPLACE FUNCTION analytics._budget_total_raw(ident text, use_counter boolean)
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

CREATE FUNCTION analytics._worker_status(OUT last_served timestamptz, OUT waiting_since timestamptz)
    AS 'MODULE_PATHNAME', 'worker_database_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION analytics._worker_status() IS
    'When a rollup worker last finished a pass in this database, and since when committed logs wait for one (null: none wait); read by analytics.status.';

CREATE OR REPLACE VIEW analytics.status AS
SELECT s.watermark,
       (SELECT pg_catalog.count(*) FROM analytics.logs l
         WHERE (l.id OPERATOR(pg_catalog.>) analytics._fold_watermark()
                AND l.id OPERATOR(pg_catalog.<=) analytics._fold_id_last())
               OR l.id OPERATOR(pg_catalog.=) ANY (analytics._fold_gap_ids())) AS logs_pending,
       s.last_pass,
       s.last_pass_folded,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                WHERE a.backend_type OPERATOR(pg_catalog.=) 'analytics rollup'
                  AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) AS worker_running,
       s.timezone,
       s.retained_from,
       s.last_error,
       s.last_error_at,
       (SELECT pg_catalog.count(*) FROM analytics.rollup_set_aside) AS logs_set_aside,
       w.last_served,
       w.waiting_since,
       (SELECT pg_catalog.count(*) FROM analytics.rollup_gaps) AS gaps
  FROM analytics.rollup_state s, analytics._worker_status() w;
COMMENT ON COLUMN analytics.status.last_error IS 'SQLSTATE and message of the last failed pass of the background worker; null when none failed. Compare last_error_at with last_pass.';
COMMENT ON COLUMN analytics.status.last_error_at IS 'When the last failed pass of the background worker ended.';
COMMENT ON COLUMN analytics.status.logs_set_aside IS 'Logs the rollup could not fold in and does not count (listed in analytics.rollup_set_aside).';
COMMENT ON COLUMN analytics.status.last_served IS 'When a rollup worker last finished a pass in this database (null: none since the server started, or the database is not served: analytics.databases).';
COMMENT ON COLUMN analytics.status.waiting_since IS 'Since when logs committed here wait for a worker''s pass; null when none wait. Lagging well behind now() means too few workers for the databases (analytics.max_workers).';
COMMENT ON COLUMN analytics.status.worker_running IS 'Whether a rollup worker is connected to this database now (workers come when there are logs to fold and leave when idle: see last_served).';
COMMENT ON COLUMN analytics.status.watermark IS 'Every log with id at most this and outside the gaps is counted in usage_daily.';
COMMENT ON COLUMN analytics.status.logs_pending IS 'Logs not folded in yet: above the watermark, or inside a gap and committed since the last pass (views still count them, from the raw logs).';
COMMENT ON COLUMN analytics.status.gaps IS 'Ranges of ids below the watermark not seen committed yet (analytics.rollup_gaps): transactions that were writing logs when a pass ran. Many that stay mean a transaction left open.';

-- Cost that matches the invoice (SPEC section 12) -------------------------

-- Prompt caching: cached and cache-write prices (null: the prompt price).
ALTER TABLE analytics.model_prices
    ADD COLUMN cached_prompt_per_million numeric
        CONSTRAINT cached_prompt_price_range
        CHECK (cached_prompt_per_million >= 0 AND cached_prompt_per_million < 'Infinity'),
    ADD COLUMN cache_write_per_million numeric
        CONSTRAINT cache_write_price_range
        CHECK (cache_write_per_million >= 0 AND cache_write_per_million < 'Infinity');
COMMENT ON COLUMN analytics.model_prices.cached_prompt_per_million IS 'USD per million prompt tokens read from a prompt cache (logs.cached_tokens); null: the prompt price.';
COMMENT ON COLUMN analytics.model_prices.cache_write_per_million IS 'USD per million prompt tokens written to a prompt cache (logs.cache_write_tokens); null: the prompt price.';
-- The shipped rows get the cache prices of sql/install/20_logs.sql, unless
-- the site has changed their prices since (its contract: no guess then).
UPDATE analytics.model_prices p
   SET cached_prompt_per_million = v.cached, cache_write_per_million = v.write
  FROM (VALUES ('gpt-4o', 2.50, 10.00, 1.25, NULL),
               ('gpt-4o-mini', 0.15, 0.60, 0.075, NULL),
               ('gpt-4.1', 2.00, 8.00, 0.50, NULL),
               ('gpt-4.1-mini', 0.40, 1.60, 0.10, NULL),
               ('gpt-4.1-nano', 0.10, 0.40, 0.025, NULL),
               ('o3-mini', 1.10, 4.40, 0.55, NULL),
               ('claude-3-5-haiku', 0.80, 4.00, 0.08, 1.00),
               ('claude-3-7-sonnet', 3.00, 15.00, 0.30, 3.75),
               ('claude-sonnet-4', 3.00, 15.00, 0.30, 3.75),
               ('gemini-2.0-flash', 0.10, 0.40, 0.025, NULL))
       AS v(model, prompt, completion, cached, write)
 WHERE p.model OPERATOR(pg_catalog.=) v.model
   AND p.prompt_per_million OPERATOR(pg_catalog.=) v.prompt
   AND p.completion_per_million OPERATOR(pg_catalog.=) v.completion;

-- The parts of a log's tokens: 0 for the logs of 1.0.
ALTER TABLE analytics.logs
    ADD COLUMN cached_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT cached_tokens_non_negative CHECK (cached_tokens >= 0),
    ADD COLUMN cache_write_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT cache_write_tokens_non_negative CHECK (cache_write_tokens >= 0),
    ADD COLUMN reasoning_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT reasoning_tokens_non_negative CHECK (reasoning_tokens >= 0),
    ADD CONSTRAINT cached_tokens_within_prompt
        CHECK (cached_tokens::bigint + cache_write_tokens <= prompt_tokens),
    ADD CONSTRAINT reasoning_tokens_within_completion
        CHECK (reasoning_tokens <= completion_tokens);
COMMENT ON COLUMN analytics.logs.cached_tokens IS 'Prompt tokens read from the provider''s prompt cache: part of prompt_tokens, priced at model_prices.cached_prompt_per_million.';
COMMENT ON COLUMN analytics.logs.cache_write_tokens IS 'Prompt tokens written to the provider''s prompt cache: part of prompt_tokens, priced at model_prices.cache_write_per_million.';
COMMENT ON COLUMN analytics.logs.reasoning_tokens IS 'Completion tokens spent on reasoning: part of completion_tokens.';

-- Loads a price map in LiteLLM's model_prices_and_context_window.json
-- format: an object of models, each with per-token USD costs
-- (input_cost_per_token, output_cost_per_token, cache_read_input_token_cost,
-- cache_creation_input_token_cost), stored per million tokens.  An entry
-- without both an input and an output cost per token (images, audio,
-- per-second pricing, and LiteLLM's "sample_spec", which documents the
-- format) is skipped; an entry's missing cache costs leave those prices
-- null (the prompt price).  A cost that is not a non-negative number, or a
-- model name that is not 1 to 255 characters long, is rejected (22023,
-- naming it) and nothing is set.  SECURITY INVOKER: the caller writes
-- model_prices (analytics_admin).
CREATE FUNCTION analytics.import_prices(prices jsonb) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    m text;
    e jsonb;
    k text;
    v jsonb;
    cost numeric[];
    n integer := 0;
BEGIN
    IF prices IS NULL OR jsonb_typeof(prices) <> 'object' THEN
        RAISE EXCEPTION 'invalid value for "prices": expected a JSON object of models'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s. No price was set.', coalesce(jsonb_typeof(prices), 'SQL NULL'));
    END IF;
    FOR m, e IN SELECT p.key, p.value FROM jsonb_each(prices) p LOOP
        CONTINUE WHEN m = 'sample_spec';
        IF jsonb_typeof(e) <> 'object' THEN
            RAISE EXCEPTION 'invalid value for "prices.%": expected a JSON object', left(m, 100)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Got %s. No price was set.', left(e::text, 100));
        END IF;
        CONTINUE WHEN jsonb_typeof(e -> 'input_cost_per_token') IS DISTINCT FROM 'number'
                   OR jsonb_typeof(e -> 'output_cost_per_token') IS DISTINCT FROM 'number';
        IF length(m) NOT BETWEEN 1 AND 255 THEN
            RAISE EXCEPTION 'invalid model name in "prices": must be 1 to 255 characters long'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Got %s characters: %s. No price was set.', length(m), left(m, 100));
        END IF;
        cost := '{}';
        FOREACH k IN ARRAY ARRAY['input_cost_per_token', 'output_cost_per_token',
                                 'cache_read_input_token_cost', 'cache_creation_input_token_cost'] LOOP
            v := e -> k;
            IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
                cost := cost || NULL::numeric;
            ELSIF jsonb_typeof(v) <> 'number' OR v::text::numeric < 0 THEN
                RAISE EXCEPTION 'invalid value for "prices.%.%": expected a non-negative number', left(m, 100), k
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('Got %s. No price was set.', left(v::text, 100));
            ELSE
                cost := cost || trim_scale(v::text::numeric * 1000000);
            END IF;
        END LOOP;
        INSERT INTO analytics.model_prices AS p
               (model, prompt_per_million, completion_per_million,
                cached_prompt_per_million, cache_write_per_million)
        VALUES (m, cost[1], cost[2], cost[3], cost[4])
        ON CONFLICT (model) DO UPDATE
           SET prompt_per_million = excluded.prompt_per_million,
               completion_per_million = excluded.completion_per_million,
               cached_prompt_per_million = excluded.cached_prompt_per_million,
               cache_write_per_million = excluded.cache_write_per_million;
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION analytics.import_prices(jsonb) IS
    'Sets model_prices from a price map in LiteLLM''s model_prices_and_context_window.json format (per-token costs: input_cost_per_token, output_cost_per_token, cache_read_input_token_cost, cache_creation_input_token_cost); skips entries without both an input and an output cost per token; returns how many models it set. For analytics_admin.';

-- OpenAI: the Responses API and a stream's last chunk too (src/ingest_openai.c).
COMMENT ON FUNCTION analytics.ingest_openai(text, text, double precision) IS
    'Records one log from an OpenAI request body (with customer_params, or user) and its response: a Chat Completions object, the last chunk of a stream (with usage), a Responses API object, or an error object; returns its id.';

-- Anthropic Messages (src/ingest_anthropic.c).
CREATE FUNCTION analytics.ingest_anthropic(request text, response text,
                                           latency double precision DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_anthropic_text' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_anthropic(text, text, double precision) IS
    'Records one log from an Anthropic Messages request body (with customer_params, or metadata.user_id) and its response (a Message or an error object); prompt_tokens counts the cache reads and writes that input_tokens leaves out; returns its id.';

CREATE FUNCTION analytics.ingest_anthropic(request json, response json,
                                           latency double precision DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_anthropic_json' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_anthropic(json, json, double precision) IS
    'Records one log from an Anthropic request and response given as json; see analytics.ingest_anthropic(text, text, double precision).';

CREATE FUNCTION analytics.ingest_anthropic(request jsonb, response jsonb,
                                           latency double precision DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_anthropic_jsonb' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_anthropic(jsonb, jsonb, double precision) IS
    'Records one log from an Anthropic request and response given as jsonb; see analytics.ingest_anthropic(text, text, double precision).';

-- The rollup columns added in 1.1 (sql/rollup_columns.tsv): appended to the
-- rollup tables that have every column; 0 for the logs of 1.0.
-- rollup columns: add_column all@1.1 usage_daily
ALTER TABLE analytics.usage_daily ADD COLUMN cached_tokens bigint NOT NULL DEFAULT 0;
-- end rollup columns
-- rollup columns: comments all@1.1 usage_daily
COMMENT ON COLUMN analytics.usage_daily.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns
-- rollup columns: add_column all@1.1 usage_customer
ALTER TABLE analytics.usage_customer ADD COLUMN cached_tokens bigint NOT NULL DEFAULT 0;
-- end rollup columns
-- rollup columns: comments all@1.1 usage_customer
COMMENT ON COLUMN analytics.usage_customer.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns

-- The rollup columns are written from one definition (sql/rollup_columns.tsv):
-- the functions that list them, as the pieces define them.
CREATE OR REPLACE FUNCTION analytics._usage_customer_day_deleted() RETURNS trigger
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
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION analytics._rollup_rebuild_summaries() RETURNS void
LANGUAGE sql SET search_path = pg_catalog, analytics AS $$
DELETE FROM analytics.usage_day;
DELETE FROM analytics.usage_customer_day;
DELETE FROM analytics.usage_customer;
INSERT INTO analytics.usage_customer_day (
    customer_identifier, day,
    -- rollup columns: list per_day - last
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost
    -- end rollup columns
)
SELECT d.customer_identifier, d.day,
       -- rollup columns: merge per_day d last
       pg_catalog.sum(d.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(d.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(d.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(d.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(d.cost) AS cost
       -- end rollup columns
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier, d.day;
INSERT INTO analytics.usage_day (
    day, active_users,
    -- rollup columns: list per_day - last
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost
    -- end rollup columns
)
SELECT x.day, pg_catalog.count(*),
       -- rollup columns: merge per_day x last
       pg_catalog.sum(x.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(x.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(x.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(x.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(x.cost) AS cost
       -- end rollup columns
  FROM analytics.usage_customer_day x
 GROUP BY x.day;
INSERT INTO analytics.usage_customer (
    customer_identifier,
    -- rollup columns: list all -
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost,
    latency_sum,
    latency_count,
    ttft_sum,
    ttft_count,
    first_seen,
    last_seen,
    cached_tokens,
    -- end rollup columns
    active_days
)
SELECT d.customer_identifier,
       -- rollup columns: merge all d
       pg_catalog.sum(d.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(d.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(d.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(d.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(d.cost) AS cost,
       pg_catalog.sum(d.latency_sum) AS latency_sum,
       pg_catalog.sum(d.latency_count)::pg_catalog.int8 AS latency_count,
       pg_catalog.sum(d.ttft_sum) AS ttft_sum,
       pg_catalog.sum(d.ttft_count)::pg_catalog.int8 AS ttft_count,
       pg_catalog.min(d.first_seen) AS first_seen,
       pg_catalog.max(d.last_seen) AS last_seen,
       pg_catalog.sum(d.cached_tokens)::pg_catalog.int8 AS cached_tokens,
       -- end rollup columns
       pg_catalog.count(DISTINCT d.day)
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier;
INSERT INTO analytics.usage_customer (customer_identifier)
SELECT c.customer_identifier
  FROM analytics.customers c
 WHERE NOT EXISTS (SELECT 1 FROM analytics.usage_customer u
                    WHERE u.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier);
$$;

-- The pending-log reader as plain views (pushed down on a Citus cluster):
-- the functions it replaces, and the views that read them, change with it.
-- The model with the most requests among the given (model, requests)
-- pairs.  analytics.users passes a customer's usage_daily pairs and its
-- pending ones; SQL that reads no table, so it runs wherever the row is.
CREATE FUNCTION analytics._top_model_in(models text[], requests bigint[])
RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT analytics._top_model(t.model, t.requests) FROM unnest(models, requests) t(model, requests)
$$;
COMMENT ON FUNCTION analytics._top_model_in(text[], bigint[]) IS
    'Internal: the model with the most requests among the given (model, requests) pairs.';

-- The five models with the highest cost among the given (model, requests,
-- cost) triples, summed per model: a jsonb array of {"model", "requests",
-- "cost"} by cost, then requests, descending, then model name in byte order
-- (COLLATE "C": the same on every node whatever the database's collation);
-- [] for no triples.  Five at most: a writer names the models, and a
-- customer with a million of them must not make one row of analytics.users
-- huge.  The cost is the exact numeric sum (jsonb keeps numeric values).
-- analytics.users passes a customer's usage_daily rows and its pending ones,
-- as for _top_model_in: SQL that reads no table, so it runs wherever the
-- row is.
CREATE FUNCTION analytics._top_models_in(models text[], requests bigint[], costs numeric[])
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                    'model', t.model, 'requests', t.requests, 'cost', t.cost)
                ORDER BY t.cost DESC, t.requests DESC, t.model COLLATE "C"),
                '[]'::jsonb)
  FROM (SELECT u.model, pg_catalog.sum(u.requests)::bigint AS requests, pg_catalog.sum(u.cost) AS cost
          FROM unnest(models, requests, costs) u(model, requests, cost)
         WHERE u.model IS NOT NULL
         GROUP BY u.model
         ORDER BY 3 DESC, 2 DESC, u.model COLLATE "C"
         LIMIT 5) t
$$;
COMMENT ON FUNCTION analytics._top_models_in(text[], bigint[], numeric[]) IS
    'Internal: the 5 models with the highest cost among the given (model, requests, cost) triples, summed per model, as a jsonb array of {"model", "requests", "cost"}; [] for none.';

-- The calendar months (in the given time zone) from the month of since
-- through the month of as_of, both counted: 1 when they are the same month,
-- and when since is later (a log created in the future); null for a null
-- since.  The divisor of analytics.users.average_monthly_cost.
CREATE FUNCTION analytics._calendar_months(since timestamptz, as_of timestamptz, zone text)
RETURNS integer LANGUAGE sql IMMUTABLE AS $$
SELECT pg_catalog.int4larger(1,
           ((pg_catalog.date_part('year', as_of AT TIME ZONE zone)
             - pg_catalog.date_part('year', since AT TIME ZONE zone)) * 12
            + pg_catalog.date_part('month', as_of AT TIME ZONE zone)
            - pg_catalog.date_part('month', since AT TIME ZONE zone) + 1)::integer)
$$;
COMMENT ON FUNCTION analytics._calendar_months(timestamptz, timestamptz, text) IS
    'Internal: calendar months in the given time zone from the month of since through the month of as_of, both included (at least 1; null for a null since).';

-- The logs not folded in yet (the pending condition above, with a
-- customer), aggregated like usage_daily (the same aggregates as the
-- fold's).  A view, grouped by customer_identifier first, so that Citus
-- pushes it down to the shards; the pending functions run on the node of
-- each shard task and read that node's state.  The time zone is read once
-- per statement (an uncorrelated subquery; on a cluster every node keeps the
-- same one).  On a single node the planner reads the pending ids by the
-- primary key (the functions are evaluated once per scan, so they are index
-- conditions).
CREATE VIEW analytics._usage_pending AS
SELECT l.customer_identifier,
       (l.created_at AT TIME ZONE (SELECT s.timezone FROM analytics.rollup_state s))::date AS day,
       l.model,
       -- rollup columns: log all last
       pg_catalog.count(*) AS requests,
       pg_catalog.count(*) FILTER (WHERE l.status_code OPERATOR(pg_catalog.>=) 400) AS errors,
       pg_catalog.sum(l.prompt_tokens) AS prompt_tokens,
       pg_catalog.sum(l.completion_tokens) AS completion_tokens,
       pg_catalog.sum(l.cost) AS cost,
       COALESCE(pg_catalog.sum(l.latency), 0) AS latency_sum,
       pg_catalog.count(l.latency) AS latency_count,
       COALESCE(pg_catalog.sum(l.time_to_first_token), 0) AS ttft_sum,
       pg_catalog.count(l.time_to_first_token) AS ttft_count,
       pg_catalog.min(l.created_at) AS first_seen,
       pg_catalog.max(l.created_at) AS last_seen,
       pg_catalog.sum(l.cached_tokens) AS cached_tokens
       -- end rollup columns
  FROM analytics.logs l
 WHERE ((l.id OPERATOR(pg_catalog.>) analytics._fold_watermark()
         AND l.id OPERATOR(pg_catalog.<=) analytics._fold_id_last())
        OR l.id OPERATOR(pg_catalog.=) ANY (analytics._fold_gap_ids()))
   -- with a customer: not null, nor '' (a log without one on a Citus
   -- cluster, src/shards.c)
   AND l.customer_identifier OPERATOR(pg_catalog.<>) ''
 GROUP BY l.customer_identifier, 2, l.model;
COMMENT ON VIEW analytics._usage_pending IS
    'Internal: the logs not folded in yet (src/pending.c), aggregated per customer, day and model like usage_daily.';
COMMENT ON COLUMN analytics._usage_pending.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_pending.day IS 'Calendar day of created_at in the rollup time zone.';
COMMENT ON COLUMN analytics._usage_pending.model IS 'Model name as logged.';
-- rollup columns: comments all _usage_pending
COMMENT ON COLUMN analytics._usage_pending.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_pending.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_pending.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_pending.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_pending.cost IS 'Sum of cost (USD, before markup).';
COMMENT ON COLUMN analytics._usage_pending.latency_sum IS 'Sum of non-null latency.';
COMMENT ON COLUMN analytics._usage_pending.latency_count IS 'Logs with a latency.';
COMMENT ON COLUMN analytics._usage_pending.ttft_sum IS 'Sum of non-null time_to_first_token.';
COMMENT ON COLUMN analytics._usage_pending.ttft_count IS 'Logs with a time_to_first_token.';
COMMENT ON COLUMN analytics._usage_pending.first_seen IS 'Earliest created_at.';
COMMENT ON COLUMN analytics._usage_pending.last_seen IS 'Latest created_at.';
COMMENT ON COLUMN analytics._usage_pending.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns

CREATE OR REPLACE VIEW analytics._usage_live AS
SELECT d.customer_identifier, d.day, d.model,
       -- rollup columns: list all d last
       d.requests,
       d.errors,
       d.prompt_tokens,
       d.completion_tokens,
       d.cost,
       d.latency_sum,
       d.latency_count,
       d.ttft_sum,
       d.ttft_count,
       d.first_seen,
       d.last_seen,
       d.cached_tokens
       -- end rollup columns
  FROM analytics.usage_daily d
UNION ALL
SELECT p.customer_identifier, p.day, p.model,
       -- rollup columns: list all p last
       p.requests,
       p.errors,
       p.prompt_tokens,
       p.completion_tokens,
       p.cost,
       p.latency_sum,
       p.latency_count,
       p.ttft_sum,
       p.ttft_count,
       p.first_seen,
       p.last_seen,
       p.cached_tokens
       -- end rollup columns
  FROM analytics._usage_pending p;
-- rollup columns: comments all@1.1 _usage_live
COMMENT ON COLUMN analytics._usage_live.cached_tokens IS 'Sum of cached_tokens (prompt tokens read from a prompt cache).';
-- end rollup columns


-- The pending logs per customer and day, with whether the pair is a new
-- active day (no usage_customer_day row yet): a join on the customer, so
-- that on a cluster the rollup row and the pending logs of a customer are
-- read by one shard task, in one snapshot.  A caller that does not use
-- new_day has the join removed (the key of usage_customer_day).
CREATE VIEW analytics._usage_customer_day_pending AS
SELECT p.customer_identifier, p.day,
       -- rollup columns: list per_day p
       p.requests,
       p.errors,
       p.prompt_tokens,
       p.completion_tokens,
       p.cost,
       -- end rollup columns
       x.customer_identifier IS NULL AS new_day
  FROM (SELECT q.customer_identifier, q.day,
               -- rollup columns: merge per_day q last
               pg_catalog.sum(q.requests)::pg_catalog.int8 AS requests,
               pg_catalog.sum(q.errors)::pg_catalog.int8 AS errors,
               pg_catalog.sum(q.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
               pg_catalog.sum(q.completion_tokens)::pg_catalog.int8 AS completion_tokens,
               pg_catalog.sum(q.cost) AS cost
               -- end rollup columns
          FROM analytics._usage_pending q
         GROUP BY q.customer_identifier, q.day) p
  LEFT JOIN analytics.usage_customer_day x
         ON x.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
        AND x.day OPERATOR(pg_catalog.=) p.day;
COMMENT ON VIEW analytics._usage_customer_day_pending IS
    'Internal: the logs not folded in yet per customer and day, and whether the customer had no rollup row for that day yet.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.day IS 'Calendar day of created_at in the rollup time zone.';
-- rollup columns: comments per_day _usage_customer_day_pending
COMMENT ON COLUMN analytics._usage_customer_day_pending.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_customer_day_pending.cost IS 'Sum of cost (USD, before markup).';
-- end rollup columns
COMMENT ON COLUMN analytics._usage_customer_day_pending.new_day IS 'True when usage_customer_day has no row for the customer and day yet: one more active day.';

CREATE OR REPLACE VIEW analytics._usage_customer_day_live AS
SELECT x.customer_identifier, x.day,
       -- rollup columns: list per_day x last
       x.requests,
       x.errors,
       x.prompt_tokens,
       x.completion_tokens,
       x.cost
       -- end rollup columns
  FROM analytics.usage_customer_day x
UNION ALL
SELECT p.customer_identifier, p.day,
       -- rollup columns: list per_day p last
       p.requests,
       p.errors,
       p.prompt_tokens,
       p.completion_tokens,
       p.cost
       -- end rollup columns
  FROM analytics._usage_customer_day_pending p;

-- The per-day totals of the rollups (every customer), with
-- customer_identifier null.  On a single node usage_day; analytics.distribute()
-- replaces it by the rows of usage_customer_day (one active user each, with
-- their customer), as usage_day is node-local and not kept on a cluster.
-- Consumers sum per day: with the customer in the same place as in the
-- pending views, Citus pushes a UNION ALL of the two down to the shards, so
-- that each shard task reads its rollup rows and its pending logs in one
-- snapshot and the coordinator adds the shards' per-day sums.
CREATE VIEW analytics._usage_day AS
SELECT NULL::text AS customer_identifier, d.day, d.active_users,
       -- rollup columns: list per_day d last
       d.requests,
       d.errors,
       d.prompt_tokens,
       d.completion_tokens,
       d.cost
       -- end rollup columns
  FROM analytics.usage_day d;
COMMENT ON VIEW analytics._usage_day IS
    'Internal: the per-day totals of the rollups (usage_day; on a Citus cluster the rows of usage_customer_day), to be summed per day.';
COMMENT ON COLUMN analytics._usage_day.customer_identifier IS 'Null on a single node (the row covers every customer); on a cluster the customer of the row.';
COMMENT ON COLUMN analytics._usage_day.day IS 'Calendar day in the rollup time zone.';
COMMENT ON COLUMN analytics._usage_day.active_users IS 'Customers with at least one folded log that day.';
-- rollup columns: comments per_day _usage_day
COMMENT ON COLUMN analytics._usage_day.requests IS 'Number of logs.';
COMMENT ON COLUMN analytics._usage_day.errors IS 'Logs with status_code >= 400.';
COMMENT ON COLUMN analytics._usage_day.prompt_tokens IS 'Sum of prompt_tokens.';
COMMENT ON COLUMN analytics._usage_day.completion_tokens IS 'Sum of completion_tokens.';
COMMENT ON COLUMN analytics._usage_day.cost IS 'Sum of cost (USD, before markup).';
-- end rollup columns

-- The keys of the pending logs, for the outer condition of analytics.users
-- and analytics.cost_by_user (50_views.sql), which drops the rollup rows
-- that their pending arm replaces: the customers, and the (customer, day)
-- pairs, with logs not folded in yet.  The condition must stay a hashed
-- subplan (one hash table, a probe per row), whatever the planner expects
-- of the pending logs: estimated large (after a bulk load, all of it
-- pending) it would be a plain subplan, a scan of the whole list per row,
-- quadratic over the Users page.  So on a single node the keys come from a
-- set-returning function estimated at 100 rows; the hash table holds what
-- it returns, however many.  STABLE: it reads the caller's snapshot.  (A
-- Citus cluster reads users and cost_by_user in another shape, which does
-- not use these: 50_views.sql.)
CREATE FUNCTION analytics._pending_customer_keys()
RETURNS TABLE (customer_identifier text)
LANGUAGE plpgsql STABLE ROWS 100 SET search_path = pg_catalog, analytics AS $$
BEGIN
    RETURN QUERY SELECT DISTINCT g.customer_identifier FROM analytics._usage_pending g;
END;
$$;
COMMENT ON FUNCTION analytics._pending_customer_keys() IS
    'Internal: the customers with logs not folded in yet (estimated small, so that the condition reading it stays a hashed subplan).';
CREATE FUNCTION analytics._pending_customer_day_keys()
RETURNS TABLE (customer_identifier text, day date)
LANGUAGE plpgsql STABLE ROWS 100 SET search_path = pg_catalog, analytics AS $$
BEGIN
    RETURN QUERY SELECT DISTINCT g.customer_identifier, g.day FROM analytics._usage_pending g;
END;
$$;
COMMENT ON FUNCTION analytics._pending_customer_day_keys() IS
    'Internal: the (customer, day) pairs with logs not folded in yet (estimated small, so that the condition reading it stays a hashed subplan).';
CREATE VIEW analytics._pending_customers AS
SELECT k.customer_identifier FROM analytics._pending_customer_keys() k;
COMMENT ON VIEW analytics._pending_customers IS
    'Internal: the customers with logs not folded in yet.';
COMMENT ON COLUMN analytics._pending_customers.customer_identifier IS 'The customer.';
CREATE VIEW analytics._pending_customer_days AS
SELECT k.customer_identifier, k.day FROM analytics._pending_customer_day_keys() k;
COMMENT ON VIEW analytics._pending_customer_days IS
    'Internal: the (customer, day) pairs with logs not folded in yet.';
COMMENT ON COLUMN analytics._pending_customer_days.customer_identifier IS 'The customer.';
COMMENT ON COLUMN analytics._pending_customer_days.day IS 'Calendar day of created_at in the rollup time zone.';

CREATE OR REPLACE VIEW analytics.users AS
SELECT c.customer_identifier,
       c.name,
       c.email,
       c.metadata,
       c.created_at,
       x.first_seen,
       x.last_active,
       x.active_days,
       x.requests,
       x.errors,
       x.prompt_tokens,
       x.completion_tokens,
       x.total_tokens,
       x.cost,
       x.cost * (1 + c.markup_percentage / 100) AS billed_cost,
       x.latency_sum / nullif(x.latency_count, 0) AS avg_latency,
       x.ttft_sum / nullif(x.ttft_count, 0) AS avg_ttft,
       analytics._top_model_in(
           (SELECT pg_catalog.array_agg(d.model ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || x.models,
           (SELECT pg_catalog.array_agg(d.requests ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || x.model_requests)
           AS top_model,
       c.period_budget,
       c.budget_duration,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1] AS period_start,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2] AS period_end,
       analytics._budget_billed(
           (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
             WHERE l.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier
               AND l.created_at >= (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1]
               AND l.created_at < (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2]),
           c.markup_percentage) AS period_spend,
       c.total_budget,
       x.cost * (1 + c.markup_percentage / 100) AS total_spend,
       c.blocked,
       x.cached_tokens,
       x.cached_tokens::numeric / nullif(x.prompt_tokens, 0) AS cache_hit_rate,
       (SELECT analytics._top_models_in(pg_catalog.array_agg(d.model) || x.models,
                                        pg_catalog.array_agg(d.requests) || x.model_requests,
                                        pg_catalog.array_agg(d.cost) || x.model_costs)
          FROM analytics.usage_daily d
         WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) AS top_models,
       x.cost / analytics._calendar_months(x.first_seen, now(), z.timezone) AS average_monthly_cost
  FROM (SELECT u.customer_identifier,
               u.first_seen,
               u.last_seen AS last_active,
               u.active_days,
               u.requests,
               u.errors,
               u.prompt_tokens,
               u.completion_tokens,
               u.prompt_tokens + u.completion_tokens AS total_tokens,
               u.cost,
               u.latency_sum,
               u.latency_count,
               u.ttft_sum,
               u.ttft_count,
               u.cached_tokens,
               NULL::text[] AS models,
               NULL::bigint[] AS model_requests,
               NULL::numeric[] AS model_costs,
               false AS pending
          FROM analytics.usage_customer u
        UNION ALL
        SELECT p.customer_identifier,
               LEAST(u.first_seen, p.first_seen),
               GREATEST(u.last_seen, p.last_seen),
               coalesce(u.active_days, 0) + p.new_days,
               coalesce(u.requests, 0) + p.requests,
               coalesce(u.errors, 0) + p.errors,
               coalesce(u.prompt_tokens, 0) + p.prompt_tokens,
               coalesce(u.completion_tokens, 0) + p.completion_tokens,
               coalesce(u.prompt_tokens + u.completion_tokens, 0) + p.prompt_tokens + p.completion_tokens,
               coalesce(u.cost, 0) + p.cost,
               coalesce(u.latency_sum, 0) + p.latency_sum,
               coalesce(u.latency_count, 0) + p.latency_count,
               coalesce(u.ttft_sum, 0) + p.ttft_sum,
               coalesce(u.ttft_count, 0) + p.ttft_count,
               coalesce(u.cached_tokens, 0) + p.cached_tokens,
               p.models,
               p.model_requests,
               p.model_costs,
               true
          FROM (SELECT g.customer_identifier,
                       min(g.first_seen) AS first_seen,
                       max(g.last_seen) AS last_seen,
                       count(DISTINCT g.day) FILTER (
                           WHERE NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day d
                                              WHERE d.customer_identifier OPERATOR(pg_catalog.=) g.customer_identifier
                                                AND d.day OPERATOR(pg_catalog.=) g.day)) AS new_days,
                       sum(g.requests)::bigint AS requests,
                       sum(g.errors)::bigint AS errors,
                       sum(g.prompt_tokens)::bigint AS prompt_tokens,
                       sum(g.completion_tokens)::bigint AS completion_tokens,
                       sum(g.cost) AS cost,
                       sum(g.latency_sum) AS latency_sum,
                       sum(g.latency_count)::bigint AS latency_count,
                       sum(g.ttft_sum) AS ttft_sum,
                       sum(g.ttft_count)::bigint AS ttft_count,
                       sum(g.cached_tokens)::bigint AS cached_tokens,
                       array_agg(g.model) AS models,
                       array_agg(g.requests) AS model_requests,
                       array_agg(g.cost) AS model_costs
                  FROM analytics._usage_pending g
                 GROUP BY g.customer_identifier) p
          LEFT JOIN LATERAL (SELECT u.* FROM analytics.usage_customer u
                              WHERE u.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
                             OFFSET 0) u ON true) x
  JOIN analytics.customers c ON c.customer_identifier = x.customer_identifier
 CROSS JOIN (SELECT s.timezone FROM analytics.rollup_state s) z
 WHERE x.pending
    OR x.customer_identifier NOT IN (SELECT k.customer_identifier FROM analytics._pending_customers k);
COMMENT ON COLUMN analytics.users.cached_tokens IS 'Prompt tokens read from a prompt cache (part of prompt_tokens, priced at the cached price).';
COMMENT ON COLUMN analytics.users.cache_hit_rate IS 'cached_tokens / prompt_tokens, a numeric from 0 to 1, not rounded (numeric division, at least 16 significant digits); null when prompt_tokens is 0 (no logs, or none with prompt tokens).';
COMMENT ON COLUMN analytics.users.top_models IS 'jsonb array of the 5 models (at most) with the highest cost over all time, each {"model": text, "requests": number (bigint), "cost": number (the exact numeric USD sum before markup)}, ordered by cost, then requests, descending, then model name in byte order; [] without logs. Capped at 5 because writers choose model names.';
COMMENT ON COLUMN analytics.users.average_monthly_cost IS 'USD (numeric, not rounded), cost divided by the calendar months (rollup time zone) from the month of first_seen through the current month, both included; null without logs.';

CREATE OR REPLACE VIEW analytics.daily_active_users AS
SELECT a.day,
       sum(a.active_users)::bigint AS active_users,
       sum(a.requests)::bigint AS requests,
       sum(a.cost) AS cost
  FROM (SELECT d.customer_identifier, d.day, d.active_users, d.requests, d.cost
          FROM analytics._usage_day d
        UNION ALL
        SELECT p.customer_identifier, p.day, p.new_day::integer, p.requests, p.cost
          FROM analytics._usage_customer_day_pending p) a
 GROUP BY a.day;

CREATE OR REPLACE VIEW analytics.cost_by_user AS
SELECT x.day, x.customer_identifier, x.requests, x.prompt_tokens, x.completion_tokens, x.cost
  FROM (SELECT x.day, x.customer_identifier, x.requests, x.prompt_tokens, x.completion_tokens,
               x.cost, false AS pending
          FROM analytics.usage_customer_day x
        UNION ALL
        SELECT p.day, p.customer_identifier,
               p.requests + coalesce(x.requests, 0),
               p.prompt_tokens + coalesce(x.prompt_tokens, 0),
               p.completion_tokens + coalesce(x.completion_tokens, 0),
               p.cost + coalesce(x.cost, 0),
               true
          FROM analytics._usage_customer_day_pending p
          LEFT JOIN LATERAL (SELECT x.* FROM analytics.usage_customer_day x
                              WHERE x.customer_identifier OPERATOR(pg_catalog.=) p.customer_identifier
                                AND x.day OPERATOR(pg_catalog.=) p.day
                             OFFSET 0) x ON true) x
 WHERE x.pending
    OR (x.customer_identifier, x.day) NOT IN (SELECT k.customer_identifier, k.day
                                                FROM analytics._pending_customer_days k);

DROP FUNCTION analytics._pending_customer_day(), analytics._pending_usage(),
    analytics._period_spend(text, timestamptz, timestamptz, numeric),
    analytics._customer_top_model(text, text[], bigint[]);

-- top_users in named pieces, and the window's days shared with active_users.

-- The calendar days [d0, d1) of the rollup time zone that overlap
-- [since, until) (null: unbounded), in the caller's snapshot.
CREATE FUNCTION analytics._window_days(since timestamptz, until timestamptz,
                                       OUT d0 date, OUT d1 date)
LANGUAGE sql STABLE AS $$
SELECT (coalesce(since, '-infinity') AT TIME ZONE s.timezone)::date,
       ((coalesce(until, 'infinity') AT TIME ZONE s.timezone) - interval '1 microsecond')::date + 1
  FROM analytics.rollup_state s
$$;
COMMENT ON FUNCTION analytics._window_days(timestamptz, timestamptz) IS
    'Internal: the calendar days [d0, d1) of the rollup time zone that overlap [since, until).';

-- The text of a top_users metric over a row of usage_customer (all_time,
-- alias u) or of _usage_window (alias a): one of fixed texts pasted into a
-- query, never a value.
CREATE FUNCTION analytics._top_users_metric(metric text, all_time boolean)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN all_time
            THEN CASE metric WHEN 'cost' THEN 'u.cost' WHEN 'requests' THEN 'u.requests'
                             ELSE '(u.prompt_tokens + u.completion_tokens)' END
            ELSE CASE metric WHEN 'cost' THEN 'a.cost' WHEN 'requests' THEN 'a.requests'
                             ELSE 'a.total_tokens' END
       END
$$;
COMMENT ON FUNCTION analytics._top_users_metric(text, boolean) IS
    'Internal: the expression of a top_users metric over usage_customer (u) or _usage_window (a).';

-- The customers with logs not folded in yet in the days [d0, d1) that can
-- reach the threshold (see top_users): those whose all-time value, plus
-- the most that any one customer has pending in the window, reaches it (an
-- index range scan of usage_customer joined to the pending customers).  A
-- customer's value over the window is at most its folded all-time value
-- plus its own pending value.
CREATE FUNCTION analytics._top_users_near(d0 date, d1 date, metric text, threshold numeric)
RETURNS text[] LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    near text[];
BEGIN
    EXECUTE format(
        'WITH p AS MATERIALIZED ('
        '       SELECT p.customer_identifier, sum(%s) AS v '
        '         FROM analytics._usage_customer_day_pending p '
        '        WHERE p.day >= $1 AND p.day < $2 '
        '        GROUP BY p.customer_identifier) '
        'SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
        '              WHERE %s >= ($3 - (SELECT coalesce(max(p.v), 0) FROM p))::%s '
        '                AND u.customer_identifier IN (SELECT p.customer_identifier FROM p))',
        CASE metric WHEN 'cost' THEN 'p.cost' WHEN 'requests' THEN 'p.requests'
                    ELSE 'p.prompt_tokens + p.completion_tokens' END,
        analytics._top_users_metric(metric, true),
        CASE metric WHEN 'cost' THEN 'numeric' ELSE 'bigint' END)
       INTO near USING d0, d1, threshold;
    RETURN near;
END;
$$;
COMMENT ON FUNCTION analytics._top_users_near(date, date, text, numeric) IS
    'Internal: the customers with logs not folded in yet in the days [d0, d1) that can reach the threshold of top_users.';

-- Step one of the threshold top-n (see top_users): the window values of the
-- k customers with the highest all-time value, from their folded rows; when
-- n of them are active in the window, the n-th best is the threshold T.
-- Otherwise k grows x4.  Null when every customer was taken (or k passed a
-- million) before n were found.
CREATE FUNCTION analytics._top_users_threshold(d0 date, d1 date, metric text, n integer)
RETURNS numeric LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    top text[];
    k integer := n;
    found_n bigint;
    threshold numeric;
BEGIN
    LOOP
        EXECUTE format('SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
                       'WHERE u.requests OPERATOR(pg_catalog.>) 0 ORDER BY %s DESC LIMIT $1)',
                       analytics._top_users_metric(metric, true))
           INTO top USING k;
        EXECUTE format('SELECT count(*), min(t.v) FROM (SELECT %s AS v '
                       'FROM analytics._usage_window($1, $2, $3, false) a ORDER BY 1 DESC LIMIT $4) t',
                       analytics._top_users_metric(metric, false))
           INTO found_n, threshold USING top, d0, d1, n;
        IF found_n >= n THEN
            RETURN threshold;
        END IF;
        EXIT WHEN cardinality(top) < k OR k >= 1000000;
        k := k * 4;
    END LOOP;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION analytics._top_users_threshold(date, date, text, integer) IS
    'Internal: the n-th best window value among the customers of highest all-time value (top_users'' threshold), or null.';

-- Step two: only customers whose all-time value is at least the threshold
-- (an index range scan of usage_customer) and the pending ones that can
-- reach it (near) can be in the first n rows or rank above one of them;
-- their window values, with their pending logs, ranked.
CREATE FUNCTION analytics._top_users_above(d0 date, d1 date, metric text, n integer,
                                           near text[], threshold numeric)
RETURNS TABLE (rank bigint, customer_identifier text, name text, email text,
               requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    top text[];
BEGIN
    EXECUTE format('SELECT ARRAY(SELECT u.customer_identifier FROM analytics.usage_customer u '
                   'WHERE %s >= $1::%s AND u.requests OPERATOR(pg_catalog.>) 0)',
                   analytics._top_users_metric(metric, true),
                   CASE metric WHEN 'cost' THEN 'numeric' ELSE 'bigint' END)
       INTO top USING threshold;
    -- Every candidate has a customers row (a usage_customer row), so the
    -- join can come after the LIMIT.  The ranked rows are a materialized CTE:
    -- computed first (on a cluster, on the coordinator from the window's
    -- per-customer rows) and then joined to customers.
    RETURN QUERY EXECUTE format(
        'WITH r AS MATERIALIZED ('
        '       SELECT rank() OVER (ORDER BY %s DESC) AS rank, a.customer_identifier, '
        '              a.requests, a.total_tokens, a.cost '
        '         FROM analytics._usage_window($1, $2, $3, $5) a '
        '        ORDER BY 1, a.customer_identifier '
        '        LIMIT $4) '
        'SELECT r.rank, r.customer_identifier, c.name, c.email, '
        '       r.requests, r.total_tokens, r.cost '
        '  FROM r JOIN analytics.customers c ON c.customer_identifier OPERATOR(pg_catalog.=) r.customer_identifier '
        ' ORDER BY r.rank, r.customer_identifier', analytics._top_users_metric(metric, false))
    USING top || near, d0, d1, n, true;
END;
$$;
COMMENT ON FUNCTION analytics._top_users_above(date, date, text, integer, text[], numeric) IS
    'Internal: top_users ranked among the customers whose all-time value reaches the threshold, plus the pending ones that can reach it.';

-- When every customer active in the days [d0, d1) is ranked: whether to
-- read them as all-time totals minus the rows outside the window rather
-- than from usage_customer_day in the window (_usage_window_all), whichever
-- reads fewer rows (_usage_day's active_users counts the rows of each day).
CREATE FUNCTION analytics._top_users_reads_totals(d0 date, d1 date)
RETURNS boolean LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
DECLARE
    totals numeric;
BEGIN
    SELECT greatest(r.reltuples, 0)::numeric INTO totals FROM pg_catalog.pg_class r
     WHERE r.oid OPERATOR(pg_catalog.=) 'analytics.usage_customer'::pg_catalog.regclass;
    RETURN (SELECT coalesce(sum(d.active_users) FILTER (WHERE d.day < d0 OR d.day >= d1), 0) + totals
                   < coalesce(sum(d.active_users) FILTER (WHERE d.day >= d0 AND d.day < d1), 0)
              FROM analytics._usage_day d);
END;
$$;
COMMENT ON FUNCTION analytics._top_users_reads_totals(date, date) IS
    'Internal: whether ranking every customer over [d0, d1) reads fewer rows from all-time totals than from the window''s days.';

-- Window usage of every customer active in the days [d0, d1), read from
-- all-time totals minus the rows outside the window (from_totals; numeric
-- and integer sums, so the difference is exact) or from the window's rows
-- of usage_customer_day, plus the pending logs of the window either way.
-- Grouped by customer, so pushed down on a cluster.
CREATE FUNCTION analytics._usage_window_all(d0 date, d1 date, from_totals boolean)
RETURNS TABLE (customer_identifier text, requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
BEGIN
    IF from_totals THEN
        RETURN QUERY
        SELECT a.customer_identifier, a.requests, a.total_tokens, a.cost
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
                               FROM analytics._usage_customer_day_pending q
                              WHERE q.day >= d0 AND q.day < d1
                              GROUP BY q.customer_identifier) p
                         ON p.customer_identifier = u.customer_identifier) a
         WHERE a.requests > 0;
    ELSE
        RETURN QUERY
        SELECT u.customer_identifier,
               sum(u.requests)::bigint,
               sum(u.prompt_tokens + u.completion_tokens)::bigint,
               sum(u.cost)
          FROM analytics._usage_customer_day_live u
         WHERE u.day >= d0 AND u.day < d1
         GROUP BY u.customer_identifier;
    END IF;
END;
$$;
COMMENT ON FUNCTION analytics._usage_window_all(date, date, boolean) IS
    'Internal: requests, tokens and cost of every customer active in the days [d0, d1), from all-time totals minus the rows outside or from the window''s rows.';

-- Window usage of the given customers: their usage_customer_day rows and,
-- when with_pending, their pending logs of the days in [d0, d1), one row
-- per customer with any, grouped by customer (pushed down on a cluster).
-- By the primary key of usage_customer_day (one descent per customer).  A
-- false with_pending skips reading the pending logs (a one-time filter).
CREATE OR REPLACE FUNCTION analytics._usage_window(customers text[], d0 date, d1 date,
                                        with_pending boolean)
RETURNS TABLE (customer_identifier text, requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
BEGIN
    IF NOT with_pending THEN
        -- Two statements, not a constant-false branch: Citus on PostgreSQL
        -- 15 refuses an outer join next to a pseudoconstant qual.
        RETURN QUERY
        SELECT x.customer_identifier, sum(x.requests)::bigint,
               sum(x.prompt_tokens + x.completion_tokens)::bigint, sum(x.cost)
          FROM analytics.usage_customer_day x
         WHERE x.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
           AND x.day >= d0 AND x.day < d1
         GROUP BY x.customer_identifier;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT w.customer_identifier, sum(w.requests)::bigint, sum(w.total_tokens)::bigint, sum(w.cost)
      FROM (SELECT x.customer_identifier, x.requests,
                   x.prompt_tokens + x.completion_tokens AS total_tokens, x.cost
              FROM analytics.usage_customer_day x
             WHERE x.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
               AND x.day >= d0 AND x.day < d1
            UNION ALL
            SELECT p.customer_identifier, p.requests,
                   p.prompt_tokens + p.completion_tokens, p.cost
              FROM analytics._usage_customer_day_pending p
             WHERE p.customer_identifier OPERATOR(pg_catalog.=) ANY (customers)
               AND p.day >= d0 AND p.day < d1) w
     GROUP BY w.customer_identifier;
END;
$$;
COMMENT ON FUNCTION analytics._usage_window(text[], date, date, boolean) IS
    'Internal: requests, tokens and cost of the given customers over the days in [d0, d1), rollups plus (with_pending) the pending logs.';

-- Customers ranked by a metric over the days overlapping [since, until).
--
-- With n given, the threshold algorithm (exact): a customer's all-time
-- value (usage_customer, indexed by each metric) bounds its value over
-- any window, every metric being a sum of non-negative numbers.  Take the k
-- customers with the highest all-time values and compute their window
-- values from their folded rows (at most their true values); if n of them
-- are active in the window, the n-th best value T is a lower bound of the
-- n-th best overall (_top_users_threshold), so only customers whose
-- all-time value is at least T, and customers with pending logs whose
-- all-time value plus the largest pending value of a customer reaches T
-- (_top_users_near), can be in the first n rows or rank above one of them;
-- their window values with their pending logs are ranked
-- (_top_users_above).  A row's rank counts the
-- customers with a strictly higher value, all of which are candidates; ties
-- at the n-th value are all candidates too, so the order by
-- customer_identifier among them is the same.  When every customer was
-- taken before n were found, or n is null, every customer active in the
-- window is ranked (_top_users_reads_totals picks how).  One snapshot for
-- every statement (STABLE): the rollups, the watermark and the zone agree.
CREATE OR REPLACE FUNCTION analytics.top_users(since timestamptz, until timestamptz,
                                    metric text DEFAULT 'cost', n integer DEFAULT 10)
RETURNS TABLE (rank bigint, customer_identifier text, name text, email text,
               requests bigint, total_tokens bigint, cost numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, analytics AS $$
#variable_conflict use_column
DECLARE
    d0 date;
    d1 date;
    threshold numeric;
    from_totals boolean;
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
    SELECT w.d0, w.d1 INTO d0, d1 FROM analytics._window_days(since, until) w;
    IF n IS NOT NULL THEN
        -- The threshold from the folded rows alone: the n-th best window
        -- value of customers read without their pending logs is at most the
        -- true one, so it bounds the rows to rank; the pending customers
        -- are ranked only when they can reach it (_top_users_near).
        threshold := analytics._top_users_threshold(d0, d1, metric, n);
        IF threshold IS NOT NULL THEN
            RETURN QUERY SELECT * FROM analytics._top_users_above(
                d0, d1, metric, n, analytics._top_users_near(d0, d1, metric, threshold), threshold);
            RETURN;
        END IF;
    END IF;
    from_totals := analytics._top_users_reads_totals(d0, d1);
    -- Ranked first (a materialized CTE), then joined to customers.
    RETURN QUERY
    WITH r AS MATERIALIZED (
        SELECT rank() OVER (ORDER BY CASE metric WHEN 'cost' THEN a.cost
                                                 WHEN 'requests' THEN a.requests
                                                 ELSE a.total_tokens END DESC) AS rank,
               a.customer_identifier, a.requests, a.total_tokens, a.cost
          FROM analytics._usage_window_all(d0, d1, from_totals) a
         ORDER BY 1, a.customer_identifier
         LIMIT n)
    SELECT r.rank, r.customer_identifier, c.name, c.email, r.requests, r.total_tokens, r.cost
      FROM r JOIN analytics.customers c ON c.customer_identifier = r.customer_identifier
     ORDER BY r.rank, r.customer_identifier;
END;
$$;
COMMENT ON FUNCTION analytics.top_users(timestamptz, timestamptz, text, integer) IS
    'The n customers with the most cost, requests or tokens over the calendar days (rollup time zone) overlapping [since, until); null n means all.';

-- For BI tools: whether a day, week or month is still going on
-- (is_partial), and the column types a driver should expect, in the COMMENTs.
CREATE OR REPLACE VIEW analytics.daily_active_users AS
SELECT g.day, g.active_users, g.requests, g.cost,
       g.day >= (SELECT (now() AT TIME ZONE s.timezone)::date
                   FROM analytics.rollup_state s) AS is_partial
  FROM (SELECT a.day,
               sum(a.active_users)::bigint AS active_users,
               sum(a.requests)::bigint AS requests,
               sum(a.cost) AS cost
          FROM (SELECT d.customer_identifier, d.day, d.active_users, d.requests, d.cost
                  FROM analytics._usage_day d
                UNION ALL
                SELECT p.customer_identifier, p.day, p.new_day::integer, p.requests, p.cost
                  FROM analytics._usage_customer_day_pending p) a
         GROUP BY a.day) g;
COMMENT ON VIEW analytics.daily_active_users IS
    'Per calendar day (rollup time zone) with any log: distinct customers, requests and cost, and whether the day is still going on (is_partial). Filter on day. Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON COLUMN analytics.daily_active_users.is_partial IS 'True for the current day in the rollup time zone (and a later one): the day is not over and its figures still grow.';

COMMENT ON VIEW analytics.users IS
    'The Users page: one row per customer, including customers with no logs, with usage over all time (real time: rollups plus pending logs). Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON VIEW analytics.top_users IS
    'The 10 customers with the highest cost in the last 30 calendar days (today and the 29 before, rollup time zone), in (rank, customer_identifier) order; analytics.top_users(since, until, metric, n) gives other windows, metrics and counts. Names need not be unique: key on customer_identifier. Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON VIEW analytics.cost_by_user IS
    'LLM usage per calendar day (rollup time zone) and customer. Filter on day and customer_identifier. Counts are bigint (they can pass 2^31) and USD amounts numeric (exact sums); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';
COMMENT ON VIEW analytics.logs_with_customer IS
    'Each log with its customer''s name, email and metadata (the log detail side panel). The id is bigint and cost numeric (exact, as sent); drivers without a native 64-bit integer or decimal type, node-postgres among them, return both as strings.';

-- active_users returns one more column: a new function (its grant is in
-- the roles section below).
DROP FUNCTION analytics.active_users(timestamptz, timestamptz, text);
-- Distinct customers per day, week (ISO, from Monday) or month: days from
-- daily_active_users, weeks and months counted distinct over
-- usage_customer_day and the pending logs.  A bucket is partial unless all
-- its days are over (before today in the rollup time zone) and inside the
-- window: the current day, week or month, and a first or last bucket that
-- the window cuts.
CREATE FUNCTION analytics.active_users(since timestamptz, until timestamptz,
                                       bucket text DEFAULT 'day')
RETURNS TABLE (bucket_start date, active_users bigint, requests bigint, cost numeric,
               is_partial boolean)
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
    SELECT w.d0, w.d1 INTO d0, d1 FROM analytics._window_days(since, until) w;
    IF bucket = 'day' THEN
        -- A day inside the window is partial only while it is not over.
        RETURN QUERY
        SELECT a.day, a.active_users, a.requests, a.cost, a.is_partial
          FROM analytics.daily_active_users a
         WHERE a.day >= d0 AND a.day < d1
         ORDER BY 1;
        RETURN;
    END IF;
    -- Distinct (bucket, customer) pairs first (a hash aggregate), then
    -- counted per bucket.
    RETURN QUERY
    SELECT g.b, count(*), sum(g.requests)::bigint, sum(g.cost),
           g.b < d0 OR (g.b + ('1 ' || bucket)::interval)::date
                       > least(d1, (SELECT (now() AT TIME ZONE s.timezone)::date
                                      FROM analytics.rollup_state s))
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
    'Distinct customers, requests and cost per day, week (from Monday) or month, over the calendar days (rollup time zone) overlapping [since, until); buckets without logs are left out. is_partial is true for a bucket whose figures are not final or not whole: it holds today (rollup time zone) or a later day, or the window leaves out some of its days. Counts are bigint and cost numeric (exact; node-postgres returns both as strings).';

CREATE OR REPLACE FUNCTION analytics.replace_on_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    replaced bigint;
BEGIN
    -- On a Citus node the trigger fires on a shard, <table>_<shardid>:
    -- update the relation the row goes to.
    IF pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') OPERATOR(pg_catalog.=) 'model_prices' THEN
        EXECUTE pg_catalog.format('UPDATE %I.%I SET (prompt_per_million, completion_per_million, '
                                  'cached_prompt_per_million, cache_write_per_million) '
                                  '= ($1.prompt_per_million, $1.completion_per_million, '
                                  '$1.cached_prompt_per_million, $1.cache_write_per_million) '
                                  'WHERE model OPERATOR(pg_catalog.=) $1.model',
                                  TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW;
    ELSIF pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') OPERATOR(pg_catalog.=) 'rollup_state' THEN
        EXECUTE pg_catalog.format('UPDATE %I.%I SET (watermark, last_pass, last_pass_folded, timezone, '
                                  'retained_from, last_error, last_error_at) '
                                  '= ($1.watermark, $1.last_pass, $1.last_pass_folded, $1.timezone, '
                                  '$1.retained_from, $1.last_error, $1.last_error_at) WHERE singleton',
                                  TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW;
    ELSIF pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '') OPERATOR(pg_catalog.=) 'usage_customer' THEN
        -- Only the row of zeros that the customer's insert added (its
        -- first_seen is null): replacing it adds the new row to zeros.
        EXECUTE pg_catalog.format('UPDATE %I.%I SET (requests, errors, prompt_tokens, completion_tokens, '
                                  'cost, latency_sum, latency_count, ttft_sum, ttft_count, first_seen, '
                                  'last_seen, active_days, cached_tokens) '
                                  '= ($1.requests, $1.errors, $1.prompt_tokens, $1.completion_tokens, '
                                  '$1.cost, $1.latency_sum, $1.latency_count, $1.ttft_sum, $1.ttft_count, '
                                  '$1.first_seen, $1.last_seen, $1.active_days, $1.cached_tokens) '
                                  'WHERE customer_identifier OPERATOR(pg_catalog.=) $1.customer_identifier '
                                  'AND first_seen IS NULL',
                                  TG_TABLE_SCHEMA, TG_TABLE_NAME) USING NEW;
    ELSE
        RAISE EXCEPTION 'replace_on_insert is not meant for table %', TG_TABLE_NAME;
    END IF;
    GET DIAGNOSTICS replaced = ROW_COUNT;
    IF replaced > 0 THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

-- Budgets: billed cost has one definition, the C function the insert
-- trigger compares budgets with (src/budget.c).
CREATE OR REPLACE FUNCTION analytics._budget_billed(raw numeric, markup numeric)
RETURNS numeric AS 'MODULE_PATHNAME', 'budget_billed'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Scale-out on Citus (SPEC §9): the administrative functions' node
-- variants, the taken-over shards, the ids of logs written on a Citus
-- node, analytics.distribute().
-- Their node variants (rollup_admin.c): on a Citus cluster the functions
-- above run these on every node, each on the node's own shards.
CREATE FUNCTION analytics._purge_logs_node(older_than timestamptz) RETURNS bigint
    AS 'MODULE_PATHNAME', 'rollup_purge_logs_node' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics._purge_logs_node(timestamptz) IS
    'Internal: purge_logs() on this node''s logs shards (Citus).';
CREATE FUNCTION analytics._delete_customer_node(customer_identifier text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'rollup_delete_customer_node' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics._delete_customer_node(text) IS
    'Internal: delete_customer() on this node (Citus); false when the customer''s shard is on another node.';
CREATE FUNCTION analytics._set_timezone_node(timezone text) RETURNS void
    AS 'MODULE_PATHNAME', 'rollup_set_timezone_node' LANGUAGE C VOLATILE
    SET search_path = pg_catalog, analytics;
COMMENT ON FUNCTION analytics._set_timezone_node(text) IS
    'Internal: set_timezone() on this node''s shards and rollup state (Citus).';

-- On a Citus cluster: the time zone and retention boundary every node
-- folds with (a reference table: a copy on every node, nodes added later
-- included).  Written by distribute(), set_timezone() and purge_logs()
-- through the coordinator; a node copies it into its own rollup_state
-- before it takes over its first shard.  Empty on a single node.
CREATE TABLE analytics.rollup_settings (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT one_row CHECK (singleton),
    timezone text NOT NULL,
    retained_from timestamptz
);
COMMENT ON TABLE analytics.rollup_settings IS 'On a Citus cluster: the rollup time zone and retention boundary of every node (one row; a reference table). Empty on a single node.';
COMMENT ON COLUMN analytics.rollup_settings.singleton IS 'Always true: the table has at most one row.';
COMMENT ON COLUMN analytics.rollup_settings.timezone IS 'The rollup time zone of the cluster (analytics.set_timezone).';
COMMENT ON COLUMN analytics.rollup_settings.retained_from IS 'The retention boundary of the cluster (analytics.purge_logs); see rollup_state.retained_from.';
SELECT pg_catalog.pg_extension_config_dump('analytics.rollup_settings', '');

-- On a Citus node (analytics.distribute()): the logs shards this node's
-- fold has taken over (rollup.c, rollup_take_over).  A shard that arrives
-- (distribute() itself, or a shard move) holds logs drawn on another node,
-- whose fold state stayed there: the first pass that sees it rebuilds its
-- rollups from its raw logs, then lists it here.  Node-local and derived:
-- not dumped (a restored node rebuilds each shard once).
CREATE TABLE analytics.rollup_node_shards (
    shardid bigint PRIMARY KEY,
    relid oid NOT NULL,
    taken_over timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE analytics.rollup_node_shards IS 'On a Citus node: the logs shards whose rollups this node''s fold keeps (rebuilt from their raw logs when each arrived). Empty on a single node.';
COMMENT ON COLUMN analytics.rollup_node_shards.shardid IS 'Citus shard id of a logs shard placed on this node.';
COMMENT ON COLUMN analytics.rollup_node_shards.relid IS 'The shard''s relation when taken over: a shard that left and came back is a new relation, taken over again.';
COMMENT ON COLUMN analytics.rollup_node_shards.taken_over IS 'When this node rebuilt the shard''s rollups and began folding it.';

-- The ids of logs written on a Citus node: drawn by the insert trigger on
-- the node that holds the shard (src/shards.c), below the node's group id.
-- Not used on a single node, where the identity of analytics.logs draws
-- them.  CACHE 1, as the fold reads its last value.
CREATE SEQUENCE analytics.log_ids AS bigint MAXVALUE 281474976710655 CACHE 1;
COMMENT ON SEQUENCE analytics.log_ids IS
    'Ids of logs written on this Citus node (the node''s group id is added above bit 48); unused on a single node.';
SELECT pg_catalog.pg_extension_config_dump('analytics.log_ids', '');

-- Run a statement on every worker node (each in a transaction of its
-- own); raise the first failure.
CREATE FUNCTION analytics._on_workers(command text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    r record;
BEGIN
    -- The node's own objects: Citus would refuse the DDL on a worker.
    FOR r IN SELECT * FROM pg_catalog.run_command_on_workers(
                 'SET citus.enable_ddl_propagation TO off; ' OPERATOR(pg_catalog.||) command) LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'analytics.distribute() failed on node %:%', r.nodename, r.nodeport
                USING DETAIL = r.result;
        END IF;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION analytics._on_workers(text) IS
    'Internal: runs a statement on every Citus worker node, raising the first failure (distribute()).';

CREATE FUNCTION analytics.distribute(shard_count integer DEFAULT 32) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    t text;
    view text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'analytics.distribute() needs Citus'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'The citus extension is not installed in this database.',
                  HINT = 'Preload citus before analytics (shared_preload_libraries = ''citus,analytics''), CREATE EXTENSION citus, add the worker nodes, then call analytics.distribute() on the coordinator.';
    END IF;
    IF shard_count IS NULL OR shard_count OPERATOR(pg_catalog.<) 1
       OR shard_count OPERATOR(pg_catalog.>) 1024 THEN
        PERFORM analytics._argument_error('shard_count', shard_count::text, 'an integer from 1 to 1024');
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'analytics.distribute() runs on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator of the Citus cluster.';
    END IF;
    -- The triggers of the extension must run on the shards.
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.model_prices'::pg_catalog.regclass) THEN
        PERFORM pg_catalog.create_reference_table('analytics.model_prices');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.customers'::pg_catalog.regclass) THEN
        PERFORM pg_catalog.create_distributed_table('analytics.customers', 'customer_identifier',
                                                    shard_count => shard_count, colocate_with => 'none');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.logs'::pg_catalog.regclass) THEN
        -- Citus needs the distribution column in every unique key; the
        -- fold reads logs by id.
        -- Citus routes no NULL: logs without a customer go under ''.
        ALTER TABLE analytics.logs DISABLE TRIGGER logs_guard_update;
        UPDATE analytics.logs SET customer_identifier = ''
         WHERE customer_identifier IS NULL;
        ALTER TABLE analytics.logs ENABLE TRIGGER logs_guard_update;
        ALTER TABLE analytics.logs DROP CONSTRAINT logs_pkey;
        ALTER TABLE analytics.logs ADD CONSTRAINT logs_pkey PRIMARY KEY (customer_identifier, id);
        CREATE INDEX logs_id ON analytics.logs (id);
        -- Citus routes no NULL: a log without a customer is stored under
        -- '' (src/shards.c); a COPY that leaves the column out gets it too.
        ALTER TABLE analytics.logs ALTER COLUMN customer_identifier SET DEFAULT '';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.rollup_set_aside'::pg_catalog.regclass) THEN
        ALTER TABLE analytics.rollup_set_aside DROP CONSTRAINT rollup_set_aside_pkey;
        ALTER TABLE analytics.rollup_set_aside
            ADD CONSTRAINT rollup_set_aside_pkey PRIMARY KEY (customer_identifier, log_id);
    END IF;
    -- Every node folds with the time zone and retention boundary of this
    -- one: a node takes them from this reference table before it takes
    -- over its first shard (rollup.c).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.rollup_settings'::pg_catalog.regclass) THEN
        INSERT INTO analytics.rollup_settings (timezone, retained_from)
        SELECT s.timezone, s.retained_from FROM analytics.rollup_state s;
        PERFORM pg_catalog.create_reference_table('analytics.rollup_settings');
    END IF;
    FOREACH t IN ARRAY ARRAY['logs', 'budget_counters', 'usage_daily', 'usage_customer_day',
                             'usage_customer', 'rollup_set_aside', 'admissions',
                             'budget_events'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                        WHERE logicalrelid OPERATOR(pg_catalog.=) ('analytics.' OPERATOR(pg_catalog.||) t)::pg_catalog.regclass) THEN
            IF t OPERATOR(pg_catalog.=) 'logs' THEN
                -- The logs already recorded were checked, priced and
                -- budgeted when they came, and keep their ids: Citus copies
                -- them into the shards with the insert trigger set aside.
                -- Fold them first, so that the rollups copied with them
                -- count them all (each node's first pass then rebuilds its
                -- shards' rollups from them, rollup.c).
                LOCK TABLE analytics.logs IN EXCLUSIVE MODE;
                PERFORM analytics.rollup_now();
                -- With every writer gone, every gap is settled: its logs
                -- that committed were folded just now.
                DELETE FROM analytics.rollup_gaps;
                ALTER TABLE analytics.logs DISABLE TRIGGER logs_before_insert;
            END IF;
            PERFORM pg_catalog.create_distributed_table('analytics.' OPERATOR(pg_catalog.||) t,
                                                        'customer_identifier',
                                                        colocate_with => 'analytics.customers');
            IF t OPERATOR(pg_catalog.=) 'logs' THEN
                ALTER TABLE analytics.logs ENABLE TRIGGER logs_before_insert;
            END IF;
        END IF;
    END LOOP;

    -- The views: usage_day is node-local and not kept on a cluster, so the
    -- per-day totals are read from usage_customer_day (41_rollup_pending.sql),
    -- on the coordinator and on every worker (a query may enter anywhere).
    view := $view$
    CREATE OR REPLACE VIEW analytics._usage_day AS
    SELECT x.customer_identifier, x.day, 1::pg_catalog.int8 AS active_users,
           -- rollup columns: list per_day x last
           x.requests,
           x.errors,
           x.prompt_tokens,
           x.completion_tokens,
           x.cost
           -- end rollup columns
      FROM analytics.usage_customer_day x
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
END;
$$;
COMMENT ON FUNCTION analytics.distribute(integer) IS
    'Shards the per-customer tables by customer_identifier on a Citus cluster (co-located with customers) and makes model_prices a reference table; idempotent; on the coordinator.';

-- Issue 15: WAU/MAU gap counters
--
-- usage_day_gaps (40_rollup.sql), kept by the fold (rollup.c), the deletion
-- trigger of usage_customer_day and the rebuild; active_users reads it for
-- weeks and months on a single node (50_views.sql); distribute() marks a
-- cluster, where it is not kept (70_distribute.sql).
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

CREATE OR REPLACE FUNCTION analytics._usage_customer_day_deleted() RETURNS trigger
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

CREATE OR REPLACE FUNCTION analytics._rollup_rebuild_summaries() RETURNS void
LANGUAGE sql SET search_path = pg_catalog, analytics AS $$
DELETE FROM analytics.usage_day;
-- Emptied first: the deletion trigger of usage_customer_day then leaves it.
DELETE FROM analytics.usage_day_gaps;
DELETE FROM analytics.usage_customer_day;
DELETE FROM analytics.usage_customer;
INSERT INTO analytics.usage_customer_day (
    customer_identifier, day,
    -- rollup columns: list per_day - last
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost
    -- end rollup columns
)
SELECT d.customer_identifier, d.day,
       -- rollup columns: merge per_day d last
       pg_catalog.sum(d.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(d.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(d.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(d.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(d.cost) AS cost
       -- end rollup columns
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier, d.day;
INSERT INTO analytics.usage_day (
    day, active_users,
    -- rollup columns: list per_day - last
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost
    -- end rollup columns
)
SELECT x.day, pg_catalog.count(*),
       -- rollup columns: merge per_day x last
       pg_catalog.sum(x.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(x.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(x.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(x.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(x.cost) AS cost
       -- end rollup columns
  FROM analytics.usage_customer_day x
 GROUP BY x.day;
INSERT INTO analytics.usage_day_gaps (day, prev_day, customers)
SELECT g.day, g.prev_day, pg_catalog.count(*)
  FROM (SELECT x.day,
               COALESCE(pg_catalog.lag(x.day) OVER (PARTITION BY x.customer_identifier ORDER BY x.day),
                        '-infinity'::pg_catalog.date) AS prev_day
          FROM analytics.usage_customer_day x) g
 GROUP BY g.day, g.prev_day;
INSERT INTO analytics.usage_customer (
    customer_identifier,
    -- rollup columns: list all -
    requests,
    errors,
    prompt_tokens,
    completion_tokens,
    cost,
    latency_sum,
    latency_count,
    ttft_sum,
    ttft_count,
    first_seen,
    last_seen,
    cached_tokens,
    -- end rollup columns
    active_days
)
SELECT d.customer_identifier,
       -- rollup columns: merge all d
       pg_catalog.sum(d.requests)::pg_catalog.int8 AS requests,
       pg_catalog.sum(d.errors)::pg_catalog.int8 AS errors,
       pg_catalog.sum(d.prompt_tokens)::pg_catalog.int8 AS prompt_tokens,
       pg_catalog.sum(d.completion_tokens)::pg_catalog.int8 AS completion_tokens,
       pg_catalog.sum(d.cost) AS cost,
       pg_catalog.sum(d.latency_sum) AS latency_sum,
       pg_catalog.sum(d.latency_count)::pg_catalog.int8 AS latency_count,
       pg_catalog.sum(d.ttft_sum) AS ttft_sum,
       pg_catalog.sum(d.ttft_count)::pg_catalog.int8 AS ttft_count,
       pg_catalog.min(d.first_seen) AS first_seen,
       pg_catalog.max(d.last_seen) AS last_seen,
       pg_catalog.sum(d.cached_tokens)::pg_catalog.int8 AS cached_tokens,
       -- end rollup columns
       pg_catalog.count(DISTINCT d.day)
  FROM analytics.usage_daily d
 GROUP BY d.customer_identifier;
INSERT INTO analytics.usage_customer (customer_identifier)
SELECT c.customer_identifier
  FROM analytics.customers c
 WHERE NOT EXISTS (SELECT 1 FROM analytics.usage_customer u
                    WHERE u.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier);
$$;
COMMENT ON FUNCTION analytics._rollup_rebuild_summaries() IS
    'Internal: rebuilds usage_customer_day, usage_day, usage_day_gaps and usage_customer from usage_daily (usage_customer with a row of zeros for each customer without logs).';

CREATE VIEW analytics._day_gaps_kept AS SELECT true AS kept;
COMMENT ON VIEW analytics._day_gaps_kept IS
    'Internal: whether usage_day_gaps is kept on this node (false on a Citus cluster).';
COMMENT ON COLUMN analytics._day_gaps_kept.kept IS 'True on a single node, false after analytics.distribute().';

CREATE OR REPLACE FUNCTION analytics.active_users(since timestamptz, until timestamptz,
                                       bucket text DEFAULT 'day')
RETURNS TABLE (bucket_start date, active_users bigint, requests bigint, cost numeric,
               is_partial boolean)
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
    SELECT w.d0, w.d1 INTO d0, d1 FROM analytics._window_days(since, until) w;
    IF bucket = 'day' THEN
        -- A day inside the window is partial only while it is not over.
        RETURN QUERY
        SELECT a.day, a.active_users, a.requests, a.cost, a.is_partial
          FROM analytics.daily_active_users a
         WHERE a.day >= d0 AND a.day < d1
         ORDER BY 1;
        RETURN;
    END IF;
    IF (SELECT k.kept FROM analytics._day_gaps_kept k) THEN
        -- The buckets with a day of usage_day or of pending logs in the
        -- window (usage_day has a row per day with a folded log), each
        -- clipped to it.
        RETURN QUERY
        WITH b AS MATERIALIZED (
            SELECT k.b, greatest(k.b, d0) AS a, least((k.b + ('1 ' || bucket)::interval)::date, d1) AS e
              FROM (SELECT DISTINCT date_trunc(bucket, x.day::timestamp)::date AS b
                      FROM (SELECT d.day FROM analytics.usage_day d
                             WHERE d.day >= d0 AND d.day < d1
                            UNION
                            SELECT p.day FROM analytics._usage_customer_day_pending p
                             WHERE p.day >= d0 AND p.day < d1) x) k),
        p AS MATERIALIZED (
            SELECT q.customer_identifier, q.day, q.requests, q.cost
              FROM analytics._usage_customer_day_pending q
             WHERE q.day >= d0 AND q.day < d1)
        SELECT b.b,
               coalesce((SELECT sum(g.customers) FROM analytics.usage_day_gaps g
                          WHERE g.day >= b.a AND g.day < b.e AND g.prev_day < b.a), 0)::bigint
               + (SELECT count(DISTINCT p.customer_identifier) FROM p
                   WHERE p.day >= b.a AND p.day < b.e
                     AND NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day x
                                      WHERE x.customer_identifier = p.customer_identifier
                                        AND x.day >= b.a AND x.day < b.e)),
               (coalesce((SELECT sum(d.requests) FROM analytics.usage_day d
                           WHERE d.day >= b.a AND d.day < b.e), 0)
                + coalesce((SELECT sum(p.requests) FROM p WHERE p.day >= b.a AND p.day < b.e), 0))::bigint,
               coalesce((SELECT sum(d.cost) FROM analytics.usage_day d
                          WHERE d.day >= b.a AND d.day < b.e), 0)
               + coalesce((SELECT sum(p.cost) FROM p WHERE p.day >= b.a AND p.day < b.e), 0),
               b.b < d0 OR (b.b + ('1 ' || bucket)::interval)::date
                           > least(d1, (SELECT (now() AT TIME ZONE s.timezone)::date
                                          FROM analytics.rollup_state s))
          FROM b
         ORDER BY 1;
        RETURN;
    END IF;
    -- On a cluster: distinct (bucket, customer) pairs first (a hash
    -- aggregate), then counted per bucket.
    RETURN QUERY
    SELECT g.b, count(*), sum(g.requests)::bigint, sum(g.cost),
           g.b < d0 OR (g.b + ('1 ' || bucket)::interval)::date
                       > least(d1, (SELECT (now() AT TIME ZONE s.timezone)::date
                                      FROM analytics.rollup_state s))
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
    'Distinct customers, requests and cost per day, week (from Monday) or month, over the calendar days (rollup time zone) overlapping [since, until); buckets without logs are left out. is_partial is true for a bucket whose figures are not final or not whole: it holds today (rollup time zone) or a later day, or the window leaves out some of its days. Counts are bigint and cost numeric (exact; node-postgres returns both as strings).';

CREATE OR REPLACE FUNCTION analytics.distribute(shard_count integer DEFAULT 32) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, analytics AS $$
DECLARE
    t text;
    view text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'analytics.distribute() needs Citus'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'The citus extension is not installed in this database.',
                  HINT = 'Preload citus before analytics (shared_preload_libraries = ''citus,analytics''), CREATE EXTENSION citus, add the worker nodes, then call analytics.distribute() on the coordinator.';
    END IF;
    IF shard_count IS NULL OR shard_count OPERATOR(pg_catalog.<) 1
       OR shard_count OPERATOR(pg_catalog.>) 1024 THEN
        PERFORM analytics._argument_error('shard_count', shard_count::text, 'an integer from 1 to 1024');
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'analytics.distribute() runs on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator of the Citus cluster.';
    END IF;
    -- The triggers of the extension must run on the shards.
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.logs'::pg_catalog.regclass) THEN
        -- Fold every log recorded so far, before any table is distributed
        -- (the single-node fold reads customers with the logs, which
        -- Citus cannot plan once one of them is distributed), so that the
        -- rollups copied with the logs count them all (each node's first
        -- pass then rebuilds its shards' rollups from them, rollup.c).  No
        -- writer may add one until the logs are distributed.
        LOCK TABLE analytics.logs IN EXCLUSIVE MODE;
        PERFORM analytics.rollup_now();
        -- With every writer gone, every gap is settled: its logs that
        -- committed were folded just now.
        DELETE FROM analytics.rollup_gaps;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.model_prices'::pg_catalog.regclass) THEN
        PERFORM pg_catalog.create_reference_table('analytics.model_prices');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.customers'::pg_catalog.regclass) THEN
        -- The customers already there have their usage_customer row (and
        -- their budget events): Citus copies them with the insert triggers
        -- set aside.
        ALTER TABLE analytics.customers DISABLE TRIGGER usage_customer_created;
        ALTER TABLE analytics.customers DISABLE TRIGGER budget_customer_created_blocked;
        PERFORM pg_catalog.create_distributed_table('analytics.customers', 'customer_identifier',
                                                    shard_count => shard_count, colocate_with => 'none');
        ALTER TABLE analytics.customers ENABLE TRIGGER usage_customer_created;
        ALTER TABLE analytics.customers ENABLE TRIGGER budget_customer_created_blocked;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.logs'::pg_catalog.regclass) THEN
        -- Citus needs the distribution column in every unique key; the
        -- fold reads logs by id.
        -- Citus routes no NULL: logs without a customer go under ''.
        ALTER TABLE analytics.logs DISABLE TRIGGER logs_guard_update;
        UPDATE analytics.logs SET customer_identifier = ''
         WHERE customer_identifier IS NULL;
        ALTER TABLE analytics.logs ENABLE TRIGGER logs_guard_update;
        ALTER TABLE analytics.logs DROP CONSTRAINT logs_pkey;
        ALTER TABLE analytics.logs ADD CONSTRAINT logs_pkey PRIMARY KEY (customer_identifier, id);
        CREATE INDEX logs_id ON analytics.logs (id);
        -- Citus routes no NULL: a log without a customer is stored under
        -- '' (src/shards.c); a COPY that leaves the column out gets it too.
        ALTER TABLE analytics.logs ALTER COLUMN customer_identifier SET DEFAULT '';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.rollup_set_aside'::pg_catalog.regclass) THEN
        ALTER TABLE analytics.rollup_set_aside DROP CONSTRAINT rollup_set_aside_pkey;
        ALTER TABLE analytics.rollup_set_aside
            ADD CONSTRAINT rollup_set_aside_pkey PRIMARY KEY (customer_identifier, log_id);
    END IF;
    -- Every node folds with the time zone and retention boundary of this
    -- one: a node takes them from this reference table before it takes
    -- over its first shard (rollup.c).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.rollup_settings'::pg_catalog.regclass) THEN
        INSERT INTO analytics.rollup_settings (timezone, retained_from)
        SELECT s.timezone, s.retained_from FROM analytics.rollup_state s;
        PERFORM pg_catalog.create_reference_table('analytics.rollup_settings');
    END IF;
    FOREACH t IN ARRAY ARRAY['logs', 'budget_counters', 'usage_daily', 'usage_customer_day',
                             'usage_customer', 'rollup_set_aside', 'admissions',
                             'budget_events'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                        WHERE logicalrelid OPERATOR(pg_catalog.=) ('analytics.' OPERATOR(pg_catalog.||) t)::pg_catalog.regclass) THEN
            IF t OPERATOR(pg_catalog.=) 'logs' THEN
                -- The logs already recorded were checked, priced and
                -- budgeted when they came, and keep their ids: Citus copies
                -- them into the shards with the insert trigger set aside
                -- (they were folded first, above).
                ALTER TABLE analytics.logs DISABLE TRIGGER logs_before_insert;
            END IF;
            PERFORM pg_catalog.create_distributed_table('analytics.' OPERATOR(pg_catalog.||) t,
                                                        'customer_identifier',
                                                        colocate_with => 'analytics.customers');
            IF t OPERATOR(pg_catalog.=) 'logs' THEN
                ALTER TABLE analytics.logs ENABLE TRIGGER logs_before_insert;
            END IF;
        END IF;
    END LOOP;

    -- The views: usage_day is node-local and not kept on a cluster, so the
    -- per-day totals are read from usage_customer_day (41_rollup_pending.sql),
    -- on the coordinator and on every worker (a query may enter anywhere).
    view := $view$
    CREATE OR REPLACE VIEW analytics._usage_day AS
    SELECT x.customer_identifier, x.day, 1::pg_catalog.int8 AS active_users,
           -- rollup columns: list per_day x last
           x.requests,
           x.errors,
           x.prompt_tokens,
           x.completion_tokens,
           x.cost
           -- end rollup columns
      FROM analytics.usage_customer_day x
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    -- Nor are the gap counters usage_day_gaps: active_users counts weeks
    -- and months over usage_customer_day (50_views.sql).
    view := $view$
    CREATE OR REPLACE VIEW analytics._day_gaps_kept AS SELECT false AS kept
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    -- analytics.users and analytics.cost_by_user in the shape Citus pushes
    -- down (50_views.sql).
    view := $view$
    CREATE OR REPLACE VIEW analytics.users AS SELECT * FROM analytics._users_on_cluster
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    view := $view$
    CREATE OR REPLACE VIEW analytics.cost_by_user AS SELECT * FROM analytics._cost_by_user_on_cluster
    $view$;
    EXECUTE view;
    PERFORM analytics._on_workers(view);
    DELETE FROM analytics.usage_day_gaps;
END;
$$;

-- Filled from usage_customer_day, as the rebuild does (a 1.0 database is
-- never distributed: distribute() came with 1.1).
INSERT INTO analytics.usage_day_gaps (day, prev_day, customers)
SELECT g.day, g.prev_day, pg_catalog.count(*)
  FROM (SELECT x.day,
               COALESCE(pg_catalog.lag(x.day) OVER (PARTITION BY x.customer_identifier ORDER BY x.day),
                        '-infinity'::pg_catalog.date) AS prev_day
          FROM analytics.usage_customer_day x) g
 GROUP BY g.day, g.prev_day;

-- Issue 15: the Users page and cost_by_user read in the order of an index
-- (40_rollup.sql, 50_views.sql): a usage_customer row for every customer,
-- zeros without logs, and the indexes of the sort orders.
ALTER TABLE analytics.usage_customer ALTER COLUMN first_seen DROP NOT NULL,
                                     ALTER COLUMN last_seen DROP NOT NULL;
COMMENT ON COLUMN analytics.usage_customer.first_seen IS 'Earliest created_at; null without logs.';
COMMENT ON COLUMN analytics.usage_customer.last_seen IS 'Latest created_at; null without logs.';
COMMENT ON TABLE analytics.usage_customer IS 'Usage per customer over all time: usage_daily summed per customer, folded in with it; one row per customer, zeros without logs.';
INSERT INTO analytics.usage_customer (customer_identifier)
SELECT c.customer_identifier
  FROM analytics.customers c
 WHERE NOT EXISTS (SELECT 1 FROM analytics.usage_customer u
                    WHERE u.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier);
DROP INDEX analytics.usage_customer_cost;
DROP INDEX analytics.usage_customer_requests;
DROP INDEX analytics.usage_customer_tokens;
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
-- The costliest (day, customer) rows of analytics.cost_by_user first.
CREATE INDEX usage_customer_day_cost ON analytics.usage_customer_day (cost);

COMMENT ON FUNCTION analytics.replace_on_insert() IS
    'Trigger: an INSERT of an existing model price, of the rollup state, or (in record mode) of a customer''s usage_customer row of zeros replaces the row (so dumps restore).';
-- Restoring a dump (in record mode, docs/budgets.md): the customers come
-- first and their insert adds each one a usage_customer row of zeros
-- (40_rollup.sql), which the dumped row then replaces.
CREATE TRIGGER replace_on_insert BEFORE INSERT ON analytics.usage_customer
    FOR EACH ROW WHEN (pg_catalog.current_setting('analytics.budget_enforcement') OPERATOR(pg_catalog.=) 'record')
    EXECUTE FUNCTION analytics.replace_on_insert();

-- The shapes of analytics.users and analytics.cost_by_user that a Citus
-- cluster pushes down to the shards: customers, usage_customer and the
-- pending logs per customer LEFT JOINed by customer (a shard task reads all
-- of a customer's parts); the same rows as the views above, which
-- distribute() points at these (70_distribute.sql).  The single-node shapes
-- are not planned by Citus: an uncorrelated NOT IN over distributed tables
-- becomes a subplan whose result goes to every shard, and a lateral
-- subquery with OFFSET is not pushed down.
CREATE VIEW analytics._users_on_cluster AS
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
       analytics._top_model_in(
           (SELECT pg_catalog.array_agg(d.model ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || p.models,
           (SELECT pg_catalog.array_agg(d.requests ORDER BY d.day, d.model) FROM analytics.usage_daily d
             WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) || p.model_requests)
           AS top_model,
       c.period_budget,
       c.budget_duration,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1] AS period_start,
       (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2] AS period_end,
       analytics._budget_billed(
           (SELECT coalesce(sum(l.cost), 0) FROM analytics.logs l
             WHERE l.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier
               AND l.created_at >= (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[1]
               AND l.created_at < (analytics._period_bounds(c.period_start, c.budget_duration, now(), z.timezone))[2]),
           c.markup_percentage) AS period_spend,
       c.total_budget,
       (coalesce(u.cost, 0) + coalesce(p.cost, 0)) * (1 + c.markup_percentage / 100) AS total_spend,
       c.blocked,
       coalesce(u.cached_tokens, 0) + coalesce(p.cached_tokens, 0) AS cached_tokens,
       (coalesce(u.cached_tokens, 0) + coalesce(p.cached_tokens, 0))::numeric
           / nullif(coalesce(u.prompt_tokens, 0) + coalesce(p.prompt_tokens, 0), 0) AS cache_hit_rate,
       (SELECT analytics._top_models_in(pg_catalog.array_agg(d.model) || p.models,
                                        pg_catalog.array_agg(d.requests) || p.model_requests,
                                        pg_catalog.array_agg(d.cost) || p.model_costs)
          FROM analytics.usage_daily d
         WHERE d.customer_identifier OPERATOR(pg_catalog.=) c.customer_identifier) AS top_models,
       (coalesce(u.cost, 0) + coalesce(p.cost, 0))
           / analytics._calendar_months(LEAST(u.first_seen, p.first_seen), now(), z.timezone)
           AS average_monthly_cost
  FROM analytics.customers c
 CROSS JOIN (SELECT s.timezone FROM analytics.rollup_state s) z
  LEFT JOIN analytics.usage_customer u ON u.customer_identifier = c.customer_identifier
  LEFT JOIN (SELECT g.customer_identifier,
                    min(g.first_seen) AS first_seen,
                    max(g.last_seen) AS last_seen,
                    count(DISTINCT g.day) FILTER (WHERE x.customer_identifier IS NULL) AS new_days,
                    sum(g.requests)::bigint AS requests,
                    sum(g.errors)::bigint AS errors,
                    sum(g.prompt_tokens)::bigint AS prompt_tokens,
                    sum(g.completion_tokens)::bigint AS completion_tokens,
                    sum(g.cost) AS cost,
                    sum(g.latency_sum) AS latency_sum,
                    sum(g.latency_count)::bigint AS latency_count,
                    sum(g.ttft_sum) AS ttft_sum,
                    sum(g.ttft_count)::bigint AS ttft_count,
                    sum(g.cached_tokens)::bigint AS cached_tokens,
                    array_agg(g.model) AS models,
                    array_agg(g.requests) AS model_requests,
                    array_agg(g.cost) AS model_costs
               FROM analytics._usage_pending g
               LEFT JOIN analytics.usage_customer_day x
                      ON x.customer_identifier OPERATOR(pg_catalog.=) g.customer_identifier
                     AND x.day OPERATOR(pg_catalog.=) g.day
              GROUP BY g.customer_identifier) p
         ON p.customer_identifier = c.customer_identifier;

CREATE VIEW analytics._cost_by_user_on_cluster AS
SELECT x.day, x.customer_identifier, x.requests, x.prompt_tokens, x.completion_tokens, x.cost
  FROM analytics.usage_customer_day x
  LEFT JOIN analytics._usage_customer_day_pending p
         ON p.customer_identifier = x.customer_identifier AND p.day = x.day
 WHERE p.customer_identifier IS NULL
UNION ALL
SELECT p.day, p.customer_identifier,
       p.requests + coalesce(x.requests, 0),
       p.prompt_tokens + coalesce(x.prompt_tokens, 0),
       p.completion_tokens + coalesce(x.completion_tokens, 0),
       p.cost + coalesce(x.cost, 0)
  FROM analytics._usage_customer_day_pending p
  LEFT JOIN analytics.usage_customer_day x
         ON x.customer_identifier = p.customer_identifier AND x.day = p.day;
COMMENT ON VIEW analytics._users_on_cluster IS
    'Internal: analytics.users in the shape a Citus cluster pushes down (read by analytics.users after distribute()).';
COMMENT ON VIEW analytics._cost_by_user_on_cluster IS
    'Internal: analytics.cost_by_user in the shape a Citus cluster pushes down (read by analytics.cost_by_user after distribute()).';
-- Their columns carry the comments of the views they stand for.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT v.relname AS view, a.attname, d.description
               FROM pg_catalog.pg_class v
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) v.oid
               JOIN pg_catalog.pg_description d ON d.objoid OPERATOR(pg_catalog.=) v.oid
                    AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objsubid OPERATOR(pg_catalog.=) a.attnum
              WHERE v.oid IN ('analytics.users'::pg_catalog.regclass, 'analytics.cost_by_user'::pg_catalog.regclass)
    LOOP
        EXECUTE pg_catalog.format('COMMENT ON COLUMN analytics.%I.%I IS %L',
                                  CASE r.view WHEN 'users' THEN '_users_on_cluster' ELSE '_cost_by_user_on_cluster' END,
                                  r.attname, r.description);
    END LOOP;
END;
$$;

-- Roles and privileges (SPEC §13)
--
-- The same as sql/install/95_roles.sql and the §13 changes of the other
-- pieces.  Keep this section last, as that piece is: it revokes PUBLIC's
-- EXECUTE from every function of the schema.

-- budget_counters.spend can no longer go negative.  A 1.0 database may hold
-- negative counters (written by a role with UPDATE on the table); they are
-- derived state, so drop them, under the lock a budget change takes (it
-- waits for the log writers), and the next insert of each period rebuilds
-- them from the logs.
LOCK TABLE analytics.logs IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM analytics.budget_counters WHERE spend OPERATOR(pg_catalog.<) 0;
ALTER TABLE analytics.budget_counters
    ADD CONSTRAINT spend_non_negative CHECK (spend >= 0);

-- check_budget reads the counters and the logs for the writers and readers
-- that call it; the administrative functions check the caller's membership
-- in analytics_admin themselves, first, then run as the owner (src/privs.c).
ALTER FUNCTION analytics.check_budget(text) SECURITY DEFINER;
ALTER FUNCTION analytics.check_budget(text) SET search_path = pg_catalog, analytics, pg_temp;
ALTER FUNCTION analytics.purge_logs(timestamptz) SECURITY INVOKER;
ALTER FUNCTION analytics.delete_customer(text) SECURITY INVOKER;

-- Admission, rate limits, alerts and idempotent logging (SPEC sections 10
-- and 11) --------------------------------------------------------------------

ALTER TABLE analytics.customers
    ADD COLUMN rate_limit integer CONSTRAINT rate_limit_positive CHECK (rate_limit > 0),
    ADD COLUMN token_rate_limit integer CONSTRAINT token_rate_limit_positive CHECK (token_rate_limit > 0),
    ADD COLUMN alert_thresholds numeric[] NOT NULL DEFAULT '{80,100}'
        CONSTRAINT alert_thresholds_range
        CHECK (coalesce(array_ndims(alert_thresholds), 1) = 1
               AND cardinality(alert_thresholds) <= 16
               AND (0 < ALL (alert_thresholds)) IS TRUE
               AND (1000 >= ALL (alert_thresholds)) IS TRUE);
COMMENT ON COLUMN analytics.customers.rate_limit IS 'Requests per minute: at most this many admissions (analytics.admit) in any 60 seconds, else UA004; null means no limit.';
COMMENT ON COLUMN analytics.customers.token_rate_limit IS 'Tokens per minute: at most this many estimated tokens of admissions (analytics.admit) in any 60 seconds, else UA004; null means no limit.';
COMMENT ON COLUMN analytics.customers.alert_thresholds IS 'Percentages of period_budget and total_budget at which a budget event is recorded (analytics.budget_events) and NOTIFY analytics_budget sent, once per period (total: once) and budget setting; empty means no alerts.';

ALTER TABLE analytics.logs
    ADD COLUMN admission_id bigint,
    ADD COLUMN request_id text
        CONSTRAINT request_id_length CHECK (length(request_id) BETWEEN 1 AND 255);
COMMENT ON COLUMN analytics.logs.admission_id IS 'The analytics.admit() admission this log settles (optional): its estimated cost stops being held and the log is not rejected for budget or rate.';
COMMENT ON COLUMN analytics.logs.request_id IS 'The caller''s id of the request (optional), unique per customer: recording a log whose (customer, request_id) exists records nothing and returns the existing log''s id.';
CREATE UNIQUE INDEX logs_customer_request_id ON analytics.logs (customer_identifier, request_id)
    NULLS NOT DISTINCT WHERE request_id IS NOT NULL;
COMMENT ON INDEX analytics.logs_customer_request_id IS
    'Idempotent logging: at most one log per (customer, request_id); a log without a customer counts as one customer.';

ALTER TABLE analytics.budget_counters
    ADD COLUMN reserved numeric NOT NULL DEFAULT 0,
    ADD COLUMN reserved_until timestamptz,
    ADD COLUMN alerted numeric[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN analytics.budget_counters.reserved IS 'Sum of estimated_cost (USD, before markup) of the customer''s open admissions made in the period, as of the last check.';
COMMENT ON COLUMN analytics.budget_counters.reserved_until IS 'When the earliest of those admissions expires: reserved is recomputed from analytics.admissions at the first check after it; null when none is open.';
COMMENT ON COLUMN analytics.budget_counters.alerted IS 'The alert thresholds (percentages) already recorded in analytics.budget_events for this period under the current budget.';

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

-- check_budget() reports the open admissions and the rate state: new
-- columns, so a new function.
DROP FUNCTION analytics.check_budget(text);
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

-- A customer created blocked became blocked too: its `blocked` budget event
-- (src/alerts.c).  Only such rows call the function.
CREATE FUNCTION analytics.budget_customer_created_blocked() RETURNS trigger
    AS 'MODULE_PATHNAME', 'budget_customer_created_blocked' LANGUAGE C;
COMMENT ON FUNCTION analytics.budget_customer_created_blocked() IS
    'Trigger: records the blocked budget event of a customer inserted blocked.';
CREATE TRIGGER budget_customer_created_blocked AFTER INSERT ON analytics.customers
    FOR EACH ROW WHEN (NEW.blocked) EXECUTE FUNCTION analytics.budget_customer_created_blocked();

-- Budget keys of customer_params apply only for members of analytics_admin.
CREATE OR REPLACE FUNCTION analytics.upsert_customer(params jsonb)
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

-- The message bodies are null for a role that cannot read them.
CREATE OR REPLACE VIEW analytics.logs_with_customer AS
SELECT l.id, l.created_at, l.customer_identifier, l.model,
       l.prompt_tokens, l.completion_tokens, l.total_tokens, l.cost,
       l.latency, l.time_to_first_token, l.status_code, l.error_message,
       l.thread_identifier, l.custom_identifier, l.metadata,
       CASE WHEN (SELECT pg_catalog.has_column_privilege('analytics.logs', 'prompt_messages', 'SELECT'))
            THEN l.prompt_messages END AS prompt_messages,
       CASE WHEN (SELECT pg_catalog.has_column_privilege('analytics.logs', 'completion_message', 'SELECT'))
            THEN l.completion_message END AS completion_message,
       c.name, c.email, c.metadata AS customer_metadata,
       l.cached_tokens, l.cache_write_tokens, l.reasoning_tokens,
       l.admission_id, l.request_id
  FROM analytics.logs l
  LEFT JOIN analytics.customers c ON c.customer_identifier = l.customer_identifier;
COMMENT ON COLUMN analytics.logs_with_customer.prompt_messages IS 'Request messages; null unless the current role may SELECT analytics.logs.prompt_messages (analytics_reader may not).';
COMMENT ON COLUMN analytics.logs_with_customer.completion_message IS 'Response message; null unless the current role may SELECT analytics.logs.completion_message (analytics_reader may not).';
COMMENT ON COLUMN analytics.logs_with_customer.cached_tokens IS 'Prompt tokens read from a prompt cache (part of prompt_tokens).';
COMMENT ON COLUMN analytics.logs_with_customer.cache_write_tokens IS 'Prompt tokens written to a prompt cache (part of prompt_tokens).';
COMMENT ON COLUMN analytics.logs_with_customer.reasoning_tokens IS 'Completion tokens spent on reasoning (part of completion_tokens).';
COMMENT ON COLUMN analytics.logs_with_customer.admission_id IS 'The analytics.admit() admission the log settled, if any.';
COMMENT ON COLUMN analytics.logs_with_customer.request_id IS 'The caller''s id of the request, unique per customer, if given.';

CREATE OR REPLACE FUNCTION analytics.customer_logs(customer_identifier text,
                                        since timestamptz DEFAULT NULL,
                                        until timestamptz DEFAULT NULL,
                                        lim integer DEFAULT 100)
RETURNS SETOF analytics.logs
LANGUAGE plpgsql STABLE ROWS 100 SET search_path = pg_catalog, analytics AS $$
BEGIN
    RETURN QUERY
    SELECT l.id, l.created_at, l.customer_identifier, l.model,
           l.prompt_tokens, l.completion_tokens, l.total_tokens, l.cost,
           l.latency, l.time_to_first_token, l.status_code, l.error_message,
           l.thread_identifier, l.custom_identifier, l.metadata,
           l.prompt_messages, l.completion_message,
           l.cached_tokens, l.cache_write_tokens, l.reasoning_tokens,
           l.admission_id, l.request_id
      FROM analytics.logs_with_customer l
     WHERE l.customer_identifier OPERATOR(pg_catalog.=) $1
       AND l.created_at >= coalesce($2, '-infinity')
       AND l.created_at < coalesce($3, 'infinity')
     ORDER BY l.created_at DESC, l.id DESC
     LIMIT $4;
END;
$$;

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

-- A 1.0 database had no roles: a site may have granted its application
-- role what the insert trigger then needed, which is enough to rewrite
-- budgets (UPDATE budget_counters, customers).  Nobody but the owner writes
-- the derived tables, and only the three roles above write customers and
-- model prices: take every other grant of those privileges back, and say
-- whose.  Grants to read, and to write logs, stay.
DO $$
DECLARE
    t record;
    g record;
BEGIN
    FOR t IN
        SELECT c.oid, c.relname, c.relowner,
               c.relname IN ('customers', 'model_prices') AS shared
          FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'analytics'::regnamespace AND c.relkind = 'r'
           AND c.relname <> 'logs'
    LOOP
        FOR g IN
            SELECT DISTINCT a.grantee
              FROM (SELECT (pg_catalog.aclexplode(c.relacl)).* FROM pg_catalog.pg_class c
                     WHERE c.oid = t.oid
                    UNION ALL
                    SELECT (pg_catalog.aclexplode(at.attacl)).* FROM pg_catalog.pg_attribute at
                     WHERE at.attrelid = t.oid AND at.attacl IS NOT NULL) a
             WHERE a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
               AND a.grantee <> t.relowner
               AND NOT (t.shared AND a.grantee IN (SELECT r.oid FROM pg_catalog.pg_roles r
                         WHERE r.rolname IN ('analytics_reader', 'analytics_writer', 'analytics_admin')))
        LOOP
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON analytics.%I FROM %s',
                           t.relname,
                           CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                                ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END);
            RAISE WARNING 'analytics: revoked INSERT, UPDATE, DELETE and TRUNCATE on analytics.% from %',
                t.relname, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(g.grantee) END
                USING HINT = 'Grant analytics_writer, analytics_admin or analytics_reader instead (see the README, "Roles").';
        END LOOP;
    END LOOP;
END;
$$;
