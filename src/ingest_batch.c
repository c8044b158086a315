/*-------------------------------------------------------------------------
 *
 * ingest_batch.c
 *	  Batches of JSON ingest: analytics.ingest_batch(payloads), newline-
 *	  delimited JSON or a JSON array of payloads.
 *
 * One INSERT ... SELECT for the whole batch, fed row by row by
 * analytics._ingest_batch_rows(), a value-per-call set-returning function:
 * each call finds the next payload (a line, or an array element found by a
 * bracket- and string-aware scan, so the batch never becomes one json-c
 * tree), reads it as analytics.ingest() does (ingest_payload_read), upserts
 * its customer, and returns one row of analytics.logs' type, which the
 * INSERT inserts (trigger included) before pulling the next.  So the
 * position _ingest_batch_rows() advances names the payload being inserted
 * when anything raises an error, and an error context callback reports it.
 *
 * Locking and transactions: those of the INSERT and of
 * ingest_payload_upsert().  The batch is one statement in the caller's
 * transaction: an error records nothing.  So a payload whose request_id
 * another transaction records at the same time (both probing before either
 * inserted, request_id.c) fails the batch with 23505, unlike ingest(),
 * which has a subtransaction per call: retried, the batch skips that log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/params.h"
#include "tcop/dest.h"
#include "utils/memutils.h"

#include "analytics.h"
#include "ingest_payload.h"
#include "shards.h"

PG_FUNCTION_INFO_V1(ingest_batch);
PG_FUNCTION_INFO_V1(ingest_batch_rows);

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

static SPIPlanPtr ingest_batch_plan = NULL;
static SPIPlanPtr ingest_batch_returning_plan = NULL;

/*
 * The position of the running ingest_batch(), or NULL outside of it.
 * _ingest_batch_rows() advances it before returning each row; since the
 * INSERT pulls one row at a time and inserts it before pulling the next, it
 * names the payload being inserted when the trigger raises an error.
 */
static IngestBatchPosition *ingest_batch_active = NULL;

/*
 * ingest_batch_sql
 *		The batch's INSERT, written from the payload schema's columns once
 *		per backend; with returning, it returns a row per log inserted.
 *		On a Citus cluster the INSERT's own count is that of the rows sent
 *		to the shards, duplicates of a request_id that the shards' trigger
 *		skipped included (request_id.c): there the batch counts the rows
 *		returned instead, with a receiver of its own.
 */
static const char *
ingest_batch_sql(bool returning)
{
	static char *sql[2] = {NULL, NULL};

	if (sql[returning] == NULL)
		sql[returning] = MemoryContextStrdup(TopMemoryContext,
											 psprintf("INSERT INTO analytics.logs (%s) SELECT %s "
													  "FROM (SELECT analytics._ingest_batch_rows($1) AS r OFFSET 0) AS s%s",
													  ingest_payload_column_list(""),
													  ingest_payload_column_list("(r)."),
													  returning ? " RETURNING 1" : ""));
	return sql[returning];
}

/* A receiver that counts the rows of the batch's INSERT ... RETURNING. */
typedef struct IngestBatchCounter
{
	DestReceiver pub;
	int64		count;
} IngestBatchCounter;

static bool
ingest_batch_count_slot(TupleTableSlot *slot, DestReceiver *self)
{
	((IngestBatchCounter *) self)->count++;
	return true;
}

static void
ingest_batch_count_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
ingest_batch_count_nothing(DestReceiver *self)
{
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
	char	   *line = psprintf("SQL statement \"%s\"", ingest_batch_sql(false));
	char	   *found;
	StringInfoData buf;

	if (context != NULL && strstr(context, line) == NULL)
		line = psprintf("SQL statement \"%s\"", ingest_batch_sql(true));
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
 *		payloads.  Returns the number of logs recorded: a payload whose
 *		request_id has a log already is skipped and not counted.
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
		if (!shards_logs_distributed())
		{
			plan = analytics_prepare(&ingest_batch_plan, ingest_batch_sql(false), 1, argtypes);
			if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not insert logs");
			count = SPI_processed;
		}
		else
		{
			/*
			 * Citus: count the rows returned, through a receiver of our own
			 * (SPI's would compare them with Citus' count of rows sent).
			 */
			SPIExecuteOptions options = {0};
			IngestBatchCounter counter = {{0}};

			plan = analytics_prepare(&ingest_batch_returning_plan, ingest_batch_sql(true),
									 1, argtypes);
			options.params = makeParamList(1);
			options.params->numParams = 1;
			options.params->params[0].value = values[0];
			options.params->params[0].isnull = false;
			options.params->params[0].pflags = PARAM_FLAG_CONST;
			options.params->params[0].ptype = TEXTOID;
			counter.pub.receiveSlot = ingest_batch_count_slot;
			counter.pub.rStartup = ingest_batch_count_startup;
			counter.pub.rShutdown = ingest_batch_count_nothing;
			counter.pub.rDestroy = ingest_batch_count_nothing;
			counter.pub.mydest = DestNone;
			options.dest = &counter.pub;
			if (SPI_execute_plan_extended(plan, &options) < 0)
				elog(ERROR, "could not insert logs");
			count = counter.count;
		}
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
		st->attnums[i] = SPI_fnumber(st->tupdesc, ingest_columns[i].name);
		if (st->attnums[i] <= 0)
			elog(ERROR, "analytics.logs has no column \"%s\"", ingest_columns[i].name);
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

	ingest_payload_read(&row, payload, len);

	if (row.customer_params != (Datum) 0)
	{
		SPI_connect();
		ingest_payload_upsert(&row);
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
