-- Piece 60: JSON ingest (src/ingest_*.c, json-c): ingest (ingest_payload.c),
-- ingest_openai (ingest_openai.c), ingest_anthropic (ingest_anthropic.c),
-- ingest_batch (ingest_batch.c), all
-- reading JSON through ingest_json.c.  Each function records logs
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
    'Records one log from an OpenAI request body (with customer_params, or user) and its response: a Chat Completions object, the last chunk of a stream (with usage), a Responses API object, or an error object; returns its id.';

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

CREATE FUNCTION analytics.ingest_batch(payloads text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'ingest_batch' LANGUAGE C VOLATILE SECURITY INVOKER;
COMMENT ON FUNCTION analytics.ingest_batch(text) IS
    'Records many logs from newline-delimited JSON or a JSON array of ingest payloads; returns how many. One bad payload fails the call, names its position and records nothing.';

-- Internal: the rows of ingest_batch(), one per call; an error outside of it.
CREATE FUNCTION analytics._ingest_batch_rows(payloads text) RETURNS SETOF analytics.logs
    AS 'MODULE_PATHNAME', 'ingest_batch_rows' LANGUAGE C VOLATILE STRICT SECURITY INVOKER;
COMMENT ON FUNCTION analytics._ingest_batch_rows(text) IS
    'Internal: the rows analytics.ingest_batch() inserts; callable only by it.';
