/*-------------------------------------------------------------------------
 *
 * ingest_openai.c
 *	  The OpenAI mapping of JSON ingest:
 *	  analytics.ingest_openai(request, response, latency).
 *
 * A request body (with the payload's customer fields, or "user") and its
 * response fill one row of the payload schema (ingest_payload.c), recorded
 * by ingest_provider_call().  The response is one of:
 *
 *	- a Chat Completions object (chat.completion), or the last chunk of a
 *	  stream (chat.completion.chunk with "choices": [] and the usage of the
 *	  whole request, sent when stream_options.include_usage is set):
 *	  usage.prompt_tokens, completion_tokens,
 *	  prompt_tokens_details.cached_tokens and
 *	  completion_tokens_details.reasoning_tokens;
 *	- a Responses API object ("object": "response"): usage.input_tokens,
 *	  output_tokens, input_tokens_details.cached_tokens and
 *	  output_tokens_details.reasoning_tokens; its first output item of
 *	  type "message" is the completion message, and the request's "input",
 *	  when it is an array, the prompt messages;
 *	- an error object ({"error": ...}, read by ingest_provider_begin()).
 *
 * OpenAI counts cached tokens in the prompt tokens, as analytics.logs does;
 * it has no cache writes.  Field names in errors say which document they
 * are from ("request.messages", "response.usage.prompt_tokens").
 *
 * Locking and transactions: those of ingest_payload_record().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"

#include "analytics.h"
#include "ingest_json.h"
#include "ingest_payload.h"
#include "ingest_provider.h"

PG_FUNCTION_INFO_V1(ingest_openai_text);
PG_FUNCTION_INFO_V1(ingest_openai_json);
PG_FUNCTION_INFO_V1(ingest_openai_jsonb);

/* Fields of a Chat Completions response (or final chunk), after the model. */
static const IngestField ingest_openai_completion_fields[] = {
	{"usage.prompt_tokens", INGEST_COL_PROMPT_TOKENS},
	{"usage.completion_tokens", INGEST_COL_COMPLETION_TOKENS},
	{"usage.prompt_tokens_details.cached_tokens", INGEST_COL_CACHED_TOKENS},
	{"usage.completion_tokens_details.reasoning_tokens", INGEST_COL_REASONING_TOKENS},
	{"choices[0].message", INGEST_COL_COMPLETION_MESSAGE},
};

/* Fields of a Responses API response, after the model. */
static const IngestField ingest_openai_response_fields[] = {
	{"usage.input_tokens", INGEST_COL_PROMPT_TOKENS},
	{"usage.output_tokens", INGEST_COL_COMPLETION_TOKENS},
	{"usage.input_tokens_details.cached_tokens", INGEST_COL_CACHED_TOKENS},
	{"usage.output_tokens_details.reasoning_tokens", INGEST_COL_REASONING_TOKENS},
};

/*
 * ingest_openai_is_responses
 *		Whether the response is a Responses API object: "object": "response".
 */
static bool
ingest_openai_is_responses(struct json_object *response)
{
	struct json_object *object = ingest_json_get(response, "object");

	return object != NULL && json_object_is_type(object, json_type_string) &&
		strcmp(json_object_get_string(object), "response") == 0;
}

/*
 * ingest_openai_responses
 *		The messages of a Responses API exchange: the request's "input" when
 *		it is an array of items (a string input is not a message list and is
 *		left out), and the first output item of type "message".
 */
static void
ingest_openai_responses(IngestRow *row, struct json_object *request,
						struct json_object *response)
{
	struct json_object *input = ingest_json_get(request, "input");
	struct json_object *output = ingest_json_get(response, "output");
	size_t		i;

	if (input != NULL && json_object_is_type(input, json_type_array))
		ingest_payload_set(row, INGEST_COL_PROMPT_MESSAGES, input, "request.input");
	if (output == NULL)
		return;
	if (!json_object_is_type(output, json_type_array))
		ingest_json_bad_field("response.output", "a JSON array", output);
	for (i = 0; i < json_object_array_length(output); i++)
	{
		struct json_object *item = json_object_array_get_idx(output, i);
		struct json_object *type = item != NULL ? ingest_json_get(item, "type") : NULL;

		if (type != NULL && json_object_is_type(type, json_type_string) &&
			strcmp(json_object_get_string(type), "message") == 0)
		{
			ingest_payload_set(row, INGEST_COL_COMPLETION_MESSAGE, item,
							   psprintf("response.output[%zu]", i));
			return;
		}
	}
}

/*
 * ingest_openai_fill
 *		ingest_json_read's reader: fill the row (arg) from the request
 *		(docs[0]) and the response (docs[1]).
 */
static void
ingest_openai_fill(IngestJsonDoc *docs, void *arg)
{
	IngestRow  *row = (IngestRow *) arg;
	struct json_object *request = docs[0].root;
	struct json_object *response = docs[1].root;

	if (!ingest_provider_begin(row, docs, "user"))
		return;
	if (ingest_openai_is_responses(response))
	{
		ingest_payload_map(row, response, "response.", ingest_openai_response_fields,
						   lengthof(ingest_openai_response_fields));
		ingest_openai_responses(row, request, response);
	}
	else
		ingest_payload_map(row, response, "response.", ingest_openai_completion_fields,
						   lengthof(ingest_openai_completion_fields));
}

Datum
ingest_openai_text(PG_FUNCTION_ARGS)
{
	return ingest_provider_call(fcinfo, TEXTOID, ingest_openai_fill, "analytics.ingest_openai()");
}

Datum
ingest_openai_json(PG_FUNCTION_ARGS)
{
	return ingest_provider_call(fcinfo, JSONOID, ingest_openai_fill, "analytics.ingest_openai()");
}

Datum
ingest_openai_jsonb(PG_FUNCTION_ARGS)
{
	return ingest_provider_call(fcinfo, JSONBOID, ingest_openai_fill, "analytics.ingest_openai()");
}
