/*-------------------------------------------------------------------------
 *
 * ingest_payload.h
 *	  The payload schema of JSON ingest: the columns of analytics.logs a
 *	  payload fills, what each holds, and recording the row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_INGEST_PAYLOAD_H
#define ANALYTICS_INGEST_PAYLOAD_H

struct json_object;

/* The columns of analytics.logs that ingest fills: INSERT parameters, in order. */
typedef enum IngestColumnId
{
	INGEST_COL_CREATED_AT,
	INGEST_COL_CUSTOMER_IDENTIFIER,
	INGEST_COL_MODEL,
	INGEST_COL_PROMPT_TOKENS,
	INGEST_COL_COMPLETION_TOKENS,
	INGEST_COL_COST,
	INGEST_COL_LATENCY,
	INGEST_COL_TIME_TO_FIRST_TOKEN,
	INGEST_COL_STATUS_CODE,
	INGEST_COL_ERROR_MESSAGE,
	INGEST_COL_THREAD_IDENTIFIER,
	INGEST_COL_CUSTOM_IDENTIFIER,
	INGEST_COL_METADATA,
	INGEST_COL_PROMPT_MESSAGES,
	INGEST_COL_COMPLETION_MESSAGE,
	INGEST_COL_CACHED_TOKENS,
	INGEST_COL_CACHE_WRITE_TOKENS,
	INGEST_COL_REASONING_TOKENS,
	INGEST_COL_REQUEST_ID,
	INGEST_COL_ADMISSION_ID,
	INGEST_NCOLS
} IngestColumnId;

/* What a column holds, and so how a JSON value is read into it. */
typedef enum IngestKind
{
	INGEST_KIND_TIMESTAMP,		/* an ISO 8601 string */
	INGEST_KIND_TEXT,			/* a string */
	INGEST_KIND_MODEL,			/* a non-empty string, required */
	INGEST_KIND_TOKENS,			/* an integer from 0 to 2^31 - 1 */
	INGEST_KIND_COST,			/* a non-negative number, exact */
	INGEST_KIND_SECONDS,		/* a non-negative number */
	INGEST_KIND_STATUS,			/* an integer from 100 to 599 */
	INGEST_KIND_OBJECT,			/* a JSON object, as jsonb */
	INGEST_KIND_ARRAY,			/* a JSON array, as jsonb */
	INGEST_KIND_IDENTIFIER,		/* a string of 1 to 255 characters */
	INGEST_KIND_ID				/* an integer from 1 to 2^63 - 1 */
} IngestKind;

typedef struct IngestColumn
{
	const char *name;			/* in analytics.logs */
	Oid			type;			/* the INSERT parameter's type */
	IngestKind	kind;
} IngestColumn;

extern const IngestColumn ingest_columns[INGEST_NCOLS];

/* One log to record: the INSERT's parameters and the customer to upsert. */
typedef struct IngestRow
{
	Datum		values[INGEST_NCOLS];
	char		nulls[INGEST_NCOLS];	/* SPI convention: 'n' or ' ' */
	Datum		customer_params;	/* jsonb, or 0 for none */
} IngestRow;

/* A field of a document (ingest_json_lookup's path) and its column. */
typedef struct IngestField
{
	const char *path;
	IngestColumnId col;
} IngestField;

/* Filling a row (from a tree ingest_json_read() holds). */
extern void ingest_payload_init(IngestRow *row);
extern Datum ingest_payload_value(IngestColumnId col, struct json_object *value,
								  const char *field);
extern void ingest_payload_set(IngestRow *row, IngestColumnId col,
							   struct json_object *value, const char *field);
extern void ingest_payload_map(IngestRow *row, struct json_object *obj,
							   const char *prefix, const IngestField *fields,
							   int nfields);
extern void ingest_payload_customer(IngestRow *row, struct json_object *obj,
									const char *prefix);
extern void ingest_payload_check_identifier(IngestRow *row);

/* A whole payload: parsed, mapped, released. */
extern void ingest_payload_read(IngestRow *row, const char *data, size_t len);

/* Recording (inside SPI), by INSERTs written from ingest_columns. */
extern void ingest_payload_upsert(IngestRow *row);
extern int64 ingest_payload_record(IngestRow *row);
extern char *ingest_payload_column_list(const char *prefix);

#endif							/* ANALYTICS_INGEST_PAYLOAD_H */
