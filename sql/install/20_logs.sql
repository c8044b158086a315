-- Piece 20: logs (one row per LLM request), model prices, and the guards
-- that make logs facts.

CREATE TABLE analytics.model_prices (
    model text PRIMARY KEY CONSTRAINT model_not_empty CHECK (model <> ''),
    prompt_per_million numeric NOT NULL
        CONSTRAINT prompt_price_range
        CHECK (prompt_per_million >= 0 AND prompt_per_million < 'Infinity'),
    completion_per_million numeric NOT NULL
        CONSTRAINT completion_price_range
        CHECK (completion_per_million >= 0 AND completion_per_million < 'Infinity'),
    cached_prompt_per_million numeric
        CONSTRAINT cached_prompt_price_range
        CHECK (cached_prompt_per_million >= 0 AND cached_prompt_per_million < 'Infinity'),
    cache_write_per_million numeric
        CONSTRAINT cache_write_price_range
        CHECK (cache_write_per_million >= 0 AND cache_write_per_million < 'Infinity')
);
COMMENT ON TABLE analytics.model_prices IS
    'USD per million tokens by model; a model uses the longest entry its name starts with. Yours to edit.';
COMMENT ON COLUMN analytics.model_prices.model IS 'Model name or name prefix (gpt-4o matches gpt-4o-2024-08-06).';
COMMENT ON COLUMN analytics.model_prices.prompt_per_million IS 'USD per million prompt (input) tokens.';
COMMENT ON COLUMN analytics.model_prices.completion_per_million IS 'USD per million completion (output) tokens.';
COMMENT ON COLUMN analytics.model_prices.cached_prompt_per_million IS 'USD per million prompt tokens read from a prompt cache (logs.cached_tokens); null: the prompt price.';
COMMENT ON COLUMN analytics.model_prices.cache_write_per_million IS 'USD per million prompt tokens written to a prompt cache (logs.cache_write_tokens); null: the prompt price.';

-- List prices as published by the vendors in 2025 (standard tier, USD per
-- million tokens: prompt, completion, cached prompt, cache write).  Edit the
-- table to match your contract.  Cached prompt and cache write prices are
-- those of the vendors' pricing pages: OpenAI bills cached input at its
-- "cached input" price and cache writes as ordinary input (null); Anthropic
-- bills cache reads at 0.1x and 5-minute cache writes at 1.25x the input
-- price; Google bills Gemini's context cache reads at its "context caching"
-- price and the cache's storage by the hour, not per token (null).
INSERT INTO analytics.model_prices VALUES
    ('gpt-4o', 2.50, 10.00, 1.25, NULL),
    ('gpt-4o-mini', 0.15, 0.60, 0.075, NULL),
    ('gpt-4.1', 2.00, 8.00, 0.50, NULL),
    ('gpt-4.1-mini', 0.40, 1.60, 0.10, NULL),
    ('gpt-4.1-nano', 0.10, 0.40, 0.025, NULL),
    ('o3-mini', 1.10, 4.40, 0.55, NULL),
    ('claude-3-5-haiku', 0.80, 4.00, 0.08, 1.00),
    ('claude-3-7-sonnet', 3.00, 15.00, 0.30, 3.75),
    ('claude-sonnet-4', 3.00, 15.00, 0.30, 3.75),
    ('gemini-2.0-flash', 0.10, 0.40, 0.025, NULL);

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
    completion_message jsonb,
    cached_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT cached_tokens_non_negative CHECK (cached_tokens >= 0),
    cache_write_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT cache_write_tokens_non_negative CHECK (cache_write_tokens >= 0),
    reasoning_tokens integer NOT NULL DEFAULT 0
        CONSTRAINT reasoning_tokens_non_negative CHECK (reasoning_tokens >= 0),
    admission_id bigint,
    request_id text
        CONSTRAINT request_id_length CHECK (length(request_id) BETWEEN 1 AND 255),
    CONSTRAINT cached_tokens_within_prompt
        CHECK (cached_tokens::bigint + cache_write_tokens <= prompt_tokens),
    CONSTRAINT reasoning_tokens_within_completion
        CHECK (reasoning_tokens <= completion_tokens)
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
COMMENT ON COLUMN analytics.logs.cached_tokens IS 'Prompt tokens read from the provider''s prompt cache: part of prompt_tokens, priced at model_prices.cached_prompt_per_million.';
COMMENT ON COLUMN analytics.logs.cache_write_tokens IS 'Prompt tokens written to the provider''s prompt cache: part of prompt_tokens, priced at model_prices.cache_write_per_million.';
COMMENT ON COLUMN analytics.logs.reasoning_tokens IS 'Completion tokens spent on reasoning: part of completion_tokens.';
COMMENT ON COLUMN analytics.logs.admission_id IS 'The analytics.admit() admission this log settles (optional): its estimated cost stops being held and the log is not rejected for budget or rate.';
COMMENT ON COLUMN analytics.logs.request_id IS 'The caller''s id of the request (optional), unique per customer: recording a log whose (customer, request_id) exists records nothing and returns the existing log''s id.';

CREATE INDEX logs_customer_created_at ON analytics.logs (customer_identifier, created_at);

-- Idempotent logging (SPEC section 10): one log per (customer, request_id).
-- NULLS NOT DISTINCT: logs without a customer are idempotent too (on a Citus
-- cluster they carry '' anyway).  The insert trigger finds this index by its
-- columns (on a Citus node the shard's copy has another name) and probes it
-- before anything else, so that a duplicate is skipped (src/request_id.c);
-- the index itself settles two inserters that probed at the same time.
CREATE UNIQUE INDEX logs_customer_request_id ON analytics.logs (customer_identifier, request_id)
    NULLS NOT DISTINCT WHERE request_id IS NOT NULL;
COMMENT ON INDEX analytics.logs_customer_request_id IS
    'Idempotent logging: at most one log per (customer, request_id); a log without a customer counts as one customer.';

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
