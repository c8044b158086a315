/*-------------------------------------------------------------------------
 *
 * ingest_openai.c
 *	  The OpenAI mapping of JSON ingest:
 *	  analytics.ingest_openai(request, response, latency).
 *
 * A chat-completions request body (with the payload's customer fields, or
 * "user") and its response, a chat.completion object or an error object,
 * fill one row of the payload schema (ingest_payload.c), recorded as
 * analytics.ingest() records its own.  The fields that map one to one are
 * the tables below; the model, the customer and an error's status are
 * read by hand.  Field names in errors say which document they are from
 * ("request.messages", "response.usage.prompt_tokens").
 *
 * Locking and transactions: those of ingest_payload_record().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "analytics.h"
#include "ingest_json.h"
#include "ingest_payload.h"

PG_FUNCTION_INFO_V1(ingest_openai_text);
PG_FUNCTION_INFO_V1(ingest_openai_json);
PG_FUNCTION_INFO_V1(ingest_openai_jsonb);

/* Fields of the request, after the customer. */
static const IngestField ingest_openai_request_fields[] = {
	{"messages", INGEST_COL_PROMPT_MESSAGES},
	{"metadata", INGEST_COL_METADATA},
	{"thread_identifier", INGEST_COL_THREAD_IDENTIFIER},
	{"custom_identifier", INGEST_COL_CUSTOM_IDENTIFIER},
};

/* Fields of a chat.completion response, after the model. */
static const IngestField ingest_openai_completion_fields[] = {
	{"usage.prompt_tokens", INGEST_COL_PROMPT_TOKENS},
	{"usage.completion_tokens", INGEST_COL_COMPLETION_TOKENS},
	{"choices[0].message", INGEST_COL_COMPLETION_MESSAGE},
};

/*
 * ingest_openai_status
 *		The HTTP status of an OpenAI error object: an integer status given
 *		in it (status_code or status, in the response or in its error; out
 *		of 100..599 is an error), else an integer error.code in 100..599,
 *		else one derived from the strings error.code and error.type, else
 *		500.
 */
static int32
ingest_openai_status(struct json_object *response, struct json_object *error)
{
	static const struct
	{
		const char *value;
		int32		status;
	}			known[] = {
		{"invalid_api_key", 401},
		{"authentication_error", 401},
		{"permission_error", 403},
		{"permission_denied", 403},
		{"model_not_found", 404},
		{"not_found_error", 404},
		{"rate_limit_exceeded", 429},
		{"rate_limit_error", 429},
		{"insufficient_quota", 429},
		{"context_length_exceeded", 400},
		{"invalid_request_error", 400},
		{"server_error", 500},
		{"service_unavailable", 503},
		{"overloaded_error", 529},
	};
	static const char *const status_keys[] = {"status_code", "status"};
	static const char *const kind_keys[] = {"code", "type"};
	int			i,
				j,
				k;

	for (i = 0; i < lengthof(status_keys); i++)
	{
		struct json_object *s;

		s = ingest_json_get(response, status_keys[i]);
		if (s == NULL && json_object_is_type(error, json_type_object))
			s = ingest_json_get(error, status_keys[i]);
		/* Only an integer is a status; "status": "RESOURCE_EXHAUSTED" is not. */
		if (s != NULL && json_object_is_type(s, json_type_int))
			return DatumGetInt32(ingest_payload_value(INGEST_COL_STATUS_CODE, s,
													  psprintf("response.%s", status_keys[i])));
	}
	if (!json_object_is_type(error, json_type_object))
		return 500;
	/* error.code is more specific than error.type: look at it first. */
	for (k = 0; k < lengthof(kind_keys); k++)
	{
		struct json_object *v = ingest_json_get(error, kind_keys[k]);

		/* Some providers put the HTTP status in error.code. */
		if (v != NULL && json_object_is_type(v, json_type_int) &&
			json_object_get_int64(v) >= 100 && json_object_get_int64(v) <= 599)
			return (int32) json_object_get_int64(v);
		if (v == NULL || !json_object_is_type(v, json_type_string))
			continue;
		for (j = 0; j < lengthof(known); j++)
			if (strcmp(json_object_get_string(v), known[j].value) == 0)
				return known[j].status;
	}
	return 500;
}

/*
 * ingest_openai_model
 *		Set the model from the response's or the request's "model",
 *		whichever comes first (response_first) among those that are there;
 *		with neither, the request's is missing.
 */
static void
ingest_openai_model(IngestRow *row, struct json_object *request,
					struct json_object *response, bool response_first)
{
	struct json_object *asked = ingest_json_get(request, "model");
	struct json_object *answered = ingest_json_get(response, "model");

	if (answered != NULL && (response_first || asked == NULL))
		ingest_payload_set(row, INGEST_COL_MODEL, answered, "response.model");
	else
		ingest_payload_set(row, INGEST_COL_MODEL, asked, "request.model");
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
	struct json_object *error;

	if (!json_object_is_type(request, json_type_object))
		ingest_json_bad_field("request", "a JSON object", request);
	if (!json_object_is_type(response, json_type_object))
		ingest_json_bad_field("response", "a JSON object", response);

	ingest_payload_customer(row, request, "request.");
	if (row->nulls[INGEST_COL_CUSTOMER_IDENTIFIER] == 'n')
		ingest_payload_set(row, INGEST_COL_CUSTOMER_IDENTIFIER,
						   ingest_json_get(request, "user"), "request.user");
	ingest_payload_check_identifier(row);
	ingest_payload_map(row, request, "request.", ingest_openai_request_fields,
					   lengthof(ingest_openai_request_fields));

	error = ingest_json_get(response, "error");
	if (error != NULL)
	{
		struct json_object *message = NULL;

		if (json_object_is_type(error, json_type_string))
			message = error;
		else if (json_object_is_type(error, json_type_object))
			message = ingest_json_get(error, "message");
		else
			ingest_json_bad_field("response.error", "a JSON object", error);
		ingest_payload_set(row, INGEST_COL_ERROR_MESSAGE, message, "response.error.message");
		row->values[INGEST_COL_STATUS_CODE] = Int32GetDatum(ingest_openai_status(response, error));
		/* The request names the model that was asked for. */
		ingest_openai_model(row, request, response, false);
		return;
	}

	/* A chat.completion object: the response names the model that answered. */
	ingest_openai_model(row, request, response, true);
	ingest_payload_map(row, response, "response.", ingest_openai_completion_fields,
					   lengthof(ingest_openai_completion_fields));
}

/*
 * ingest_openai_common
 *		analytics.ingest_openai(request, response, latency) for arguments
 *		of the given type.
 */
static Datum
ingest_openai_common(FunctionCallInfo fcinfo, Oid type)
{
	IngestJsonDoc docs[2] = {{NULL, 0, "request", NULL}, {NULL, 0, "response", NULL}};
	IngestRow	row;
	int64		id;

	docs[0].data = ingest_json_arg(fcinfo, 0, type, docs[0].what, &docs[0].len);
	docs[1].data = ingest_json_arg(fcinfo, 1, type, docs[1].what, &docs[1].len);
	analytics_require_current("analytics.ingest_openai()");
	ingest_payload_init(&row);
	ingest_json_read(docs, lengthof(docs), ingest_openai_fill, &row);
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
	{
		double		latency = PG_GETARG_FLOAT8(2);

		if (isnan(latency) || isinf(latency) || latency < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for \"latency\": expected a finite non-negative number"),
					 errdetail("Got %g. The log was not recorded.", latency)));
		row.values[INGEST_COL_LATENCY] = Float8GetDatum(latency);
		row.nulls[INGEST_COL_LATENCY] = ' ';
	}
	SPI_connect();
	id = ingest_payload_record(&row);
	SPI_finish();
	PG_RETURN_INT64(id);
}

Datum
ingest_openai_text(PG_FUNCTION_ARGS)
{
	return ingest_openai_common(fcinfo, TEXTOID);
}

Datum
ingest_openai_json(PG_FUNCTION_ARGS)
{
	return ingest_openai_common(fcinfo, JSONOID);
}

Datum
ingest_openai_jsonb(PG_FUNCTION_ARGS)
{
	return ingest_openai_common(fcinfo, JSONBOID);
}
