/*-------------------------------------------------------------------------
 *
 * ingest_json.c
 *	  Reading JSON for ingest: documents into json-c trees, and values out
 *	  of them as SQL values.
 *
 * A document is read by PostgreSQL's own JSON parser into a json-c tree
 * (ingest_json_parse: json/jsonb input's rules, no \u0000, no duplicate key,
 * at most 64 MB and a bounded tree, numbers keeping their text).  The typed
 * getters check a value's type and range and raise 22023 naming the field
 * ("usage.prompt_tokens"); what a field must hold is the payload schema's
 * (ingest_payload.c), which passes the wording of its errors.
 *
 * json-c allocates with malloc and knows nothing of ereport's longjmp:
 * trees exist only inside ingest_json_read(), whose PG_FINALLY releases
 * them, and every value the getters return is copied into palloc'd memory.
 * Nothing json-c allocated outlives the call.
 *
 * Locking and transactions: none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include <json-c/json_object_iterator.h>

#include "ingest_json.h"

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

static char *ingest_json_clip(const char *s);

/*
 * ingest_json_describe
 *		A short description of a JSON value for error details: numbers and
 *		booleans as written, other values by their type.  The result is
 *		palloc'd.
 */
static char *
ingest_json_describe(struct json_object *value)
{
	switch (json_object_get_type(value))
	{
		case json_type_null:
			return pstrdup("null");
		case json_type_boolean:
		case json_type_int:
		case json_type_double:
			/* a number's text as written (ingest_build_scalar), cut short */
			return ingest_json_clip(json_object_to_json_string(value));
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
 * ingest_json_bad_field
 *		Raise the error for a field of the wrong type or value (22023):
 *		"invalid value for "field": expected ...", with what it got.
 */
void
ingest_json_bad_field(const char *field, const char *expected, struct json_object *got)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"%s\": expected %s", field, expected),
			 errdetail("Got %s. The log was not recorded.", ingest_json_describe(got))));
}

/*
 * ingest_json_clip
 *		A value as quoted in an error's DETAIL: at most INGEST_DETAIL_CHARS
 *		characters of it, followed by "..." when it was cut.
 */
static char *
ingest_json_clip(const char *s)
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
 * State of ingest_json_parse() while PostgreSQL's JSON parser calls back: the
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
					 errmsg("duplicate key \"%s\" in %s", ingest_json_clip(path), b->what),
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
 *		value may not be exact (ingest_json_numeric).
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
 * ingest_json_parse_error
 *		Raise the error of PostgreSQL's JSON parser as json and jsonb input
 *		do (22P02, or 22P05 for \u0000 and escapes the server encoding
 *		cannot hold), naming what was parsed; the token it quotes is cut to
 *		INGEST_DETAIL_CHARS characters.
 */
static void
pg_attribute_noreturn()
ingest_json_parse_error(JsonParseErrorType error, JsonLexContext *lex, const char *what)
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
 * ingest_json_parse
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
ingest_json_parse(const char *data, size_t len, const char *what)
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
			ingest_json_parse_error(result, lex, what);
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
 * ingest_json_get
 *		The value of key in obj, or NULL when it is absent or JSON null.
 */
struct json_object *
ingest_json_get(struct json_object *obj, const char *key)
{
	struct json_object *value = NULL;

	if (!json_object_object_get_ex(obj, key, &value))
		return NULL;
	return value;
}

/*
 * ingest_json_string
 *		A JSON string as palloc'd text.  It is in the server encoding and
 *		holds no NUL already: ingest_json_parse() de-escaped it with the server's
 *		JSON parser, which refuses \u0000.
 */
char *
ingest_json_string(struct json_object *value, int *lenp)
{
	const char *s = json_object_get_string(value);
	int			len = json_object_get_string_len(value);

	if (lenp)
		*lenp = len;
	return pnstrdup(s, len);
}

/*
 * ingest_json_numeric_text
 *		A numeric from the text of a JSON number, exactly as written.  A
 *		number that numeric cannot hold (more than 131072 digits before the
 *		decimal point or 16383 after it, exponent included) is refused with
 *		22023 naming the field, before numeric_in could fail without naming
 *		it.
 */
static Numeric
ingest_json_numeric_text(const char *text, const char *field)
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
				 errdetail("Got %s. The log was not recorded.", ingest_json_clip(text))));
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

/*
 * ingest_json_push
 *		Append a json-c value to a jsonb being built (token WJB_VALUE inside
 *		an object, WJB_ELEM inside an array).  Numbers keep the text they
 *		were written with; NaN and Infinity, and integers outside the 64-bit
 *		range (which json-c cannot represent), are rejected.  Returns what
 *		pushJsonbValue returned: for a closing object or array at the
 *		outermost level, the finished value.
 */
static JsonbValue *
ingest_json_push(JsonbParseState **state, JsonbIteratorToken token,
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

					/* copied by pushJsonbValue; no NUL in it (ingest_json_parse) */
					v.type = jbvString;
					v.val.string.val = (char *) key;
					v.val.string.len = strlen(key);
					pushJsonbValue(state, WJB_KEY, &v);
					ingest_json_push(state, WJB_VALUE,
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
					ingest_json_push(state, WJB_ELEM,
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
			v.val.string.val = ingest_json_string(value, &v.val.string.len);
			break;
		case json_type_int:
			{
				int64		n = json_object_get_int64(value);

				/* beyond 64 bits json-c saturates: take the text */
				v.type = jbvNumeric;
				if (n == PG_INT64_MIN || n == PG_INT64_MAX)
					v.val.numeric = ingest_json_numeric_text(json_object_to_json_string(value), field);
				else
					v.val.numeric = int64_to_numeric(n);
				break;
			}
		case json_type_double:
			v.type = jbvNumeric;
			v.val.numeric = ingest_json_numeric_text(json_object_to_json_string(value), field);
			break;
	}
	return pushJsonbValue(state, token, &v);
}

/*
 * ingest_json_to_jsonb
 *		A jsonb Datum from a json-c object or array.
 */
Datum
ingest_json_to_jsonb(struct json_object *value, const char *field)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	result = ingest_json_push(&state, WJB_VALUE, value, field);
	return JsonbPGetDatum(JsonbValueToJsonb(result));
}

/*
 * ingest_json_arg
 *		A text, json or jsonb argument as JSON text in the server encoding
 *		for ingest_json_parse(); *lenp gets its length in bytes.  Raises 22004 for SQL NULL.
 */
const char *
ingest_json_arg(FunctionCallInfo fcinfo, int argno, Oid type, const char *what,
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
 * ingest_json_read
 *		Parse each of docs (in order) into its tree, call reader with them
 *		all, and release every tree, whether the parse, the reader or
 *		nothing failed.  The one place json-c trees live: the reader copies
 *		whatever it keeps into palloc'd memory.
 */
void
ingest_json_read(IngestJsonDoc *docs, int ndocs, IngestJsonReader reader, void *arg)
{
	int			i;

	for (i = 0; i < ndocs; i++)
		docs[i].root = NULL;
	PG_TRY();
	{
		for (i = 0; i < ndocs; i++)
			docs[i].root = ingest_json_parse(docs[i].data, docs[i].len, docs[i].what);
		reader(docs, arg);
	}
	PG_FINALLY();
	{
		for (i = 0; i < ndocs; i++)
		{
			json_object_put(docs[i].root);
			docs[i].root = NULL;
		}
	}
	PG_END_TRY();
}

/*
 * ingest_json_lookup
 *		The value at path in obj: keys joined by '.', array elements as
 *		"[n]" ("usage.prompt_tokens", "choices[0].message").  NULL when a
 *		key on the way is absent or JSON null, or an array is shorter; a
 *		value on the way that is not the object or array the path needs is
 *		an error naming it (prefix, then the path up to it).
 */
struct json_object *
ingest_json_lookup(struct json_object *obj, const char *prefix, const char *path)
{
	const char *p = path;

	for (;;)
	{
		const char *end = p + strcspn(p, ".[");

		if (end > p)
		{
			/* a key */
			char	   *key = pnstrdup(p, end - p);

			obj = ingest_json_get(obj, key);
			if (obj == NULL)
				return NULL;
		}
		else if (*p == '[')
		{
			/* an element: present (JSON null too) while the array is long enough */
			size_t		n = strtoul(p + 1, NULL, 10);

			end = strchr(p, ']') + 1;
			if (n >= json_object_array_length(obj))
				return NULL;
			obj = json_object_array_get_idx(obj, n);
		}
		if (*end == '\0')
			return obj;
		if (*end == '.')
			p = end + 1;
		else
			p = end;
		if (!json_object_is_type(obj, *end == '[' ? json_type_array : json_type_object))
			ingest_json_bad_field(psprintf("%s%.*s", prefix, (int) (end - path), path),
								  *end == '[' ? "a JSON array" : "a JSON object", obj);
	}
}

/*
 * ingest_json_text
 *		A JSON string as text.
 */
text *
ingest_json_text(struct json_object *value, const char *field)
{
	char	   *s;
	int			len;

	if (!json_object_is_type(value, json_type_string))
		ingest_json_bad_field(field, "a string", value);
	s = ingest_json_string(value, &len);
	return cstring_to_text_with_len(s, len);
}

/*
 * ingest_json_integer
 *		A JSON integer from min to max: expected names what was wanted when
 *		the value is no integer or below min, expected_max when above max
 *		(json-c saturates beyond 64 bits: out of range either way).
 */
int64
ingest_json_integer(struct json_object *value, const char *field, int64 min, int64 max,
					const char *expected, const char *expected_max)
{
	int64		n;

	if (!json_object_is_type(value, json_type_int))
		ingest_json_bad_field(field, expected, value);
	n = json_object_get_int64(value);
	if (n < min)
		ingest_json_bad_field(field, expected, value);
	if (n > max)
		ingest_json_bad_field(field, expected_max, value);
	return n;
}

/*
 * ingest_json_number
 *		The text of a JSON number, as written; expected names what was
 *		wanted when the value is no number.
 */
static const char *
ingest_json_number(struct json_object *value, const char *field, const char *expected)
{
	if (!json_object_is_type(value, json_type_int) &&
		!json_object_is_type(value, json_type_double))
		ingest_json_bad_field(field, expected, value);
	return json_object_to_json_string(value);
}

/*
 * ingest_json_float8
 *		A JSON number as double precision, read from its text as float8
 *		input reads it.  One that double precision cannot hold (1e400,
 *		1e-400) is refused; expected names what was wanted when the value is
 *		no number.
 */
float8
ingest_json_float8(struct json_object *value, const char *field, const char *expected)
{
	double		d;
	char	   *text;
	bool		have_error = false;

	text = pstrdup(ingest_json_number(value, field, expected));
	d = float8in_internal_opt_error(text, NULL, "double precision", text, &have_error);
	if (have_error || isnan(d) || isinf(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": out of range for type double precision", field),
				 errdetail("Got %s. The log was not recorded.", ingest_json_clip(text))));
	return d;
}

/*
 * ingest_json_numeric
 *		A JSON number as numeric, exactly as written (from the number's
 *		text, never through a double or a saturating integer); expected
 *		names what was wanted when the value is no number.
 */
Numeric
ingest_json_numeric(struct json_object *value, const char *field, const char *expected)
{
	return ingest_json_numeric_text(ingest_json_number(value, field, expected), field);
}

/*
 * ingest_json_timestamp
 *		An ISO 8601 string ("2025-01-31T12:00:00Z"; the session's TimeZone
 *		applies when there is no offset) as timestamptz.  Uses the server's
 *		date parser without letting it throw, so that the error names the
 *		field.
 */
TimestampTz
ingest_json_timestamp(struct json_object *value, const char *field)
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

	if (!json_object_is_type(value, json_type_string))
		ingest_json_bad_field(field, "an ISO 8601 timestamp string", value);
	str = ingest_json_string(value, &len);

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
				 errdetail("Got \"%s\". The log was not recorded.", ingest_json_clip(str))));
	if (dterr != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid value for \"%s\": expected an ISO 8601 timestamp", field),
				 errdetail("Got \"%s\". The log was not recorded.", ingest_json_clip(str)),
				 errhint("Write it like 2025-01-31T12:00:00Z.")));
	if (tm2timestamp(tm, fsec, &tz, &result) != 0 || TIMESTAMP_NOT_FINITE(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("invalid value for \"%s\": timestamp out of range", field),
				 errdetail("Got \"%s\". The log was not recorded.", ingest_json_clip(str))));
	return result;
}

/*
 * ingest_json_jsonb
 *		A JSON object or array (type) as jsonb.
 */
Datum
ingest_json_jsonb(struct json_object *value, const char *field, json_type type)
{
	if (!json_object_is_type(value, type))
		ingest_json_bad_field(field, type == json_type_array ? "a JSON array" : "a JSON object",
							  value);
	return ingest_json_to_jsonb(value, field);
}
