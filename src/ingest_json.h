/*-------------------------------------------------------------------------
 *
 * ingest_json.h
 *	  Reading JSON for ingest: PostgreSQL's JSON parser builds a json-c
 *	  tree (within a memory budget), every tree is released on every path,
 *	  and typed getters turn its values into SQL values with errors that
 *	  name the field.
 *
 * Including this header brings in json-c and utils/builtins.h together:
 * fmgrprotos.h declares a function json_object(), a type name of json-c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_INGEST_JSON_H
#define ANALYTICS_INGEST_JSON_H

#include "fmgr.h"
#define json_object pg_json_object
#include "utils/builtins.h"
#undef json_object
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include <json-c/json.h>

/*
 * One JSON document to read: its text (in the server encoding), what errors
 * call it ("payload", "request", "response"), and its tree while the reader
 * of ingest_json_read() runs (NULL for a JSON null document).
 */
typedef struct IngestJsonDoc
{
	const char *data;
	size_t		len;
	const char *what;
	struct json_object *root;
} IngestJsonDoc;

/* What ingest_json_read() calls with the trees; copies what it keeps. */
typedef void (*IngestJsonReader) (IngestJsonDoc *docs, void *arg);

/* Reading documents (json-c trees never outlive ingest_json_read). */
extern const char *ingest_json_arg(FunctionCallInfo fcinfo, int argno, Oid type,
								   const char *what, size_t *lenp);
extern void ingest_json_read(IngestJsonDoc *docs, int ndocs,
							 IngestJsonReader reader, void *arg);

/* Finding values. */
extern struct json_object *ingest_json_get(struct json_object *obj, const char *key);
extern struct json_object *ingest_json_lookup(struct json_object *obj,
											  const char *prefix, const char *path);

/* Typed getters: value is not NULL; a wrong one raises 22023 naming field. */
extern void ingest_json_bad_field(const char *field, const char *expected,
								  struct json_object *got) pg_attribute_noreturn();
extern char *ingest_json_string(struct json_object *value, int *lenp);
extern text *ingest_json_text(struct json_object *value, const char *field);
extern int64 ingest_json_integer(struct json_object *value, const char *field,
								 int64 min, int64 max, const char *expected,
								 const char *expected_max);
extern float8 ingest_json_float8(struct json_object *value, const char *field,
								 const char *expected);
extern Numeric ingest_json_numeric(struct json_object *value, const char *field,
								   const char *expected);
extern TimestampTz ingest_json_timestamp(struct json_object *value, const char *field);
extern Datum ingest_json_jsonb(struct json_object *value, const char *field,
							   json_type type);
extern Datum ingest_json_to_jsonb(struct json_object *value, const char *field);

#endif							/* ANALYTICS_INGEST_JSON_H */
