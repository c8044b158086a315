/*-------------------------------------------------------------------------
 *
 * ingest_provider.c
 *	  What the provider mappings of JSON ingest (ingest_openai.c,
 *	  ingest_anthropic.c) share: the SQL function of (request, response,
 *	  latency), the model asked for or answered, and an error response's
 *	  message and HTTP status.
 *
 * A mapping is an IngestJsonReader that fills one row of the payload
 * schema (ingest_payload.c) from the request (docs[0]) and the response
 * (docs[1]); ingest_provider_call reads both documents with it and records
 * the row as analytics.ingest() records its own.  The request maps the same
 * way for every provider (ingest_provider_request) but for the key naming
 * the end user when the payload's customer fields are absent.  Keys of the
 * payload that the providers do not know ride in the request body beside
 * their own: customer_params, customer_identifier, thread_identifier,
 * custom_identifier, request_id (idempotent logging) and admission_id.
 *
 * Locking and transactions: those of ingest_payload_record().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"

#include "analytics.h"
#include "ingest_provider.h"

/* Fields of a request, after the customer. */
static const IngestField ingest_provider_request_fields[] = {
	{"messages", INGEST_COL_PROMPT_MESSAGES},
	{"metadata", INGEST_COL_METADATA},
	{"thread_identifier", INGEST_COL_THREAD_IDENTIFIER},
	{"custom_identifier", INGEST_COL_CUSTOM_IDENTIFIER},
	{"request_id", INGEST_COL_REQUEST_ID},
	{"admission_id", INGEST_COL_ADMISSION_ID},
};

/*
 * ingest_provider_request
 *		Check that the request (docs[0]) and the response (docs[1]) are
 *		objects, and fill the row from the request: the customer from the
 *		payload's customer fields or else from the key at user_path (the
 *		provider's id of the end user), then the request's fields.
 */
static void
ingest_provider_request(IngestRow *row, IngestJsonDoc *docs, const char *user_path)
{
	struct json_object *request = docs[0].root;

	if (!json_object_is_type(request, json_type_object))
		ingest_json_bad_field("request", "a JSON object", request);
	if (!json_object_is_type(docs[1].root, json_type_object))
		ingest_json_bad_field("response", "a JSON object", docs[1].root);

	ingest_payload_customer(row, request, "request.");
	if (row->nulls[INGEST_COL_CUSTOMER_IDENTIFIER] == 'n')
		ingest_payload_set(row, INGEST_COL_CUSTOMER_IDENTIFIER,
						   ingest_json_lookup(request, "request.", user_path),
						   psprintf("request.%s", user_path));
	ingest_payload_check_identifier(row);
	ingest_payload_map(row, request, "request.", ingest_provider_request_fields,
					   lengthof(ingest_provider_request_fields));
}

/*
 * ingest_provider_status
 *		The HTTP status of an error response (OpenAI's or Anthropic's error
 *		object): an integer status given
 *		in it (status_code or status, in the response or in its error; out
 *		of 100..599 is an error), else an integer error.code in 100..599,
 *		else one derived from the strings error.code and error.type, else
 *		500.
 */
static int32
ingest_provider_status(struct json_object *response, struct json_object *error)
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
		{"request_too_large", 413},
		{"api_error", 500},
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
 * ingest_provider_model
 *		Set the model from the response's or the request's "model",
 *		whichever comes first (response_first) among those that are there;
 *		with neither, the request's is missing.
 */
static void
ingest_provider_model(IngestRow *row, struct json_object *request,
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
 * ingest_provider_error
 *		When the response is an error object ({"error": ...}, OpenAI's or
 *		Anthropic's), fill the error message, the HTTP status and the model
 *		asked for, and return true; else leave the row alone.
 */
static bool
ingest_provider_error(IngestRow *row, struct json_object *request,
					  struct json_object *response)
{
	struct json_object *error = ingest_json_get(response, "error");
	struct json_object *message = NULL;

	if (error == NULL)
		return false;
	if (json_object_is_type(error, json_type_string))
		message = error;
	else if (json_object_is_type(error, json_type_object))
		message = ingest_json_get(error, "message");
	else
		ingest_json_bad_field("response.error", "a JSON object", error);
	ingest_payload_set(row, INGEST_COL_ERROR_MESSAGE, message, "response.error.message");
	row->values[INGEST_COL_STATUS_CODE] = Int32GetDatum(ingest_provider_status(response, error));
	/* The request names the model that was asked for. */
	ingest_provider_model(row, request, response, false);
	return true;
}

/*
 * ingest_provider_begin
 *		What every mapping reads first: the request (ingest_provider_request),
 *		then either an error response (filled in; returns false, nothing is
 *		left to read) or the model that answered (returns true: the mapping
 *		reads the response's usage shape).
 */
bool
ingest_provider_begin(IngestRow *row, IngestJsonDoc *docs, const char *user_path)
{
	ingest_provider_request(row, docs, user_path);
	if (ingest_provider_error(row, docs[0].root, docs[1].root))
		return false;
	ingest_provider_model(row, docs[0].root, docs[1].root, true);
	return true;
}

/*
 * ingest_provider_call
 *		The SQL function (request, response, latency) of a provider mapping
 *		for arguments of the given type: both documents read by fill, the
 *		latency checked, the row recorded; returns the log's id.
 */
Datum
ingest_provider_call(FunctionCallInfo fcinfo, Oid type, IngestJsonReader fill,
					 const char *function)
{
	IngestJsonDoc docs[2] = {{NULL, 0, "request", NULL}, {NULL, 0, "response", NULL}};
	IngestRow	row;
	int64		id;

	docs[0].data = ingest_json_arg(fcinfo, 0, type, docs[0].what, &docs[0].len);
	docs[1].data = ingest_json_arg(fcinfo, 1, type, docs[1].what, &docs[1].len);
	analytics_require_current(function);
	ingest_payload_init(&row);
	ingest_json_read(docs, lengthof(docs), fill, &row);
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
