-- Cost that matches the invoice (SPEC section 12): the usage shapes of
-- OpenAI Chat Completions (a stream's last chunk included), the OpenAI
-- Responses API and Anthropic Messages, read from response bodies as the
-- providers document them; the payload keys of analytics.ingest(); bad
-- token values (a specific SQLSTATE naming the field, nothing written);
-- and analytics.import_prices() on a real excerpt of LiteLLM's price map.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS analytics CASCADE;
CREATE EXTENSION analytics;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE TEMP VIEW logged AS
SELECT id, customer_identifier, model, prompt_tokens, cached_tokens, cache_write_tokens,
       completion_tokens, reasoning_tokens, cost, status_code
  FROM analytics.logs;

-- OpenAI Chat Completions with prompt caching: the usage object of OpenAI's
-- prompt caching guide (2,006 prompt tokens of which 1,920 cached), in the
-- chat.completion shape of its API reference.
SELECT analytics.ingest_openai(
  '{"model": "gpt-4o", "user": "oa-chat", "messages": [{"role": "user", "content": "Hello!"}]}',
  '{"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I assist you today?", "refusal": null, "annotations": []},
                 "logprobs": null, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
              "prompt_tokens_details": {"cached_tokens": 1920},
              "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default"}') > 0 AS recorded;
-- (86 * 2.50 + 1920 * 1.25 + 300 * 10.00) / 1e6
SELECT *, cost = (86 * 2.50 + 1920 * 1.25 + 300 * 10.00) / 1000000 AS priced
  FROM logged WHERE customer_identifier = 'oa-chat';

-- A reasoning model: completion_tokens_details.reasoning_tokens.
SELECT analytics.ingest_openai(
  '{"model": "o3-mini", "user": "oa-reasoning", "messages": [{"role": "user", "content": "Prove it."}]}',
  '{"id": "chatcmpl-AXb9", "object": "chat.completion", "created": 1741569952, "model": "o3-mini-2025-01-31",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 75, "completion_tokens": 1186, "total_tokens": 1261,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 1024, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}}') > 0 AS recorded;
SELECT * FROM logged WHERE customer_identifier = 'oa-reasoning';

-- The last chunk of a stream with stream_options.include_usage: "choices"
-- is empty and "usage" covers the whole request.
SELECT analytics.ingest_openai(
  '{"model": "gpt-4o-mini", "user": "oa-stream", "stream": true, "stream_options": {"include_usage": true},
    "messages": [{"role": "user", "content": "Hello!"}]}',
  '{"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_44709d6fcb", "choices": [],
    "usage": {"prompt_tokens": 1536, "completion_tokens": 12, "total_tokens": 1548,
              "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}}') > 0 AS recorded;
SELECT l.*, g.completion_message IS NULL AS no_message
  FROM logged l JOIN analytics.logs g USING (id) WHERE l.customer_identifier = 'oa-stream';
-- Providers that send "prompt_tokens_details": null.
SELECT analytics.ingest_openai('{"model": "gpt-4o", "user": "oa-null-details"}',
  '{"object": "chat.completion", "model": "gpt-4o", "choices": [],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": null, "completion_tokens_details": null}}') > 0 AS recorded;
SELECT prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens FROM logged WHERE customer_identifier = 'oa-null-details';

-- The Responses API: a recorded response with 11,904 of 12,033 input tokens
-- cached (coder's aibridge fixture responses/blocking/cached_input_tokens,
-- a real gpt-4.1 response body).
SELECT analytics.ingest_openai(
  '{"input": "This was a large input...", "model": "gpt-4.1", "prompt_cache_key": "key-123",
    "prompt_cache_retention": "24h", "stream": false, "user": "oa-responses"}',
  '{"id": "resp_0cd5d6b8310055d600696a1776b42c81a199fbb02248a8bfa0", "object": "response", "created_at": 1768560502,
    "status": "completed", "background": false, "billing": {"payer": "developer"}, "completed_at": 1768560504,
    "error": null, "frequency_penalty": 0.0, "incomplete_details": null, "instructions": null,
    "max_output_tokens": null, "max_tool_calls": null, "model": "gpt-4.1-2025-04-14",
    "output": [{"id": "msg_0cd5d6b8310055d600696a177708b881a1bb53034def764104", "type": "message", "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                             "text": "- I provide clear, accurate, and concise answers tailored to your requests.\n- I can process and summarize large volumes of information quickly.\n- I adapt my responses based on your needs and instructions for precision and relevance."}],
                "role": "assistant"}],
    "parallel_tool_calls": true, "presence_penalty": 0.0, "previous_response_id": null,
    "prompt_cache_key": "key-123", "prompt_cache_retention": "24h",
    "reasoning": {"effort": null, "summary": null}, "safety_identifier": null, "service_tier": "default",
    "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto", "tools": [], "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
    "usage": {"input_tokens": 12033, "input_tokens_details": {"cached_tokens": 11904}, "output_tokens": 44,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 12077},
    "user": null, "metadata": {}}') > 0 AS recorded;
SELECT *, cost = (129 * 2.00 + 11904 * 0.50 + 44 * 8.00) / 1000000 AS priced
  FROM logged WHERE customer_identifier = 'oa-responses';
SELECT completion_message ->> 'id' AS message, prompt_messages IS NULL AS string_input_left_out
  FROM analytics.logs WHERE customer_identifier = 'oa-responses';
-- A Responses request with an input list; the output's reasoning item
-- comes before its message.
SELECT analytics.ingest_openai(
  '{"model": "o3-mini", "user": "oa-responses-2", "input": [{"role": "user", "content": "Why?"}]}',
  '{"id": "resp_2", "object": "response", "status": "completed", "error": null, "model": "o3-mini-2025-01-31",
    "output": [{"id": "rs_1", "type": "reasoning", "summary": []},
               {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Because.", "annotations": []}]}],
    "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 150,
              "output_tokens_details": {"reasoning_tokens": 128}, "total_tokens": 170}}') > 0 AS recorded;
SELECT prompt_tokens, completion_tokens, reasoning_tokens, prompt_messages, completion_message ->> 'id' AS message
  FROM analytics.logs WHERE customer_identifier = 'oa-responses-2';
-- A failed Responses object: its error, the model asked for.
SELECT analytics.ingest_openai('{"model": "gpt-4.1", "user": "oa-responses-3", "input": "Hi"}',
  '{"id": "resp_3", "object": "response", "status": "failed", "model": "gpt-4.1-2025-04-14",
    "error": {"code": "server_error", "message": "The model failed to generate a response."},
    "output": [], "usage": null}') > 0 AS recorded;
SELECT model, status_code, error_message, prompt_tokens FROM analytics.logs WHERE customer_identifier = 'oa-responses-3';

-- Anthropic Messages: a real response body (Hello, world to
-- claude-sonnet-4-20250514), then the prompt caching guide's shapes: a
-- cache write and a cache read.  input_tokens leaves the cache tokens out:
-- prompt_tokens adds them.
SELECT analytics.ingest_anthropic(
  '{"model": "claude-sonnet-4-20250514", "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Hello, world"}], "metadata": {"user_id": "an-hello"}}',
  '{"id": "msg_014poUe6ukZsmrMtitD45q8K", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hello! Nice to meet you. How are you doing today? Is there anything I can help you with?"}],
    "stop_reason": "end_turn", "stop_sequence": null,
    "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 25, "service_tier": "standard"}}', 1.25) > 0 AS recorded;
SELECT *, cost = (10 * 3.00 + 25 * 15.00) / 1000000 AS priced
  FROM logged WHERE customer_identifier = 'an-hello';
SELECT latency, metadata, prompt_messages, completion_message ->> 'id' AS message,
       completion_message -> 'content' -> 0 ->> 'type' AS content
  FROM analytics.logs WHERE customer_identifier = 'an-hello';
SELECT analytics.ingest_anthropic(
  '{"model": "claude-3-7-sonnet-20250219", "max_tokens": 1024,
    "system": [{"type": "text", "text": "You are an AI assistant tasked with analyzing literary works."},
               {"type": "text", "text": "<the entire contents of Pride and Prejudice>", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "Analyze the major themes in Pride and Prejudice."}],
    "customer_params": {"customer_identifier": "an-cache", "name": "Cache"}}',
  '{"id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
    "content": [{"type": "text", "text": "The major themes are pride, prejudice and marriage."}],
    "stop_reason": "end_turn", "stop_sequence": null,
    "usage": {"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 0, "output_tokens": 393}}') > 0 AS recorded;
SELECT analytics.ingest_anthropic(
  '{"model": "claude-3-7-sonnet-20250219", "max_tokens": 1024, "messages": [{"role": "user", "content": "Again."}],
    "customer_identifier": "an-cache"}',
  '{"id": "msg_01Aq9w938a90dw8r", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
    "content": [{"type": "text", "text": "Again: pride, prejudice and marriage."}],
    "stop_reason": "end_turn", "stop_sequence": null,
    "usage": {"input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 188086, "output_tokens": 393}}'::jsonb) > 0 AS recorded;
SELECT *, cost = CASE WHEN cache_write_tokens > 0
                      THEN (21 * 3.00 + 188086 * 3.75 + 393 * 15.00) / 1000000
                      ELSE (21 * 3.00 + 188086 * 0.30 + 393 * 15.00) / 1000000 END AS priced
  FROM logged WHERE customer_identifier = 'an-cache' ORDER BY id;
-- An Anthropic error body: the status from error.type.
SELECT analytics.ingest_anthropic(
  '{"model": "claude-sonnet-4-20250514", "max_tokens": 1024, "messages": [], "metadata": {"user_id": "an-error"}}',
  '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'::json) > 0 AS recorded;
SELECT model, status_code, error_message, prompt_tokens FROM analytics.logs WHERE customer_identifier = 'an-error';

-- analytics.ingest(): the payload keys, top-level and in an OpenAI usage.
SELECT analytics.ingest('{"model": "claude-sonnet-4", "customer_identifier": "payload",
    "prompt_tokens": 5000, "cached_tokens": 4000, "cache_write_tokens": 500, "completion_tokens": 100,
    "reasoning_tokens": 60}') > 0 AS recorded;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "payload",
    "usage": {"prompt_tokens": 2006, "completion_tokens": 300,
              "prompt_tokens_details": {"cached_tokens": 1920}, "completion_tokens_details": {"reasoning_tokens": 64}}}'::jsonb) > 0 AS recorded;
SELECT analytics.ingest_batch('{"model": "gpt-4o", "customer_identifier": "payload", "prompt_tokens": 10, "cached_tokens": 10}
{"model": "gpt-4o", "customer_identifier": "payload", "prompt_tokens": 10}') AS batch;
SELECT * FROM logged WHERE customer_identifier = 'payload' ORDER BY id;

-- The users view carries the cached tokens.
SELECT customer_identifier, prompt_tokens, cached_tokens FROM analytics.users
 WHERE cached_tokens > 0 ORDER BY 1;

-- Bad token values: 22023 naming the field, nothing written.
SELECT count(*) AS logs_before FROM analytics.logs \gset
SELECT analytics.ingest('{"model": "gpt-4o", "prompt_tokens": 10, "cached_tokens": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "prompt_tokens": 10, "cache_write_tokens": "5"}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "completion_tokens": 10, "reasoning_tokens": 1.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "prompt_tokens": 10, "cached_tokens": 2147483648}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "prompt_tokens": 10, "cached_tokens": 11}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest('{"model": "gpt-4o", "completion_tokens": 10, "reasoning_tokens": 11}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"model": "gpt-4o"}',
  '{"object": "chat.completion", "usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": -5}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"model": "gpt-4o"}',
  '{"object": "chat.completion", "usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 20}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"model": "gpt-4o"}',
  '{"object": "chat.completion", "usage": {"prompt_tokens": 10, "prompt_tokens_details": [1920]}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"model": "gpt-4o"}',
  '{"object": "response", "usage": {"input_tokens": 10, "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 6}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"model": "gpt-4o"}',
  '{"object": "response", "usage": {"input_tokens": "ten"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_openai('{"model": "gpt-4o"}', '{"object": "response", "output": {"type": "message"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4"}',
  '{"type": "message", "usage": {"input_tokens": -1, "output_tokens": 5}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4"}',
  '{"type": "message", "usage": {"input_tokens": 10, "cache_read_input_tokens": 1e3}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4"}',
  '{"type": "message", "usage": {"input_tokens": 2147483647, "cache_read_input_tokens": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4"}',
  '{"type": "message", "usage": {"input_tokens": 10, "cache_creation_input_tokens": 99999999999999999999}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4", "metadata": {"user_id": 42}}',
  '{"type": "message", "usage": {"input_tokens": 10}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4"}', '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4"}', '{"type": "message"', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.ingest_anthropic('{"model": "claude-sonnet-4"}', '{"type": "message"}', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) = :logs_before AS nothing_written FROM analytics.logs;

-- import_prices: an excerpt of LiteLLM's model_prices_and_context_window.json
-- (BerriAI/litellm, commit 00035b69f416be24e2e323c13198d9b7d2d1bdf9; entries
-- copied as they are there, some attributes left out): sample_spec (the
-- format's description) and the image model are skipped, the others set.
SELECT analytics.import_prices($$ {
    "sample_spec": {
        "deprecation_date": "date when the model becomes deprecated in the format YYYY-MM-DD",
        "input_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "max_input_tokens": "max input tokens, if the provider specifies it. if not default to max_tokens",
        "mode": "one of: chat, embedding, completion, image_generation, audio_transcription, audio_speech, image_generation, moderation, rerank, search",
        "output_cost_per_token": 0.0,
        "supports_prompt_caching": true
    },
    "1024-x-1024/dall-e-2": {
        "input_cost_per_pixel": 1.9e-08,
        "litellm_provider": "openai",
        "mode": "image_generation",
        "output_cost_per_pixel": 0.0
    },
    "ai21.j2-mid-v1": {
        "input_cost_per_token": 1.25e-05,
        "litellm_provider": "bedrock",
        "max_input_tokens": 8191,
        "max_output_tokens": 8191,
        "max_tokens": 8191,
        "mode": "chat",
        "output_cost_per_token": 1.25e-05
    },
    "amazon.nova-2-lite-v1:0": {
        "cache_read_input_token_cost": 7.5e-08,
        "input_cost_per_token": 3e-07,
        "litellm_provider": "bedrock_converse",
        "max_input_tokens": 1000000,
        "max_output_tokens": 64000,
        "max_tokens": 64000,
        "mode": "chat",
        "output_cost_per_token": 2.5e-06,
        "supports_prompt_caching": true
    },
    "azure_ai/grok-code-fast-1": {
        "input_cost_per_token": 2e-07,
        "litellm_provider": "azure_ai",
        "max_input_tokens": 131072,
        "mode": "chat",
        "output_cost_per_token": 1.5e-06
    },
    "bedrock/*/1-month-commitment/cohere.command-text-v14": {
        "input_cost_per_second": 0.011,
        "litellm_provider": "bedrock",
        "mode": "chat",
        "output_cost_per_second": 0.011
    },
    "fireworks_ai/deepseek-v4-pro": {
        "cache_read_input_token_cost": 1.45e-07,
        "input_cost_per_token": 1.74e-06,
        "litellm_provider": "fireworks_ai",
        "max_input_tokens": 1048576,
        "mode": "chat",
        "output_cost_per_token": 3.48e-06
    }
} $$) AS models_set;
SELECT * FROM analytics.model_prices
 WHERE model IN ('sample_spec', '1024-x-1024/dall-e-2', 'ai21.j2-mid-v1', 'amazon.nova-2-lite-v1:0',
                 'azure_ai/grok-code-fast-1', 'bedrock/*/1-month-commitment/cohere.command-text-v14',
                 'fireworks_ai/deepseek-v4-pro')
 ORDER BY model;
-- A cache write cost (cache_creation_input_token_cost, as LiteLLM gives it
-- for Anthropic models) replaces a shipped row, and the next log uses it.
SELECT analytics.import_prices('{"claude-sonnet-4": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
    "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06}}') AS models_set;
SELECT * FROM analytics.model_prices WHERE model = 'claude-sonnet-4';
SELECT analytics.ingest('{"model": "amazon.nova-2-lite-v1:0", "customer_identifier": "imported",
    "prompt_tokens": 1000000, "cached_tokens": 800000, "completion_tokens": 1000}')> 0 AS recorded;
SELECT cost, cost = (200000 * 0.30 + 800000 * 0.075 + 1000 * 2.5) / 1000000 AS priced
  FROM analytics.logs WHERE customer_identifier = 'imported';

-- Bad price maps: 22023 naming the entry, nothing set.
SELECT md5(string_agg(p::text, ',' ORDER BY model)) AS prices_before FROM analytics.model_prices p \gset
SELECT analytics.import_prices('[]');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.import_prices(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.import_prices('{"ok-model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
                                 "bad-model": {"input_cost_per_token": -1e-06, "output_cost_per_token": 2e-06}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.import_prices('{"bad-model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                                               "cache_read_input_token_cost": "0.1"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.import_prices('{"bad-model": 5}');
\echo :LAST_ERROR_SQLSTATE
SELECT analytics.import_prices(jsonb_build_object(repeat('m', 256),
                               '{"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}'::jsonb));
\echo :LAST_ERROR_SQLSTATE
SELECT md5(string_agg(p::text, ',' ORDER BY model)) = :'prices_before' AS nothing_set
  FROM analytics.model_prices p;

-- Only analytics_admin may import prices.
CREATE ROLE cost_writer;
GRANT analytics_writer TO cost_writer;
SET ROLE cost_writer;
SELECT analytics.import_prices('{}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE cost_writer;
