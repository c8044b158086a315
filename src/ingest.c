/*-------------------------------------------------------------------------
 *
 * ingest.c
 *	  JSON ingest of logs with json-c: analytics.ingest(payload),
 *	  analytics.ingest_openai(request, response, latency) and
 *	  analytics.ingest_batch(payloads).
 *
 * Each payload is read by PostgreSQL's own JSON parser into a json-c tree
 * (ingest_parse: json/jsonb input's rules, no \u0000, no duplicate key, at
 * most 64 MB, numbers keeping their text), checked field by field (a wrong
 * or missing field raises an error naming it), and turned into one
 * row of parameters for a single prepared INSERT into analytics.logs.  The
 * INSERT goes through the table's BEFORE INSERT trigger like any other
 * (validation, cost from model_prices, customer creation, budgets).  A
 * payload with customer_params first calls analytics.upsert_customer(jsonb)
 * with that object, so that name, email and budget settings are in place
 * before the log is checked against them.
 *
 * Plans: the INSERT and the upsert_customer call are prepared once per
 * backend (SPI_prepare + SPI_keepplan) and executed with parameters; no
 * value is ever pasted into SQL text.  The plan cache revalidates them when
 * the extension is dropped and created again.
 *
 * json-c allocates with malloc and knows nothing of ereport's longjmp: every
 * json-c object lives only inside one PG_TRY block whose PG_FINALLY releases
 * it, and every value kept from it is copied into palloc'd memory first.
 * Nothing json-c allocated outlives the call.
 *
 * Locking and transactions: nothing of its own.  The insert trigger does
 * what any INSERT does (logs.c); upsert_customer may update the customer's
 * row, and a budget change there waits for the other log writers.  An error anywhere aborts the statement, so a failing call (and a
 * failing payload of ingest_batch) records nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
/* fmgrprotos.h declares a function json_object(), a type name of json-c. */
#define json_object pg_json_object
#include "utils/builtins.h"
#undef json_object
#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include <json-c/json.h>
#include <json-c/json_object_iterator.h>

#include "analytics.h"
#include "ingest.h"

PG_FUNCTION_INFO_V1(ingest_text);
PG_FUNCTION_INFO_V1(ingest_json);
PG_FUNCTION_INFO_V1(ingest_jsonb);
PG_FUNCTION_INFO_V1(ingest_openai_text);
PG_FUNCTION_INFO_V1(ingest_openai_json);
PG_FUNCTION_INFO_V1(ingest_openai_jsonb);
PG_FUNCTION_INFO_V1(ingest_batch);
PG_FUNCTION_INFO_V1(ingest_batch_rows);

/* Deepest nesting of objects and arrays accepted in a document. */
#define INGEST_MAX_DEPTH 64
/* The longest timestamp string read (a zone name included). */
#define INGEST_TIMESTAMP_CHARS 64

/* Largest payload (and request, response) accepted, in bytes (SPEC §14). */
#define INGEST_MAX_PAYLOAD (64 * 1024 * 1024)

/* An error's DETAIL quotes at most this many characters of a bad value. */
#define INGEST_DETAIL_CHARS 100

/* numeric's limits: digits before and after the decimal point. */
#define INGEST_NUMERIC_MAX_WEIGHT 131072
#define INGEST_NUMERIC_MAX_SCALE 16383

/* Parameters of the INSERT, in this order. */
enum
{
	COL_CREATED_AT,
	COL_CUSTOMER_IDENTIFIER,
	COL_MODEL,
	COL_PROMPT_TOKENS,
	COL_COMPLETION_TOKENS,
	COL_COST,
	COL_LATENCY,
	COL_TIME_TO_FIRST_TOKEN,
	COL_STATUS_CODE,
	COL_ERROR_MESSAGE,
	COL_THREAD_IDENTIFIER,
	COL_CUSTOM_IDENTIFIER,
	COL_METADATA,
	COL_PROMPT_MESSAGES,
	COL_COMPLETION_MESSAGE,
	INGEST_NCOLS
};

static const Oid ingest_col_types[INGEST_NCOLS] = {
	TIMESTAMPTZOID, TEXTOID, TEXTOID, INT4OID, INT4OID, NUMERICOID,
	FLOAT8OID, FLOAT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	JSONBOID, JSONBOID, JSONBOID
};

#define INGEST_INSERT_SQL \
	"INSERT INTO analytics.logs (created_at, customer_identifier, model, " \
	"prompt_tokens, completion_tokens, cost, latency, time_to_first_token, " \
	"status_code, error_message, thread_identifier, custom_identifier, " \
	"metadata, prompt_messages, completion_message) " \
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) " \
	"RETURNING id"

#define INGEST_UPSERT_SQL \
	"SELECT analytics.upsert_customer($1)"

/* One log to record: the INSERT's parameters and the customer to upsert. */
typedef struct IngestRow
{
	Datum		values[INGEST_NCOLS];
	char		nulls[INGEST_NCOLS];	/* SPI convention: 'n' or ' ' */
	Datum		customer_params;	/* jsonb, or 0 for none */
} IngestRow;

/* Where ingest_batch is, for the error context. */
typedef struct IngestBatchPosition
{
	int			payload;		/* 1-based payload number, 0 before the first */
	int			line;			/* 1-based line (NDJSON), or 0 (array) */
} IngestBatchPosition;

/* State of _ingest_batch_rows() across its calls. */
typedef struct IngestBatchState
{
	const char *data;			/* the payloads, in the server encoding */
	size_t		len;
	size_t		pos;			/* next byte to look at */
	bool		array;			/* a JSON array, else NDJSON */
	bool		finished;		/* the array's closing bracket was seen */
	int			line;			/* lines consumed so far (NDJSON) */
	TupleDesc	tupdesc;		/* analytics.logs' row type */
	int			attnums[INGEST_NCOLS];	/* column of each parameter */
} IngestBatchState;

static const char *const ingest_col_names[INGEST_NCOLS] = {
	"created_at", "customer_identifier", "model", "prompt_tokens",
	"completion_tokens", "cost", "latency", "time_to_first_token",
	"status_code", "error_message", "thread_identifier", "custom_identifier",
	"metadata", "prompt_messages", "completion_message"
};

#define INGEST_BATCH_SQL \
	"INSERT INTO analytics.logs (created_at, customer_identifier, model, " \
	"prompt_tokens, completion_tokens, cost, latency, time_to_first_token, " \
	"status_code, error_message, thread_identifier, custom_identifier, " \
	"metadata, prompt_messages, completion_message) " \
	"SELECT (r).created_at, (r).customer_identifier, (r).model, " \
	"(r).prompt_tokens, (r).completion_tokens, (r).cost, (r).latency, " \
	"(r).time_to_first_token, (r).status_code, (r).error_message, " \
	"(r).thread_identifier, (r).custom_identifier, (r).metadata, " \
	"(r).prompt_messages, (r).completion_message " \
	"FROM (SELECT analytics._ingest_batch_rows($1) AS r OFFSET 0) AS s"

static SPIPlanPtr ingest_insert_plan = NULL;
static SPIPlanPtr ingest_upsert_plan = NULL;
static SPIPlanPtr ingest_batch_plan = NULL;

/*
 * The position of the running ingest_batch(), or NULL outside of it.
 * _ingest_batch_rows() advances it before returning each row; since the
 * INSERT pulls one row at a time and inserts it before pulling the next, it
 * names the payload being inserted when the trigger raises an error.
 */
static IngestBatchPosition *ingest_batch_active = NULL;

static char *ingest_clip(const char *s);

/*
 * ingest_describe
 *		A short description of a JSON value for error details: numbers and
 *		booleans as written, other values by their type.  The result is
 *		palloc'd.
 */
static char *
ingest_describe(struct json_object *value)
{
	switch (json_object_get_type(value))
	{
		case json_type_null:
			return pstrdup("null");
		case json_type_boolean:
		case json_type_int:
		case json_type_double:
			/* a number's text as written (ingest_build_scalar), cut short */
			return ingest_clip(json_object_to_json_string(value));
		case json_type_string:
			return pstrdup("a string");
		case json_type_object:
			return pstrdup("an object");
		case json_type_array:
			return pstrdup("an array");
	}
	return pstrdup("an unknown value");
}

/*
 * ingest_bad_field
 *		Raise the error for a field of the wrong type or value (22023).
 */
static void
pg_attribute_noreturn()
ingest_bad_field(const char *field, const char *expected, struct json_object *got)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"%s\": expected %s", field, expected),
			 errdetail("Got %s. The log was not recorded.", ingest_describe(got))));
}

/*
 * ingest_clip
 *		A value as quoted in an error's DETAIL: at most INGEST_DETAIL_CHARS
 *		characters of it, followed by "..." when it was cut.
 */
static char *
ingest_clip(const char *s)
{
	size_t		len = strlen(s);
	int			cut;

	if (len <= INGEST_DETAIL_CHARS)
		return pstrdup(s);
	cut = pg_mbcharcliplen(s, (int) Min(len, (size_t) INGEST_DETAIL_CHARS * MAX_MULTIBYTE_CHAR_LEN),
						   INGEST_DETAIL_CHARS);
	if ((size_t) cut == len)
		return pstrdup(s);
	return psprintf("%.*s...", cut, s);
}

/*
 * State of ingest_parse() while PostgreSQL's JSON parser calls back: the
 * json-c tree being built and the containers that are open.  Every
 * container is attached to its parent when it opens, so root owns all that
 * has been built and releasing it releases everything.
 */
typedef struct IngestBuild
{
	struct json_object *root;
	bool		have_root;
	int			depth;			/* open containers */
	struct json_object *open[INGEST_MAX_DEPTH];
	char	   *keys[INGEST_MAX_DEPTH]; /* pending key of an open object */
	JsonLexContext *lex;
	const char *what;			/* "payload", "request", "response" */
	Size		charged;		/* estimated json-c memory of the tree */
} IngestBuild;

/*
 * What one payload's json-c tree may cost.  json-c's memory is malloc'd and
 * unseen by PostgreSQL: an empty object costs about 790 bytes, so a 64 MB
 * payload of "{}"s would take some 17 GB.  Each container is charged
 * INGEST_CONTAINER_COST and each scalar INGEST_SCALAR_COST plus its length,
 * before it is made; a tree beyond INGEST_MAX_TREE is refused (22023).
 */
#define INGEST_MAX_TREE			((Size) 256 * 1024 * 1024)
#define INGEST_CONTAINER_COST	1024
#define INGEST_SCALAR_COST		64

/*
 * ingest_build_charge
 *		Count cost against the tree's budget; refuse the payload beyond it.
 *		Called before the value is made, so nothing is to be released.
 */
static void
ingest_build_charge(IngestBuild *b, Size cost)
{
	b->charged += cost;
	if (b->charged > INGEST_MAX_TREE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": too many JSON values to read", b->what),
				 errdetail("Reading it would take more than %zu MB (each object or array counts %d bytes, each other value %d bytes plus its length). The log was not recorded.",
						   INGEST_MAX_TREE / (1024 * 1024), INGEST_CONTAINER_COST,
						   INGEST_SCALAR_COST)));
}

/*
 * ingest_build_path
 *		Where the value being attached sits, for errors: the keys and array
 *		indexes of the open containers ("metadata.tags[2]").
 */
static char *
ingest_build_path(IngestBuild *b)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < b->depth; i++)
	{
		if (json_object_is_type(b->open[i], json_type_array))
		{
			/* Outer arrays hold the open element already; the last does not. */
			size_t		n = json_object_array_length(b->open[i]);

			appendStringInfo(&buf, "[%zu]", i < b->depth - 1 && n > 0 ? n - 1 : n);
		}
		else if (b->keys[i] != NULL)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? "." : "", b->keys[i]);
	}
	return buf.data;
}

/*
 * ingest_build_attach
 *		Attach a new value (NULL for JSON null) to the open container, or
 *		make it the root.  A key that the object already has is an error
 *		(22023): json-c, like jsonb, would silently keep the last value, so
 *		what a reader of the first one saw would not be what is recorded.
 */
static void
ingest_build_attach(IngestBuild *b, struct json_object *value)
{
	struct json_object *parent;
	int			rc;

	if (b->depth == 0)
	{
		b->root = value;
		b->have_root = true;
		return;
	}
	parent = b->open[b->depth - 1];
	if (json_object_is_type(parent, json_type_array))
		rc = json_object_array_add(parent, value);
	else
	{
		char	   *key = b->keys[b->depth - 1];

		if (json_object_object_get_ex(parent, key, NULL))
		{
			char	   *path = ingest_build_path(b);

			json_object_put(value);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("duplicate key \"%s\" in %s", ingest_clip(path), b->what),
					 errdetail("A key may appear only once in an object. The log was not recorded.")));
		}
		rc = json_object_object_add_ex(parent, key, value, JSON_C_OBJECT_ADD_KEY_IS_NEW);
	}
	if (rc != 0)
	{
		json_object_put(value);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
}

static void
ingest_build_open(IngestBuild *b, struct json_object *container)
{
	if (container == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (b->depth >= INGEST_MAX_DEPTH)
	{
		json_object_put(container);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid JSON in %s: nested deeper than %d levels", b->what, INGEST_MAX_DEPTH),
				 errdetail("The log was not recorded.")));
	}
	ingest_build_attach(b, container);
	b->open[b->depth] = container;
	b->keys[b->depth] = NULL;
	b->depth++;
}

static void
ingest_build_object_start(void *state)
{
	ingest_build_charge((IngestBuild *) state, INGEST_CONTAINER_COST);
	ingest_build_open((IngestBuild *) state, json_object_new_object());
}

static void
ingest_build_array_start(void *state)
{
	ingest_build_charge((IngestBuild *) state, INGEST_CONTAINER_COST);
	ingest_build_open((IngestBuild *) state, json_object_new_array());
}

static void
ingest_build_end(void *state)
{
	((IngestBuild *) state)->depth--;
}

static void
ingest_build_field_start(void *state, char *fname, bool isnull)
{
	IngestBuild *b = (IngestBuild *) state;

	b->keys[b->depth - 1] = fname;
}

/*
 * ingest_build_scalar
 *		A string, number, boolean or null.  A number keeps the text it was
 *		written with (json_object_to_json_string returns it): doubles by
 *		json_object_new_double_s, integers that json-c cannot hold exactly
 *		(beyond 64 bits, where it saturates, and "-0") by a serializer that
 *		prints the text.  Whoever reads a number reads its text when the
 *		value may not be exact (ingest_number_text).
 */
static void
ingest_build_scalar(void *state, char *token, JsonTokenType tokentype)
{
	IngestBuild *b = (IngestBuild *) state;
	struct json_object *value = NULL;

	ingest_build_charge(b, INGEST_SCALAR_COST + (token ? strlen(token) : 0));
	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			value = json_object_new_string_len(token, strlen(token));
			break;
		case JSON_TOKEN_NUMBER:
			if (strpbrk(token, ".eE") != NULL)
				value = json_object_new_double_s(strtod(token, NULL), token);
			else
			{
				int64		n;

				errno = 0;
				n = strtoll(token, NULL, 10);
				value = json_object_new_int64(n);
				if (value != NULL && (errno == ERANGE || strcmp(token, "-0") == 0))
				{
					char	   *text = strdup(token);

					if (text == NULL)
					{
						json_object_put(value);
						value = NULL;
					}
					else
						json_object_set_serializer(value, json_object_userdata_to_json_string,
												   text, json_object_free_userdata);
				}
			}
			break;
		case JSON_TOKEN_TRUE:
			value = json_object_new_boolean(1);
			break;
		case JSON_TOKEN_FALSE:
			value = json_object_new_boolean(0);
			break;
		case JSON_TOKEN_NULL:
			ingest_build_attach(b, NULL);
			return;
		default:
			elog(ERROR, "unexpected JSON token type %d", (int) tokentype);
	}
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	ingest_build_attach(b, value);
}

/*
 * ingest_parse_error
 *		Raise the error of PostgreSQL's JSON parser as json and jsonb input
 *		do (22P02, or 22P05 for \u0000 and escapes the server encoding
 *		cannot hold), naming what was parsed; the token it quotes is cut to
 *		INGEST_DETAIL_CHARS characters.
 */
static void
pg_attribute_noreturn()
ingest_parse_error(JsonParseErrorType error, JsonLexContext *lex, const char *what)
{
	int			at;
	char	   *detail;

	/* At the end of the input there is no token (token_start is NULL). */
	if (lex->token_start == NULL)
		at = lex->input_length;
	else
		at = (int) (lex->token_start - lex->input) + 1;
	/* Clip the quoted token (not for ESCAPING_REQUIRED: it names the byte at the end). */
	if (lex->token_start != NULL && error != JSON_ESCAPING_REQUIRED &&
		lex->token_terminator - lex->token_start > INGEST_DETAIL_CHARS)
		lex->token_terminator = lex->token_start +
			pg_mbcharcliplen(lex->token_start,
							 Min(lex->token_terminator - lex->token_start,
								 INGEST_DETAIL_CHARS * MAX_MULTIBYTE_CHAR_LEN),
							 INGEST_DETAIL_CHARS);
	detail = json_errdetail(error, lex);
	if (lex->token_start == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid JSON in %s", what),
				 errdetail("%s The log was not recorded.", detail)));
	if (error == JSON_UNICODE_CODE_POINT_ZERO || error == JSON_UNICODE_HIGH_ESCAPE)
		ereport(ERROR,
				(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
				 errmsg("unsupported Unicode escape sequence in %s", what),
				 errdetail("%s At byte %d. The log was not recorded.", detail, at),
				 errhint("A payload must be storable as jsonb, which cannot hold \\u0000.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid JSON in %s", what),
			 errdetail("%s At byte %d. The log was not recorded.", detail, at)));
}

/*
 * ingest_parse
 *		Parse one JSON document (the whole of data[0..len), in the server
 *		encoding) into a json-c tree.  Returns the root, which the caller
 *		must release with json_object_put (NULL stands for a JSON null
 *		document).
 *
 *		PostgreSQL's own JSON parser reads the text, so whatever json and
 *		jsonb input reject is rejected with their errors (22P02: lone
 *		surrogates, raw control characters, "00", "1.", NaN; 22P05:
 *		\u0000), and the tree is built from its callbacks, with keys and
 *		strings de-escaped by it.  A duplicate key in any object (22023),
 *		nesting deeper than INGEST_MAX_DEPTH (22P02) and a document larger
 *		than INGEST_MAX_PAYLOAD (22023) are refused too.  On any error the
 *		partial tree is released.
 */
static struct json_object *
ingest_parse(const char *data, size_t len, const char *what)
{
	IngestBuild b;
	JsonSemAction sem;
	JsonLexContext *lex;
	JsonParseErrorType result;
	MemoryContext parse_context;
	MemoryContext old;

	if (len > INGEST_MAX_PAYLOAD)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": larger than %d MB", what,
						INGEST_MAX_PAYLOAD / (1024 * 1024)),
				 errdetail("Got %zu bytes; at most %d are accepted. The log was not recorded.",
						   len, INGEST_MAX_PAYLOAD)));

	memset(&b, 0, sizeof(b));
	b.what = what;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &b;
	sem.object_start = ingest_build_object_start;
	sem.object_end = ingest_build_end;
	sem.array_start = ingest_build_array_start;
	sem.array_end = ingest_build_end;
	sem.object_field_start = ingest_build_field_start;
	sem.scalar = ingest_build_scalar;

	/* The parser's tokens and keys are garbage once json-c has copied them. */
	parse_context = AllocSetContextCreate(CurrentMemoryContext, "analytics ingest parse",
										  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(parse_context);
	PG_TRY();
	{
		lex = makeJsonLexContextCstringLen((char *) data, (int) len,
										   GetDatabaseEncoding(), true);
		b.lex = lex;
		result = pg_parse_json(lex, &sem);
		if (result != JSON_SUCCESS)
		{
			MemoryContextSwitchTo(old);
			ingest_parse_error(result, lex, what);
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		if (b.have_root)
			json_object_put(b.root);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(parse_context);
	return b.root;
}

/*
 * ingest_get
 *		The value of key in obj, or NULL when it is absent or JSON null.
 */
static struct json_object *
ingest_get(struct json_object *obj, const char *key)
{
	struct json_object *value = NULL;

	if (!json_object_object_get_ex(obj, key, &value))
		return NULL;
	return value;
}

/*
 * ingest_string
 *		A JSON string as palloc'd text.  It is in the server encoding and
 *		holds no NUL already: ingest_parse() de-escaped it with the server's
 *		JSON parser, which refuses \u0000.
 */
static char *
ingest_string(struct json_object *value, const char *field, int *lenp)
{
	const char *s = json_object_get_string(value);
	int			len = json_object_get_string_len(value);

	if (lenp)
		*lenp = len;
	return pnstrdup(s, len);
}

/*
 * ingest_numeric
 *		A numeric from the text of a JSON number, exactly as written.  A
 *		number that numeric cannot hold (more than 131072 digits before the
 *		decimal point or 16383 after it, exponent included) is refused with
 *		22023 naming the field, before numeric_in could fail without naming
 *		it.
 */
static Numeric
ingest_numeric(const char *text, const char *field)
{
	const char *p = text;
	int64		int_digits = 0;
	int64		frac_digits = 0;
	int64		exponent = 0;

	if (*p == '-')
		p++;
	for (; isdigit((unsigned char) *p); p++)
		int_digits++;
	if (*p == '.')
		for (p++; isdigit((unsigned char) *p); p++)
			frac_digits++;
	if (*p == 'e' || *p == 'E')
	{
		bool		negative = false;

		p++;
		if (*p == '+' || *p == '-')
			negative = (*p++ == '-');
		for (; isdigit((unsigned char) *p); p++)
			if (exponent < PG_INT32_MAX)
				exponent = exponent * 10 + (*p - '0');
		if (negative)
			exponent = -exponent;
	}
	if (int_digits + exponent > INGEST_NUMERIC_MAX_WEIGHT ||
		frac_digits - exponent > INGEST_NUMERIC_MAX_SCALE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": out of range for type numeric", field),
				 errdetail("Got %s. The log was not recorded.", ingest_clip(text))));
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

/*
 * ingest_text_field
 *		Set a text column from an optional JSON string field.
 */
static void
ingest_text_field(IngestRow *row, int col, struct json_object *obj,
				  const char *key, const char *field)
{
	struct json_object *value = ingest_get(obj, key);
	char	   *s;
	int			len;

	if (value == NULL)
		return;
	if (!json_object_is_type(value, json_type_string))
		ingest_bad_field(field, "a string", value);
	s = ingest_string(value, field, &len);
	row->values[col] = PointerGetDatum(cstring_to_text_with_len(s, len));
	row->nulls[col] = ' ';
}

/*
 * ingest_tokens
 *		Set a token count column from a JSON integer (0 to 2^31 - 1).
 */
static void
ingest_tokens(IngestRow *row, int col, struct json_object *value, const char *field)
{
	int64		n;

	if (value == NULL)
		return;
	if (!json_object_is_type(value, json_type_int))
		ingest_bad_field(field, "a non-negative integer", value);
	/* json-c saturates beyond 64 bits: still out of range either way */
	n = json_object_get_int64(value);
	if (n < 0)
		ingest_bad_field(field, "a non-negative integer", value);
	if (n > PG_INT32_MAX)
		ingest_bad_field(field, "an integer from 0 to 2147483647", value);
	row->values[col] = Int32GetDatum((int32) n);
	row->nulls[col] = ' ';
}

/*
 * ingest_seconds
 *		Set a double precision column (seconds) from a non-negative JSON
 *		number, read from its text as float8 input reads it.  One that
 *		double precision cannot hold (1e400, 1e-400) is refused; any other
 *		reaches the insert trigger as it is, which checks the bounds.
 */
static void
ingest_seconds(IngestRow *row, int col, struct json_object *value, const char *field)
{
	double		d;
	char	   *text;
	bool		have_error = false;

	if (value == NULL)
		return;
	if (!json_object_is_type(value, json_type_int) &&
		!json_object_is_type(value, json_type_double))
		ingest_bad_field(field, "a finite non-negative number", value);
	text = pstrdup(json_object_to_json_string(value));
	d = float8in_internal_opt_error(text, NULL, "double precision", text, &have_error);
	if (have_error || isnan(d) || isinf(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": out of range for type double precision", field),
				 errdetail("Got %s. The log was not recorded.", ingest_clip(text))));
	if (d < 0)
		ingest_bad_field(field, "a finite non-negative number", value);
	row->values[col] = Float8GetDatum(d);
	row->nulls[col] = ' ';
}

/*
 * ingest_cost
 *		Set the cost from a non-negative JSON number, exactly as written
 *		(from the number's text, never through a double or a saturating
 *		integer).  Its bounds are the insert trigger's to check.
 */
static void
ingest_cost(IngestRow *row, struct json_object *value, const char *field)
{
	Numeric		cost;

	if (value == NULL)
		return;
	if (!json_object_is_type(value, json_type_int) &&
		!json_object_is_type(value, json_type_double))
		ingest_bad_field(field, "a finite non-negative number", value);
	cost = ingest_numeric(json_object_to_json_string(value), field);
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(cost),
										  NumericGetDatum(int64_to_numeric(0)))) < 0)
		ingest_bad_field(field, "a finite non-negative number", value);
	row->values[COL_COST] = NumericGetDatum(cost);
	row->nulls[COL_COST] = ' ';
}

/*
 * ingest_status
 *		Set status_code from a JSON integer between 100 and 599.
 */
static void
ingest_status(IngestRow *row, struct json_object *value, const char *field)
{
	int64		n;

	if (value == NULL)
		return;
	if (!json_object_is_type(value, json_type_int))
		ingest_bad_field(field, "an integer between 100 and 599", value);
	n = json_object_get_int64(value);
	if (n < 100 || n > 599)
		ingest_bad_field(field, "an integer between 100 and 599", value);
	row->values[COL_STATUS_CODE] = Int32GetDatum((int32) n);
}

/*
 * ingest_timestamp
 *		Set created_at from an ISO 8601 string ("2025-01-31T12:00:00Z"; the
 *		session's TimeZone applies when there is no offset).  Uses the
 *		server's date parser without letting it throw, so that the error
 *		names the field.
 */
static void
ingest_timestamp(IngestRow *row, struct json_object *value, const char *field)
{
	char	   *str;
	int			len;
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *fields[MAXDATEFIELDS];
	int			ftypes[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz;
	int			dterr;
	struct pg_tm tt,
			   *tm = &tt;
	fsec_t		fsec;
	TimestampTz result;

	if (value == NULL)
		return;
	if (!json_object_is_type(value, json_type_string))
		ingest_bad_field(field, "an ISO 8601 timestamp string", value);
	str = ingest_string(value, field, &len);

	/*
	 * ISO 8601 only: YYYY-MM-DD first, no "now", "epoch" or "infinity", and
	 * at most INGEST_TIMESTAMP_CHARS long (the date parser's own errors, such
	 * as an unknown time zone, quote what they read).
	 */
	if (len < 10 || len > INGEST_TIMESTAMP_CHARS || !isdigit((unsigned char) str[0]) || !isdigit((unsigned char) str[1]) ||
		!isdigit((unsigned char) str[2]) || !isdigit((unsigned char) str[3]) ||
		str[4] != '-' || !isdigit((unsigned char) str[5]) || !isdigit((unsigned char) str[6]) ||
		str[7] != '-' || !isdigit((unsigned char) str[8]) || !isdigit((unsigned char) str[9]))
		dterr = DTERR_BAD_FORMAT;
	else
	{
		dterr = ParseDateTime(str, workbuf, sizeof(workbuf), fields, ftypes,
							  MAXDATEFIELDS, &nf);
		if (dterr == 0)
			dterr = DecodeDateTime(fields, ftypes, nf, &dtype, tm, &fsec, &tz);
		if (dterr == 0 && dtype != DTK_DATE)
			dterr = DTERR_BAD_FORMAT;
	}
	if (dterr == DTERR_FIELD_OVERFLOW || dterr == DTERR_MD_FIELD_OVERFLOW ||
		dterr == DTERR_TZDISP_OVERFLOW)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("invalid value for \"%s\": date/time field value out of range", field),
				 errdetail("Got \"%s\". The log was not recorded.", ingest_clip(str))));
	if (dterr != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid value for \"%s\": expected an ISO 8601 timestamp", field),
				 errdetail("Got \"%s\". The log was not recorded.", ingest_clip(str)),
				 errhint("Write it like 2025-01-31T12:00:00Z.")));
	if (tm2timestamp(tm, fsec, &tz, &result) != 0 || TIMESTAMP_NOT_FINITE(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("invalid value for \"%s\": timestamp out of range", field),
				 errdetail("Got \"%s\". The log was not recorded.", ingest_clip(str))));
	row->values[COL_CREATED_AT] = TimestampTzGetDatum(result);
}

/*
 * ingest_jsonb_push
 *		Append a json-c value to a jsonb being built (token WJB_VALUE inside
 *		an object, WJB_ELEM inside an array).  Numbers keep the text they
 *		were written with; NaN and Infinity, and integers outside the 64-bit
 *		range (which json-c cannot represent), are rejected.  Returns what
 *		pushJsonbValue returned: for a closing object or array at the
 *		outermost level, the finished value.
 */
static JsonbValue *
ingest_jsonb_push(JsonbParseState **state, JsonbIteratorToken token,
				  struct json_object *value, const char *field)
{
	JsonbValue	v;

	check_stack_depth();
	switch (json_object_get_type(value))
	{
		case json_type_object:
			{
				struct json_object_iterator it = json_object_iter_begin(value);
				struct json_object_iterator end = json_object_iter_end(value);

				pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
				while (!json_object_iter_equal(&it, &end))
				{
					const char *key = json_object_iter_peek_name(&it);

					/* copied by pushJsonbValue; no NUL in it (ingest_parse) */
					v.type = jbvString;
					v.val.string.val = (char *) key;
					v.val.string.len = strlen(key);
					pushJsonbValue(state, WJB_KEY, &v);
					ingest_jsonb_push(state, WJB_VALUE,
									  json_object_iter_peek_value(&it), field);
					json_object_iter_next(&it);
				}
				return pushJsonbValue(state, WJB_END_OBJECT, NULL);
			}
		case json_type_array:
			{
				size_t		n = json_object_array_length(value);
				size_t		i;

				pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
				for (i = 0; i < n; i++)
					ingest_jsonb_push(state, WJB_ELEM,
									  json_object_array_get_idx(value, i), field);
				return pushJsonbValue(state, WJB_END_ARRAY, NULL);
			}
		case json_type_null:
			v.type = jbvNull;
			break;
		case json_type_boolean:
			v.type = jbvBool;
			v.val.boolean = json_object_get_boolean(value);
			break;
		case json_type_string:
			v.type = jbvString;
			v.val.string.val = ingest_string(value, field, &v.val.string.len);
			break;
		case json_type_int:
			{
				int64		n = json_object_get_int64(value);

				/* beyond 64 bits json-c saturates: take the text */
				v.type = jbvNumeric;
				if (n == PG_INT64_MIN || n == PG_INT64_MAX)
					v.val.numeric = ingest_numeric(json_object_to_json_string(value), field);
				else
					v.val.numeric = int64_to_numeric(n);
				break;
			}
		case json_type_double:
			v.type = jbvNumeric;
			v.val.numeric = ingest_numeric(json_object_to_json_string(value), field);
			break;
	}
	return pushJsonbValue(state, token, &v);
}

/*
 * ingest_to_jsonb
 *		A jsonb Datum from a json-c object or array.
 */
static Datum
ingest_to_jsonb(struct json_object *value, const char *field)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	result = ingest_jsonb_push(&state, WJB_VALUE, value, field);
	return JsonbPGetDatum(JsonbValueToJsonb(result));
}

/*
 * ingest_jsonb_field
 *		Set a jsonb column from an optional field that must be an object (or
 *		an array when want_array).
 */
static void
ingest_jsonb_field(IngestRow *row, int col, struct json_object *value,
				   const char *field, bool want_array)
{
	if (value == NULL)
		return;
	if (!json_object_is_type(value, want_array ? json_type_array : json_type_object))
		ingest_bad_field(field, want_array ? "a JSON array" : "a JSON object", value);
	row->values[col] = ingest_to_jsonb(value, field);
	row->nulls[col] = ' ';
}

/*
 * ingest_row_init
 *		Defaults of a log: now(), no customer, 0 tokens, cost from the
 *		trigger, status 200, everything else null.
 */
static void
ingest_row_init(IngestRow *row)
{
	int			i;

	for (i = 0; i < INGEST_NCOLS; i++)
	{
		row->values[i] = (Datum) 0;
		row->nulls[i] = 'n';
	}
	row->values[COL_CREATED_AT] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	row->nulls[COL_CREATED_AT] = ' ';
	row->values[COL_PROMPT_TOKENS] = Int32GetDatum(0);
	row->nulls[COL_PROMPT_TOKENS] = ' ';
	row->values[COL_COMPLETION_TOKENS] = Int32GetDatum(0);
	row->nulls[COL_COMPLETION_TOKENS] = ' ';
	row->values[COL_STATUS_CODE] = Int32GetDatum(200);
	row->nulls[COL_STATUS_CODE] = ' ';
	row->customer_params = (Datum) 0;
}

/*
 * ingest_customer
 *		The customer of a log: customer_params (an object, upserted before
 *		the log is inserted) and/or customer_identifier (a string).  When
 *		both are given they must name the same customer; customer_params
 *		without customer_identifier takes the one given beside it.
 *		prefix is prepended to field names in errors ("", "request.").
 */
static void
ingest_customer(IngestRow *row, struct json_object *obj, const char *prefix)
{
	struct json_object *params = ingest_get(obj, "customer_params");
	struct json_object *ident = ingest_get(obj, "customer_identifier");
	char	   *field_ident = psprintf("%scustomer_identifier", prefix);
	char	   *field_params = psprintf("%scustomer_params", prefix);
	struct json_object *inner;
	int			len;

	if (ident != NULL && !json_object_is_type(ident, json_type_string))
		ingest_bad_field(field_ident, "a string", ident);
	if (params == NULL)
	{
		ingest_text_field(row, COL_CUSTOMER_IDENTIFIER, obj,
						  "customer_identifier", field_ident);
		return;
	}
	if (!json_object_is_type(params, json_type_object))
		ingest_bad_field(field_params, "a JSON object", params);

	inner = ingest_get(params, "customer_identifier");
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
		ingest_bad_field(psprintf("%s.customer_identifier", field_params), "a string", inner);
	if (ident != NULL &&
		strcmp(json_object_get_string(ident), json_object_get_string(inner)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" and \"%s.customer_identifier\" name different customers",
						field_ident, field_params),
				 errdetail("The log was not recorded.")));

	row->values[COL_CUSTOMER_IDENTIFIER] =
		PointerGetDatum(cstring_to_text(ingest_string(inner, field_params, &len)));
	row->nulls[COL_CUSTOMER_IDENTIFIER] = ' ';
	row->customer_params = ingest_to_jsonb(params, field_params);
}

/*
 * ingest_check_identifier
 *		customer_identifier must be 1 to 255 characters (the trigger checks
 *		it too; checking here names the field before any customer upsert).
 */
static void
ingest_check_identifier(IngestRow *row)
{
	int			len;

	if (row->nulls[COL_CUSTOMER_IDENTIFIER] == 'n')
		return;
	len = pg_mbstrlen_with_len(VARDATA_ANY(DatumGetPointer(row->values[COL_CUSTOMER_IDENTIFIER])),
							   VARSIZE_ANY_EXHDR(DatumGetPointer(row->values[COL_CUSTOMER_IDENTIFIER])));
	if (len < 1 || len > 255)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"customer_identifier\": must be 1 to 255 characters long"),
				 errdetail("Got %d characters. The log was not recorded.", len)));
}

/*
 * ingest_model
 *		Set the model from a required non-empty JSON string.
 */
static void
ingest_model(IngestRow *row, struct json_object *value, const char *field)
{
	char	   *s;
	int			len;

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("missing value for \"%s\"", field),
				 errdetail("Every log names its model. The log was not recorded.")));
	if (!json_object_is_type(value, json_type_string) ||
		json_object_get_string_len(value) == 0)
		ingest_bad_field(field, "a non-empty string", value);
	s = ingest_string(value, field, &len);
	row->values[COL_MODEL] = PointerGetDatum(cstring_to_text_with_len(s, len));
	row->nulls[COL_MODEL] = ' ';
}

/*
 * ingest_fill_payload
 *		Fill a row from a Keywords AI style logging payload.  Unknown keys
 *		are ignored; JSON null is the same as an absent key.
 */
static void
ingest_fill_payload(IngestRow *row, struct json_object *obj)
{
	struct json_object *usage;

	if (!json_object_is_type(obj, json_type_object))
		ingest_bad_field("payload", "a JSON object", obj);

	ingest_model(row, ingest_get(obj, "model"), "model");
	ingest_customer(row, obj, "");
	ingest_check_identifier(row);

	usage = ingest_get(obj, "usage");
	if (usage != NULL)
	{
		if (!json_object_is_type(usage, json_type_object))
			ingest_bad_field("usage", "a JSON object", usage);
		ingest_tokens(row, COL_PROMPT_TOKENS, ingest_get(usage, "prompt_tokens"),
					  "usage.prompt_tokens");
		ingest_tokens(row, COL_COMPLETION_TOKENS, ingest_get(usage, "completion_tokens"),
					  "usage.completion_tokens");
	}
	/* Top-level counts win over usage.* */
	ingest_tokens(row, COL_PROMPT_TOKENS, ingest_get(obj, "prompt_tokens"), "prompt_tokens");
	ingest_tokens(row, COL_COMPLETION_TOKENS, ingest_get(obj, "completion_tokens"),
				  "completion_tokens");

	ingest_cost(row, ingest_get(obj, "cost"), "cost");
	ingest_seconds(row, COL_LATENCY, ingest_get(obj, "latency"), "latency");
	ingest_seconds(row, COL_TIME_TO_FIRST_TOKEN, ingest_get(obj, "time_to_first_token"),
				   "time_to_first_token");
	ingest_status(row, ingest_get(obj, "status_code"), "status_code");
	ingest_text_field(row, COL_ERROR_MESSAGE, obj, "error_message", "error_message");
	ingest_timestamp(row, ingest_get(obj, "timestamp"), "timestamp");
	ingest_jsonb_field(row, COL_METADATA, ingest_get(obj, "metadata"), "metadata", false);
	ingest_text_field(row, COL_THREAD_IDENTIFIER, obj, "thread_identifier", "thread_identifier");
	ingest_text_field(row, COL_CUSTOM_IDENTIFIER, obj, "custom_identifier", "custom_identifier");
	ingest_jsonb_field(row, COL_PROMPT_MESSAGES, ingest_get(obj, "prompt_messages"),
					   "prompt_messages", true);
	ingest_jsonb_field(row, COL_COMPLETION_MESSAGE, ingest_get(obj, "completion_message"),
					   "completion_message", false);
}

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

		s = ingest_get(response, status_keys[i]);
		if (s == NULL && json_object_is_type(error, json_type_object))
			s = ingest_get(error, status_keys[i]);
		/* Only an integer is a status; "status": "RESOURCE_EXHAUSTED" is not. */
		if (s != NULL && json_object_is_type(s, json_type_int))
		{
			IngestRow	tmp;

			ingest_status(&tmp, s, psprintf("response.%s", status_keys[i]));
			return DatumGetInt32(tmp.values[COL_STATUS_CODE]);
		}
	}
	if (!json_object_is_type(error, json_type_object))
		return 500;
	/* error.code is more specific than error.type: look at it first. */
	for (k = 0; k < lengthof(kind_keys); k++)
	{
		struct json_object *v = ingest_get(error, kind_keys[k]);

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
 * ingest_fill_openai
 *		Fill a row from an OpenAI chat-completions request body and the
 *		response: a chat.completion object or an error object.
 */
static void
ingest_fill_openai(IngestRow *row, struct json_object *request,
				   struct json_object *response)
{
	struct json_object *error;
	struct json_object *model;

	if (!json_object_is_type(request, json_type_object))
		ingest_bad_field("request", "a JSON object", request);
	if (!json_object_is_type(response, json_type_object))
		ingest_bad_field("response", "a JSON object", response);

	ingest_customer(row, request, "request.");
	if (row->nulls[COL_CUSTOMER_IDENTIFIER] == 'n')
		ingest_text_field(row, COL_CUSTOMER_IDENTIFIER, request, "user", "request.user");
	ingest_check_identifier(row);
	ingest_jsonb_field(row, COL_PROMPT_MESSAGES, ingest_get(request, "messages"),
					   "request.messages", true);
	ingest_jsonb_field(row, COL_METADATA, ingest_get(request, "metadata"),
					   "request.metadata", false);
	ingest_text_field(row, COL_THREAD_IDENTIFIER, request, "thread_identifier",
					  "request.thread_identifier");
	ingest_text_field(row, COL_CUSTOM_IDENTIFIER, request, "custom_identifier",
					  "request.custom_identifier");

	error = NULL;
	if (json_object_object_get_ex(response, "error", &error) && error != NULL)
	{
		struct json_object *message = NULL;

		if (json_object_is_type(error, json_type_string))
			message = error;
		else if (json_object_is_type(error, json_type_object))
			message = ingest_get(error, "message");
		else
			ingest_bad_field("response.error", "a JSON object", error);
		if (message != NULL)
		{
			char	   *s;
			int			len;

			if (!json_object_is_type(message, json_type_string))
				ingest_bad_field("response.error.message", "a string", message);
			s = ingest_string(message, "response.error.message", &len);
			row->values[COL_ERROR_MESSAGE] = PointerGetDatum(cstring_to_text_with_len(s, len));
			row->nulls[COL_ERROR_MESSAGE] = ' ';
		}
		row->values[COL_STATUS_CODE] = Int32GetDatum(ingest_openai_status(response, error));

		/* The request names the model that was asked for. */
		model = ingest_get(request, "model");
		if (model == NULL && ingest_get(response, "model") != NULL)
			ingest_model(row, ingest_get(response, "model"), "response.model");
		else
			ingest_model(row, model, "request.model");
		return;
	}

	/* A chat.completion object. */
	model = ingest_get(response, "model");
	if (model != NULL)
		ingest_model(row, model, "response.model");
	else
		ingest_model(row, ingest_get(request, "model"), "request.model");

	{
		struct json_object *usage = ingest_get(response, "usage");
		struct json_object *choices = ingest_get(response, "choices");

		if (usage != NULL)
		{
			if (!json_object_is_type(usage, json_type_object))
				ingest_bad_field("response.usage", "a JSON object", usage);
			ingest_tokens(row, COL_PROMPT_TOKENS, ingest_get(usage, "prompt_tokens"),
						  "response.usage.prompt_tokens");
			ingest_tokens(row, COL_COMPLETION_TOKENS, ingest_get(usage, "completion_tokens"),
						  "response.usage.completion_tokens");
		}
		if (choices != NULL)
		{
			if (!json_object_is_type(choices, json_type_array))
				ingest_bad_field("response.choices", "a JSON array", choices);
			if (json_object_array_length(choices) > 0)
			{
				struct json_object *choice = json_object_array_get_idx(choices, 0);

				if (!json_object_is_type(choice, json_type_object))
					ingest_bad_field("response.choices[0]", "a JSON object", choice);
				ingest_jsonb_field(row, COL_COMPLETION_MESSAGE, ingest_get(choice, "message"),
								   "response.choices[0].message", false);
			}
		}
	}
}

/*
 * ingest_upsert
 *		analytics.upsert_customer(customer_params) for the row's customer.
 *		Must be called inside SPI.
 */
static void
ingest_upsert(IngestRow *row)
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
 * ingest_record
 *		Upsert the row's customer_params (if any), then insert the log;
 *		returns its id.  Must be called inside SPI.  The BEFORE INSERT
 *		trigger validates, prices, creates the customer and checks budgets.
 */
static int64
ingest_record(IngestRow *row)
{
	SPIPlanPtr	plan;
	bool		isnull;
	Datum		id;

	if (row->customer_params != (Datum) 0)
		ingest_upsert(row);

	plan = analytics_prepare(&ingest_insert_plan, INGEST_INSERT_SQL, INGEST_NCOLS,
						  ingest_col_types);
	if (SPI_execute_plan(plan, row->values, row->nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not insert log");
	id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	return DatumGetInt64(id);
}

/*
 * ingest_arg_data
 *		A text, json or jsonb argument as JSON text in the server encoding
 *		for ingest_parse(); *lenp gets its length in bytes.  Raises 22004 for SQL NULL.
 */
static const char *
ingest_arg_data(FunctionCallInfo fcinfo, int argno, Oid type, const char *what,
				size_t *lenp)
{
	const char *s;
	int			len;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what),
				 errdetail("The log was not recorded.")));
	if (type == JSONBOID)
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(argno);

		s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		len = strlen(s);
	}
	else
	{
		text	   *t = PG_GETARG_TEXT_PP(argno);

		s = VARDATA_ANY(t);
		len = VARSIZE_ANY_EXHDR(t);
	}
	*lenp = len;
	return s;
}

/*
 * ingest_one
 *		analytics.ingest(payload) for a payload of the given type.
 */
static Datum
ingest_one(FunctionCallInfo fcinfo, Oid type)
{
	size_t		len;
	const char *data = ingest_arg_data(fcinfo, 0, type, "payload", &len);
	struct json_object *root;
	IngestRow	row;
	int64		id = 0;

	analytics_require_current("analytics.ingest()");
	root = ingest_parse(data, len, "payload");
	PG_TRY();
	{
		ingest_row_init(&row);
		ingest_fill_payload(&row, root);
		SPI_connect();
		id = ingest_record(&row);
		SPI_finish();
	}
	PG_FINALLY();
	{
		json_object_put(root);
	}
	PG_END_TRY();
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

/*
 * ingest_openai_common
 *		analytics.ingest_openai(request, response, latency) for arguments
 *		of the given type.
 */
static Datum
ingest_openai_common(FunctionCallInfo fcinfo, Oid type)
{
	size_t		request_len;
	size_t		response_len;
	const char *request_data = ingest_arg_data(fcinfo, 0, type, "request", &request_len);
	const char *response_data = ingest_arg_data(fcinfo, 1, type, "response", &response_len);
	struct json_object *volatile request = NULL;
	struct json_object *volatile response = NULL;
	IngestRow	row;
	int64		id = 0;

	analytics_require_current("analytics.ingest_openai()");
	PG_TRY();
	{
		request = ingest_parse(request_data, request_len, "request");
		response = ingest_parse(response_data, response_len, "response");
		ingest_row_init(&row);
		ingest_fill_openai(&row, request, response);
		if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
		{
			double		latency = PG_GETARG_FLOAT8(2);

			if (isnan(latency) || isinf(latency) || latency < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for \"latency\": expected a finite non-negative number"),
						 errdetail("Got %g. The log was not recorded.", latency)));
			row.values[COL_LATENCY] = Float8GetDatum(latency);
			row.nulls[COL_LATENCY] = ' ';
		}
		SPI_connect();
		id = ingest_record(&row);
		SPI_finish();
	}
	PG_FINALLY();
	{
		json_object_put(request);
		json_object_put(response);
	}
	PG_END_TRY();
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

/*
 * ingest_batch_context
 *		Error context callback: which payload of the batch failed.
 */
static void
ingest_batch_context(void *arg)
{
	IngestBatchPosition *pos = (IngestBatchPosition *) arg;

	if (pos->payload == 0)
		return;
	if (pos->line > 0)
		errcontext("analytics.ingest_batch payload %d (line %d)", pos->payload, pos->line);
	else
		errcontext("analytics.ingest_batch payload %d (array element %d)",
				   pos->payload, pos->payload);
}

/*
 * ingest_strip_statement
 *		Remove ingest_batch's own INSERT statement from an error context: it
 *		says nothing to the caller and hides the payload's position.
 */
static char *
ingest_strip_statement(char *context)
{
	static const char line[] = "SQL statement \"" INGEST_BATCH_SQL "\"";
	char	   *found;
	StringInfoData buf;

	if (context == NULL || (found = strstr(context, line)) == NULL)
		return context;
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, context, found - context);
	found += strlen(line);
	if (*found == '\n')
		found++;
	else if (buf.len > 0 && buf.data[buf.len - 1] == '\n')
		buf.data[--buf.len] = '\0';
	appendStringInfoString(&buf, found);
	return buf.len > 0 ? buf.data : NULL;
}

/*
 * ingest_batch
 *		analytics.ingest_batch(payloads text): newline-delimited JSON (one
 *		payload per line; blank lines are skipped) or a JSON array of
 *		payloads.  Returns the number of logs recorded.
 *
 *		One INSERT ... SELECT for the whole batch, fed row by row by
 *		_ingest_batch_rows(), so that the executor starts once and each
 *		payload is parsed when its row is inserted.  Any error aborts the
 *		statement (nothing is recorded) and its context names the payload.
 */
Datum
ingest_batch(PG_FUNCTION_ARGS)
{
	IngestBatchPosition pos = {0, 0};
	IngestBatchPosition *volatile outer = ingest_batch_active;
	ErrorContextCallback callback;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int64		count = 0;
	MemoryContext caller_context = CurrentMemoryContext;

	analytics_require_current("analytics.ingest_batch()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payloads must not be null"),
				 errdetail("Nothing was recorded.")));
	values[0] = PointerGetDatum(PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0)));

	callback.callback = ingest_batch_context;
	callback.arg = &pos;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	PG_TRY();
	{
		SPIPlanPtr	plan;

		ingest_batch_active = &pos;
		SPI_connect();
		plan = analytics_prepare(&ingest_batch_plan, INGEST_BATCH_SQL, 1, argtypes);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert logs");
		count = SPI_processed;
		SPI_finish();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		ingest_batch_active = outer;
		MemoryContextSwitchTo(caller_context);
		edata = CopyErrorData();
		FlushErrorState();
		edata->context = ingest_strip_statement(edata->context);
		ReThrowError(edata);
	}
	PG_END_TRY();
	ingest_batch_active = outer;
	error_context_stack = callback.previous;
	PG_RETURN_INT64(count);
}

static bool
ingest_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * ingest_value_end
 *		The offset of the ',' or ']' that ends the array element starting at
 *		pos (brackets and strings skipped), or len when there is none.
 */
static size_t
ingest_value_end(const char *data, size_t len, size_t pos)
{
	int			depth = 0;

	while (pos < len)
	{
		char		c = data[pos];

		if (c == '"')
		{
			for (pos++; pos < len && data[pos] != '"'; pos++)
				if (data[pos] == '\\')
					pos++;
		}
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || (c == ']' && depth > 0))
			depth--;
		else if (depth == 0 && (c == ',' || c == ']'))
			return pos;
		pos++;
	}
	return len;
}

static void
pg_attribute_noreturn()
ingest_batch_malformed(const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid JSON in payloads: %s", problem),
			 errdetail("Nothing was recorded.")));
}

/*
 * ingest_batch_next
 *		Find the next payload of the batch: sets *start and *len and
 *		advances the position, or returns false at the end.  Each payload is
 *		parsed on its own, so the batch never becomes one json-c tree.
 */
static bool
ingest_batch_next(IngestBatchState *st, IngestBatchPosition *pos,
				  const char **start, size_t *len)
{
	const char *data = st->data;

	if (st->array)
	{
		size_t		end;

		if (st->finished)
		{
			pos->payload = 0;
			while (st->pos < st->len && ingest_is_space(data[st->pos]))
				st->pos++;
			if (st->pos < st->len)
				ingest_batch_malformed("unexpected characters after the array");
			return false;
		}
		pos->payload++;
		end = ingest_value_end(data, st->len, st->pos);
		if (end == st->len)
			ingest_batch_malformed("the array is not closed");
		*start = data + st->pos;
		*len = end - st->pos;
		st->pos = end + 1;
		if (data[end] == ']')
			st->finished = true;
		else
			while (st->pos < st->len && ingest_is_space(data[st->pos]))
				st->pos++;
		return true;
	}

	/* Newline-delimited JSON: the next line that is not blank. */
	while (st->pos < st->len)
	{
		const char *eol = memchr(data + st->pos, '\n', st->len - st->pos);
		size_t		end = eol ? (size_t) (eol - data) : st->len;
		size_t		q = st->pos;

		st->line++;
		st->pos = end + 1;
		while (q < end && ingest_is_space(data[q]))
			q++;
		if (q < end)
		{
			pos->payload++;
			pos->line = st->line;
			*start = data + q;
			*len = end - q;
			return true;
		}
	}
	return false;
}

/*
 * ingest_batch_start
 *		First call of _ingest_batch_rows(): the payloads, the row
 *		type and whether it is an array.  Allocates in the multi-call context.
 */
static IngestBatchState *
ingest_batch_start(FunctionCallInfo fcinfo)
{
	IngestBatchState *st = palloc0(sizeof(IngestBatchState));
	text	   *t = PG_GETARG_TEXT_PP(0);
	int			i;

	st->len = VARSIZE_ANY_EXHDR(t);
	st->data = VARDATA_ANY(t);

	if (get_call_result_type(fcinfo, NULL, &st->tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "_ingest_batch_rows must return a row type");
	for (i = 0; i < INGEST_NCOLS; i++)
	{
		st->attnums[i] = SPI_fnumber(st->tupdesc, ingest_col_names[i]);
		if (st->attnums[i] <= 0)
			elog(ERROR, "analytics.logs has no column \"%s\"", ingest_col_names[i]);
	}

	while (st->pos < st->len && ingest_is_space(st->data[st->pos]))
		st->pos++;
	if (st->pos < st->len && st->data[st->pos] == '[')
	{
		st->array = true;
		st->pos++;
		while (st->pos < st->len && ingest_is_space(st->data[st->pos]))
			st->pos++;
		if (st->pos < st->len && st->data[st->pos] == ']')
		{
			st->pos++;
			st->finished = true;
		}
	}
	return st;
}

/*
 * ingest_batch_rows
 *		analytics._ingest_batch_rows(payloads text): the rows of the batch,
 *		one per call (value-per-call, so the INSERT of ingest_batch inserts
 *		each before the next payload is parsed).  Upserts the customer of a
 *		payload with customer_params before returning its row.  Only
 *		ingest_batch() may call it.
 */
Datum
ingest_batch_rows(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	IngestBatchState *st;
	IngestBatchPosition *pos = ingest_batch_active;
	const char *payload;
	size_t		len;
	struct json_object *root;
	IngestRow	row;
	Datum	   *values;
	bool	   *nulls;
	int			i;

	if (pos == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("analytics._ingest_batch_rows() can only be called by analytics.ingest_batch()")));

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		funcctx->user_fctx = ingest_batch_start(fcinfo);
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = (IngestBatchState *) funcctx->user_fctx;

	if (!ingest_batch_next(st, pos, &payload, &len))
		SRF_RETURN_DONE(funcctx);

	root = ingest_parse(payload, len, "payload");
	PG_TRY();
	{
		ingest_row_init(&row);
		ingest_fill_payload(&row, root);
	}
	PG_FINALLY();
	{
		json_object_put(root);
	}
	PG_END_TRY();

	if (row.customer_params != (Datum) 0)
	{
		SPI_connect();
		ingest_upsert(&row);
		SPI_finish();
	}

	values = palloc0(st->tupdesc->natts * sizeof(Datum));
	nulls = palloc(st->tupdesc->natts * sizeof(bool));
	for (i = 0; i < st->tupdesc->natts; i++)
		nulls[i] = true;
	for (i = 0; i < INGEST_NCOLS; i++)
	{
		values[st->attnums[i] - 1] = row.values[i];
		nulls[st->attnums[i] - 1] = (row.nulls[i] == 'n');
	}
	SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(heap_form_tuple(st->tupdesc, values, nulls)));
}
