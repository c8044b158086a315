/*-------------------------------------------------------------------------
 *
 * ingest_payload.c
 *	  The payload schema of JSON ingest, and analytics.ingest(payload).
 *
 * A payload (SPEC §14) fills the columns of one analytics.logs row:
 * ingest_columns says what each column holds (and so which typed getter
 * of ingest_json.c reads it, with which bounds), ingest_payload_fields which
 * key of the payload goes to which column.  A wrong or missing field raises
 * an error naming it; JSON null is the same as an absent key and unknown
 * keys are ignored.  The INSERT and the batch's INSERT are written from
 * ingest_columns, so a new column is one line there and one in the enum.
 *
 * The row is recorded by a single prepared INSERT into analytics.logs,
 * through the table's BEFORE INSERT trigger like any other (validation,
 * cost from model_prices, customer creation, budgets).  A payload with
 * customer_params first calls analytics.upsert_customer(jsonb) with that
 * object, so that name, email and budget settings are in place before the
 * log is checked against them.
 *
 * Plans: the INSERT and the upsert_customer call are prepared once per
 * backend (analytics_prepare) and executed with parameters; no value is
 * ever pasted into SQL text.  The plan cache revalidates them when the
 * extension is dropped and created again.
 *
 * Locking and transactions: nothing of its own.  The insert trigger does
 * what any INSERT does (logs.c); upsert_customer may update the customer's
 * row, and a budget change there waits for the other log writers.  An
 * error anywhere aborts the statement, so a failing call records nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "analytics.h"
#include "ingest_json.h"
#include "ingest_payload.h"
#include "logs.h"
#include "request_id.h"

PG_FUNCTION_INFO_V1(ingest_text);
PG_FUNCTION_INFO_V1(ingest_json);
PG_FUNCTION_INFO_V1(ingest_jsonb);

/* What a non-negative number field expects. */
#define INGEST_NON_NEGATIVE "a finite non-negative number"
/* What request_id and admission_id expect (SPEC sections 10 and 14). */
#define INGEST_MAX_IDENTIFIER 255
#define INGEST_IDENTIFIER "a string of 1 to 255 characters"
#define INGEST_ID "an integer from 1 to 9223372036854775807"

const IngestColumn ingest_columns[INGEST_NCOLS] = {
	[INGEST_COL_CREATED_AT] = {"created_at", TIMESTAMPTZOID, INGEST_KIND_TIMESTAMP},
	[INGEST_COL_CUSTOMER_IDENTIFIER] = {"customer_identifier", TEXTOID, INGEST_KIND_TEXT},
	[INGEST_COL_MODEL] = {"model", TEXTOID, INGEST_KIND_MODEL},
	[INGEST_COL_PROMPT_TOKENS] = {"prompt_tokens", INT4OID, INGEST_KIND_TOKENS},
	[INGEST_COL_COMPLETION_TOKENS] = {"completion_tokens", INT4OID, INGEST_KIND_TOKENS},
	[INGEST_COL_COST] = {"cost", NUMERICOID, INGEST_KIND_COST},
	[INGEST_COL_LATENCY] = {"latency", FLOAT8OID, INGEST_KIND_SECONDS},
	[INGEST_COL_TIME_TO_FIRST_TOKEN] = {"time_to_first_token", FLOAT8OID, INGEST_KIND_SECONDS},
	[INGEST_COL_STATUS_CODE] = {"status_code", INT4OID, INGEST_KIND_STATUS},
	[INGEST_COL_ERROR_MESSAGE] = {"error_message", TEXTOID, INGEST_KIND_TEXT},
	[INGEST_COL_THREAD_IDENTIFIER] = {"thread_identifier", TEXTOID, INGEST_KIND_TEXT},
	[INGEST_COL_CUSTOM_IDENTIFIER] = {"custom_identifier", TEXTOID, INGEST_KIND_TEXT},
	[INGEST_COL_METADATA] = {"metadata", JSONBOID, INGEST_KIND_OBJECT},
	[INGEST_COL_PROMPT_MESSAGES] = {"prompt_messages", JSONBOID, INGEST_KIND_ARRAY},
	[INGEST_COL_COMPLETION_MESSAGE] = {"completion_message", JSONBOID, INGEST_KIND_OBJECT},
	[INGEST_COL_CACHED_TOKENS] = {"cached_tokens", INT4OID, INGEST_KIND_TOKENS},
	[INGEST_COL_CACHE_WRITE_TOKENS] = {"cache_write_tokens", INT4OID, INGEST_KIND_TOKENS},
	[INGEST_COL_REASONING_TOKENS] = {"reasoning_tokens", INT4OID, INGEST_KIND_TOKENS},
	[INGEST_COL_REQUEST_ID] = {"request_id", TEXTOID, INGEST_KIND_IDENTIFIER},
	[INGEST_COL_ADMISSION_ID] = {"admission_id", INT8OID, INGEST_KIND_ID},
};

/*
 * The fields of a Keywords AI style logging payload, in the order they are
 * checked (after model and the customer).  A later field wins over an
 * earlier one of the same column: top-level token counts over usage.*.
 */
static const IngestField ingest_payload_fields[] = {
	{"usage.prompt_tokens", INGEST_COL_PROMPT_TOKENS},
	{"usage.completion_tokens", INGEST_COL_COMPLETION_TOKENS},
	{"usage.prompt_tokens_details.cached_tokens", INGEST_COL_CACHED_TOKENS},
	{"usage.completion_tokens_details.reasoning_tokens", INGEST_COL_REASONING_TOKENS},
	{"prompt_tokens", INGEST_COL_PROMPT_TOKENS},
	{"completion_tokens", INGEST_COL_COMPLETION_TOKENS},
	{"cached_tokens", INGEST_COL_CACHED_TOKENS},
	{"cache_write_tokens", INGEST_COL_CACHE_WRITE_TOKENS},
	{"reasoning_tokens", INGEST_COL_REASONING_TOKENS},
	{"cost", INGEST_COL_COST},
	{"latency", INGEST_COL_LATENCY},
	{"time_to_first_token", INGEST_COL_TIME_TO_FIRST_TOKEN},
	{"status_code", INGEST_COL_STATUS_CODE},
	{"error_message", INGEST_COL_ERROR_MESSAGE},
	{"timestamp", INGEST_COL_CREATED_AT},
	{"metadata", INGEST_COL_METADATA},
	{"thread_identifier", INGEST_COL_THREAD_IDENTIFIER},
	{"custom_identifier", INGEST_COL_CUSTOM_IDENTIFIER},
	{"prompt_messages", INGEST_COL_PROMPT_MESSAGES},
	{"completion_message", INGEST_COL_COMPLETION_MESSAGE},
	{"request_id", INGEST_COL_REQUEST_ID},
	{"admission_id", INGEST_COL_ADMISSION_ID},
};

#define INGEST_UPSERT_SQL \
	"SELECT analytics.upsert_customer($1)"

static SPIPlanPtr ingest_insert_plan = NULL;
static SPIPlanPtr ingest_upsert_plan = NULL;

/*
 * ingest_payload_init
 *		Defaults of a log: now(), no customer, 0 tokens of each kind, cost from the
 *		trigger, status 200, everything else null.
 */
void
ingest_payload_init(IngestRow *row)
{
	int			i;

	for (i = 0; i < INGEST_NCOLS; i++)
	{
		row->values[i] = (Datum) 0;
		row->nulls[i] = 'n';
	}
	row->values[INGEST_COL_CREATED_AT] =
		TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	row->nulls[INGEST_COL_CREATED_AT] = ' ';
	for (i = 0; i < INGEST_NCOLS; i++)
	{
		if (ingest_columns[i].kind == INGEST_KIND_TOKENS)
		{
			row->values[i] = Int32GetDatum(0);
			row->nulls[i] = ' ';
		}
	}
	row->values[INGEST_COL_STATUS_CODE] = Int32GetDatum(200);
	row->nulls[INGEST_COL_STATUS_CODE] = ' ';
	row->customer_params = (Datum) 0;
}

/*
 * ingest_payload_value
 *		A JSON value (not NULL) read as column col holds it; an error names
 *		field.  Bounds the insert trigger checks anyway (cost, latency) are
 *		left to it, beyond what the column's type can hold.
 */
Datum
ingest_payload_value(IngestColumnId col, struct json_object *value, const char *field)
{
	switch (ingest_columns[col].kind)
	{
		case INGEST_KIND_TIMESTAMP:
			return TimestampTzGetDatum(ingest_json_timestamp(value, field));
		case INGEST_KIND_MODEL:
			if (!json_object_is_type(value, json_type_string) ||
				json_object_get_string_len(value) == 0)
				ingest_json_bad_field(field, "a non-empty string", value);
			return PointerGetDatum(ingest_json_text(value, field));
		case INGEST_KIND_TEXT:
			return PointerGetDatum(ingest_json_text(value, field));
		case INGEST_KIND_TOKENS:
			return Int32GetDatum((int32) ingest_json_integer(value, field, 0, PG_INT32_MAX,
															 "a non-negative integer",
															 "an integer from 0 to 2147483647"));
		case INGEST_KIND_STATUS:
			return Int32GetDatum((int32) ingest_json_integer(value, field, 100, 599,
															 "an integer between 100 and 599",
															 "an integer between 100 and 599"));
		case INGEST_KIND_SECONDS:
			{
				float8		d = ingest_json_float8(value, field, INGEST_NON_NEGATIVE);

				if (d < 0)
					ingest_json_bad_field(field, INGEST_NON_NEGATIVE, value);
				return Float8GetDatum(d);
			}
		case INGEST_KIND_COST:
			{
				Numeric		n = ingest_json_numeric(value, field, INGEST_NON_NEGATIVE);

				if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
													  NumericGetDatum(int64_to_numeric(0)))) < 0)
					ingest_json_bad_field(field, INGEST_NON_NEGATIVE, value);
				return NumericGetDatum(n);
			}
		case INGEST_KIND_OBJECT:
			return ingest_json_jsonb(value, field, json_type_object);
		case INGEST_KIND_ARRAY:
			return ingest_json_jsonb(value, field, json_type_array);
		case INGEST_KIND_IDENTIFIER:
			{
				text	   *t;
				int			chars;

				if (!json_object_is_type(value, json_type_string))
					ingest_json_bad_field(field, INGEST_IDENTIFIER, value);
				t = ingest_json_text(value, field);
				chars = pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				if (chars < 1 || chars > INGEST_MAX_IDENTIFIER)
					ingest_json_bad_field(field, INGEST_IDENTIFIER, value);
				return PointerGetDatum(t);
			}
		case INGEST_KIND_ID:
			{
				int64		n = ingest_json_integer(value, field, 1, PG_INT64_MAX,
													INGEST_ID, INGEST_ID);

				/* json-c saturates beyond 64 bits: the text must be n's. */
				if (strcmp(json_object_to_json_string(value),
						   psprintf(INT64_FORMAT, n)) != 0)
					ingest_json_bad_field(field, INGEST_ID, value);
				return Int64GetDatum(n);
			}
	}
	elog(ERROR, "unknown kind of column %d", (int) col);
	return (Datum) 0;
}

/*
 * ingest_payload_set
 *		Set column col from an optional JSON value (NULL: absent or JSON
 *		null, which leaves the default; the model alone is required).
 */
void
ingest_payload_set(IngestRow *row, IngestColumnId col, struct json_object *value,
				   const char *field)
{
	if (value == NULL)
	{
		if (ingest_columns[col].kind == INGEST_KIND_MODEL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("missing value for \"%s\"", field),
					 errdetail("Every log names its model. The log was not recorded.")));
		return;
	}
	row->values[col] = ingest_payload_value(col, value, field);
	row->nulls[col] = ' ';
}

/*
 * ingest_payload_map
 *		Set the columns of fields from obj, in their order; errors name a
 *		field as prefix followed by its path ("request.metadata").
 */
void
ingest_payload_map(IngestRow *row, struct json_object *obj, const char *prefix,
				   const IngestField *fields, int nfields)
{
	int			i;

	for (i = 0; i < nfields; i++)
		ingest_payload_set(row, fields[i].col,
						   ingest_json_lookup(obj, prefix, fields[i].path),
						   psprintf("%s%s", prefix, fields[i].path));
}

/*
 * ingest_payload_customer
 *		The customer of a log: customer_params (an object, upserted before
 *		the log is inserted) and/or customer_identifier (a string).  When
 *		both are given they must name the same customer; customer_params
 *		without customer_identifier takes the one given beside it.
 *		prefix is prepended to field names in errors ("", "request.").
 */
void
ingest_payload_customer(IngestRow *row, struct json_object *obj, const char *prefix)
{
	struct json_object *params = ingest_json_get(obj, "customer_params");
	struct json_object *ident = ingest_json_get(obj, "customer_identifier");
	char	   *field_ident = psprintf("%scustomer_identifier", prefix);
	char	   *field_params = psprintf("%scustomer_params", prefix);
	struct json_object *inner;

	if (ident != NULL && !json_object_is_type(ident, json_type_string))
		ingest_json_bad_field(field_ident, "a string", ident);
	if (params == NULL)
	{
		ingest_payload_set(row, INGEST_COL_CUSTOMER_IDENTIFIER, ident, field_ident);
		return;
	}
	if (!json_object_is_type(params, json_type_object))
		ingest_json_bad_field(field_params, "a JSON object", params);

	inner = ingest_json_get(params, "customer_identifier");
	if (inner == NULL && ident != NULL)
	{
		/* Take the identifier given beside customer_params. */
		inner = json_object_get(ident);
		if (json_object_object_add(params, "customer_identifier", inner) != 0)
		{
			json_object_put(inner);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		}
	}
	if (inner == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("missing value for \"%s.customer_identifier\"", field_params),
				 errdetail("customer_params must name the customer. The log was not recorded.")));
	if (!json_object_is_type(inner, json_type_string))
		ingest_json_bad_field(psprintf("%s.customer_identifier", field_params), "a string", inner);
	if (ident != NULL &&
		strcmp(json_object_get_string(ident), json_object_get_string(inner)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" and \"%s.customer_identifier\" name different customers",
						field_ident, field_params),
				 errdetail("The log was not recorded.")));

	row->values[INGEST_COL_CUSTOMER_IDENTIFIER] =
		PointerGetDatum(ingest_json_text(inner, field_params));
	row->nulls[INGEST_COL_CUSTOMER_IDENTIFIER] = ' ';
	row->customer_params = ingest_json_to_jsonb(params, field_params);
}

/*
 * ingest_payload_check_identifier
 *		The insert trigger's check of customer_identifier
 *		(logs_check_customer_identifier), run before any customer upsert so
 *		that the error names the field first.
 */
void
ingest_payload_check_identifier(IngestRow *row)
{
	if (row->nulls[INGEST_COL_CUSTOMER_IDENTIFIER] != 'n')
		logs_check_customer_identifier(row->values[INGEST_COL_CUSTOMER_IDENTIFIER]);
}

/*
 * ingest_payload_column_list
 *		The columns of ingest_columns, comma-separated, each after prefix
 *		("created_at, customer_identifier, ..." or "(r).created_at, ...").
 */
char *
ingest_payload_column_list(const char *prefix)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < INGEST_NCOLS; i++)
		appendStringInfo(&buf, "%s%s%s", i > 0 ? ", " : "", prefix, ingest_columns[i].name);
	return buf.data;
}

/*
 * ingest_payload_upsert
 *		analytics.upsert_customer(customer_params) for the row's customer.
 *		Must be called inside SPI.
 */
void
ingest_payload_upsert(IngestRow *row)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {row->customer_params};
	SPIPlanPtr	plan;

	plan = analytics_prepare(&ingest_upsert_plan, INGEST_UPSERT_SQL, 1, argtypes);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not upsert customer");
	SPI_freetuptable(SPI_tuptable);

	/*
	 * No cache to drop here: a change of budget settings invalidates the
	 * write path's customer cache itself (budget_customers_changed).
	 */
}

/*
 * ingest_payload_insert
 *		Run the INSERT of the row (written from ingest_columns once per
 *		backend); returns whether it inserted the log, and its id.  It
 *		inserts nothing when the trigger skipped the row: the log of its
 *		request_id exists.  Must be called inside SPI.
 */
static bool
ingest_payload_insert(IngestRow *row, int64 *id)
{
	SPIPlanPtr	plan = ingest_insert_plan;
	bool		isnull;
	bool		inserted;

	if (plan == NULL)
	{
		Oid			types[INGEST_NCOLS];
		StringInfoData sql;
		int			i;

		initStringInfo(&sql);
		appendStringInfo(&sql, "INSERT INTO analytics.logs (%s) VALUES (",
						 ingest_payload_column_list(""));
		for (i = 0; i < INGEST_NCOLS; i++)
		{
			types[i] = ingest_columns[i].type;
			appendStringInfo(&sql, "%s$%d", i > 0 ? ", " : "", i + 1);
		}
		appendStringInfoString(&sql, ") RETURNING id");
		plan = analytics_prepare(&ingest_insert_plan, sql.data, INGEST_NCOLS, types);
	}
	if (SPI_execute_plan(plan, row->values, row->nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed > 1)
		elog(ERROR, "could not insert log");
	inserted = (SPI_processed == 1);
	if (inserted)
		*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return inserted;
}

/*
 * ingest_payload_insert_request
 *		The INSERT of a row that carries a request_id, in a subtransaction:
 *		when another transaction recorded the same request between the
 *		trigger's probe and the insertion, the unique index raises 23505
 *		(after waiting for it to commit); the subtransaction rolls back
 *		(and with it the trigger's budget charge), and the INSERT runs once
 *		more, whose trigger then finds that log and skips the row.  Any
 *		other error, or a second 23505, is raised.  Returns whether it
 *		inserted the log.  Must be called inside SPI.
 */
static bool
ingest_payload_insert_request(IngestRow *row, int64 *id)
{
	MemoryContext caller_context = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		volatile bool inserted = false;
		volatile bool retry = false;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(caller_context);
		PG_TRY();
		{
			inserted = ingest_payload_insert(row, id);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(caller_context);
			CurrentResourceOwner = caller_owner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(caller_context);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(caller_context);
			CurrentResourceOwner = caller_owner;
			if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION || attempt > 1)
				ReThrowError(edata);
			FreeErrorData(edata);
			retry = true;
		}
		PG_END_TRY();
		if (!retry)
			return inserted;
	}
}

/*
 * ingest_payload_record
 *		Upsert the row's customer_params (if any), then insert the log;
 *		returns its id, or with a request_id whose log exists already, that
 *		log's id (nothing is inserted: SPEC section 10).  Must be called
 *		inside SPI.  The BEFORE INSERT trigger validates, prices, creates
 *		the customer, checks budgets and skips a request recorded already.
 */
int64
ingest_payload_record(IngestRow *row)
{
	int64		id;

	if (row->customer_params != (Datum) 0)
		ingest_payload_upsert(row);

	if (row->nulls[INGEST_COL_REQUEST_ID] == 'n')
	{
		if (!ingest_payload_insert(row, &id))
			elog(ERROR, "could not insert log");
		return id;
	}

	request_id_forget();
	if (ingest_payload_insert_request(row, &id))
		return id;
	/* The trigger skipped it: here, or on the shard's node (Citus). */
	if (request_id_recall(&id) ||
		request_id_lookup(row->values[INGEST_COL_CUSTOMER_IDENTIFIER],
						  row->nulls[INGEST_COL_CUSTOMER_IDENTIFIER] == 'n',
						  row->values[INGEST_COL_REQUEST_ID], &id))
		return id;
	elog(ERROR, "the log of request_id was skipped but not found");
	return 0;
}

/*
 * ingest_payload_fill
 *		ingest_json_read's reader for one payload: fill the row (arg) from
 *		a Keywords AI style logging payload.
 */
static void
ingest_payload_fill(IngestJsonDoc *docs, void *arg)
{
	IngestRow  *row = (IngestRow *) arg;
	struct json_object *obj = docs[0].root;

	if (!json_object_is_type(obj, json_type_object))
		ingest_json_bad_field("payload", "a JSON object", obj);
	ingest_payload_set(row, INGEST_COL_MODEL, ingest_json_get(obj, "model"), "model");
	ingest_payload_customer(row, obj, "");
	ingest_payload_check_identifier(row);
	ingest_payload_map(row, obj, "", ingest_payload_fields, lengthof(ingest_payload_fields));
}

/*
 * ingest_payload_read
 *		A row from one payload's JSON text (data[0..len), in the server
 *		encoding): parsed, checked field by field, and released.
 */
void
ingest_payload_read(IngestRow *row, const char *data, size_t len)
{
	IngestJsonDoc doc = {data, len, "payload", NULL};

	ingest_payload_init(row);
	ingest_json_read(&doc, 1, ingest_payload_fill, row);
}

/*
 * ingest_one
 *		analytics.ingest(payload) for a payload of the given type.
 */
static Datum
ingest_one(FunctionCallInfo fcinfo, Oid type)
{
	size_t		len;
	const char *data = ingest_json_arg(fcinfo, 0, type, "payload", &len);
	IngestRow	row;
	int64		id;

	analytics_require_current("analytics.ingest()");
	ingest_payload_read(&row, data, len);
	SPI_connect();
	id = ingest_payload_record(&row);
	SPI_finish();
	PG_RETURN_INT64(id);
}

Datum
ingest_text(PG_FUNCTION_ARGS)
{
	return ingest_one(fcinfo, TEXTOID);
}

Datum
ingest_json(PG_FUNCTION_ARGS)
{
	return ingest_one(fcinfo, JSONOID);
}

Datum
ingest_jsonb(PG_FUNCTION_ARGS)
{
	return ingest_one(fcinfo, JSONBOID);
}
