/*-------------------------------------------------------------------------
 *
 * ingest_anthropic.c
 *	  The Anthropic mapping of JSON ingest:
 *	  analytics.ingest_anthropic(request, response, latency).
 *
 * A Messages API request body (with the payload's customer fields, or
 * metadata.user_id, Anthropic's id of the end user) and its response, a
 * Message object ("type": "message") or an error object ("type": "error"),
 * fill one row of the payload schema (ingest_payload.c), recorded by
 * ingest_provider_call().  The Message object itself is the completion
 * message.
 *
 * Anthropic's usage.input_tokens counts only the prompt tokens after the
 * last cache breakpoint: cache_read_input_tokens and
 * cache_creation_input_tokens are the rest of the prompt.  analytics.logs
 * counts every prompt token in prompt_tokens (SPEC section 12), so
 * prompt_tokens is their sum (an error naming usage.input_tokens when the
 * sum passes 2^31 - 1), cached_tokens the cache reads and
 * cache_write_tokens the cache writes.
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

PG_FUNCTION_INFO_V1(ingest_anthropic_text);
PG_FUNCTION_INFO_V1(ingest_anthropic_json);
PG_FUNCTION_INFO_V1(ingest_anthropic_jsonb);

/* Fields of a Message, after the model; prompt_tokens is summed by hand. */
static const IngestField ingest_anthropic_message_fields[] = {
	{"usage.output_tokens", INGEST_COL_COMPLETION_TOKENS},
	{"usage.cache_read_input_tokens", INGEST_COL_CACHED_TOKENS},
	{"usage.cache_creation_input_tokens", INGEST_COL_CACHE_WRITE_TOKENS},
};

/*
 * ingest_anthropic_prompt_tokens
 *		prompt_tokens = usage.input_tokens + the cache reads and writes
 *		already in the row, each checked as a token count; the sum must fit
 *		in an integer.
 */
static void
ingest_anthropic_prompt_tokens(IngestRow *row, struct json_object *response)
{
	const char *field = "response.usage.input_tokens";
	struct json_object *input = ingest_json_lookup(response, "response.", "usage.input_tokens");
	int64		sum;

	if (input == NULL)
		return;
	sum = (int64) DatumGetInt32(ingest_payload_value(INGEST_COL_PROMPT_TOKENS, input, field)) +
		DatumGetInt32(row->values[INGEST_COL_CACHED_TOKENS]) +
		DatumGetInt32(row->values[INGEST_COL_CACHE_WRITE_TOKENS]);
	if (sum > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": input_tokens + cache_read_input_tokens + cache_creation_input_tokens must be at most 2147483647",
						field),
				 errdetail("Their sum is the log's prompt_tokens, %lld. The log was not recorded.",
						   (long long) sum)));
	row->values[INGEST_COL_PROMPT_TOKENS] = Int32GetDatum((int32) sum);
	row->nulls[INGEST_COL_PROMPT_TOKENS] = ' ';
}

/*
 * ingest_anthropic_fill
 *		ingest_json_read's reader: fill the row (arg) from the request
 *		(docs[0]) and the response (docs[1]).
 */
static void
ingest_anthropic_fill(IngestJsonDoc *docs, void *arg)
{
	IngestRow  *row = (IngestRow *) arg;
	struct json_object *response = docs[1].root;

	if (!ingest_provider_begin(row, docs, "metadata.user_id"))
		return;
	ingest_payload_map(row, response, "response.", ingest_anthropic_message_fields,
					   lengthof(ingest_anthropic_message_fields));
	ingest_anthropic_prompt_tokens(row, response);
	ingest_payload_set(row, INGEST_COL_COMPLETION_MESSAGE, response, "response");
}

Datum
ingest_anthropic_text(PG_FUNCTION_ARGS)
{
	return ingest_provider_call(fcinfo, TEXTOID, ingest_anthropic_fill,
								"analytics.ingest_anthropic()");
}

Datum
ingest_anthropic_json(PG_FUNCTION_ARGS)
{
	return ingest_provider_call(fcinfo, JSONOID, ingest_anthropic_fill,
								"analytics.ingest_anthropic()");
}

Datum
ingest_anthropic_jsonb(PG_FUNCTION_ARGS)
{
	return ingest_provider_call(fcinfo, JSONBOID, ingest_anthropic_fill,
								"analytics.ingest_anthropic()");
}
