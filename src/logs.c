/*-------------------------------------------------------------------------
 *
 * logs.c
 *	  The triggers of analytics.logs: every new log goes through
 *	  logs_before_insert, and logs_guard keeps logs facts.
 *
 * logs_before_insert is the BEFORE INSERT row trigger of every new log
 * (INSERT, COPY and the ingest functions).  It checks the fields that
 * constraints cannot explain well (SPEC section 14: 22023 naming the
 * field), then runs the write path in this order: the cost, from the model
 * prices when none is given (prices.c); the customer's settings, which
 * covers the customer against changes and creates it when unknown
 * (customers.c); and, for customers with a budget or blocked, budget
 * enforcement (budget.c).  A log with a request_id whose log exists already
 * is skipped first, before any of that (request_id.c).  Why the settings read are current, and what is
 * locked in which order, is in src/README.md.
 *
 * logs_guard keeps logs facts: UPDATE of any column but metadata,
 * error_message, prompt_messages and completion_message is rejected, and so
 * are DELETE and TRUNCATE unless analytics_delete_allowed is set by
 * purge_logs() or delete_customer().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "admission.h"
#include "analytics.h"
#include "budget.h"
#include "customers.h"
#include "logs.h"
#include "pool.h"
#include "prices.h"
#include "privs.h"
#include "request_id.h"
#include "shards.h"

PG_FUNCTION_INFO_V1(logs_before_insert);
PG_FUNCTION_INFO_V1(logs_guard);

/* Column numbers of analytics.logs, looked up once per backend. */
typedef struct LogsColumns
{
	Oid			relid;
	int			id;
	int			created_at;
	int			customer_identifier;
	int			model;
	int			prompt_tokens;
	int			completion_tokens;
	int			cached_tokens;
	int			cache_write_tokens;
	int			reasoning_tokens;
	int			cost;
	int			latency;
	int			time_to_first_token;
	int			error_message;
	int			thread_identifier;
	int			custom_identifier;
	int			metadata;
	int			prompt_messages;
	int			completion_message;
	int			request_id;
	int			admission_id;
} LogsColumns;

static LogsColumns logs_columns;

/*
 * Bounds of a log's fields (SPEC section 14).  created_at may not be earlier
 * than 2000-01-01 00:00 UTC, which is TimestampTz 0.
 */
#define LOGS_MAX_IDENTIFIER		255
#define LOGS_MAX_SECONDS		86400.0
#define LOGS_MAX_NOTE_BYTES		((Size) 1024 * 1024)
#define LOGS_MAX_BODY_BYTES		((Size) 64 * 1024 * 1024)
#define LOGS_MIN_CREATED_AT		((TimestampTz) 0)
#define LOGS_MAX_COST			1000000

static int
column_number(TupleDesc tupdesc, const char *name)
{
	int			attnum = SPI_fnumber(tupdesc, name);

	if (attnum <= 0)
		elog(ERROR, "analytics.logs has no column \"%s\"", name);
	return attnum - 1;
}

static void
logs_columns_lookup(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);

	if (logs_columns.relid == RelationGetRelid(rel))
		return;
	logs_columns.id = column_number(tupdesc, "id");
	logs_columns.created_at = column_number(tupdesc, "created_at");
	logs_columns.customer_identifier = column_number(tupdesc, "customer_identifier");
	logs_columns.model = column_number(tupdesc, "model");
	logs_columns.prompt_tokens = column_number(tupdesc, "prompt_tokens");
	logs_columns.completion_tokens = column_number(tupdesc, "completion_tokens");
	logs_columns.cached_tokens = column_number(tupdesc, "cached_tokens");
	logs_columns.cache_write_tokens = column_number(tupdesc, "cache_write_tokens");
	logs_columns.reasoning_tokens = column_number(tupdesc, "reasoning_tokens");
	logs_columns.cost = column_number(tupdesc, "cost");
	logs_columns.latency = column_number(tupdesc, "latency");
	logs_columns.time_to_first_token = column_number(tupdesc, "time_to_first_token");
	logs_columns.error_message = column_number(tupdesc, "error_message");
	logs_columns.thread_identifier = column_number(tupdesc, "thread_identifier");
	logs_columns.custom_identifier = column_number(tupdesc, "custom_identifier");
	logs_columns.metadata = column_number(tupdesc, "metadata");
	logs_columns.prompt_messages = column_number(tupdesc, "prompt_messages");
	logs_columns.completion_message = column_number(tupdesc, "completion_message");
	logs_columns.request_id = column_number(tupdesc, "request_id");
	logs_columns.admission_id = column_number(tupdesc, "admission_id");
	logs_columns.relid = RelationGetRelid(rel);
}

static void
reject_field(const char *field, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"%s\": %s", field, problem),
			 errdetail("The log was not recorded.")));
}

/*
 * check_float
 *		Reject a latency-like value that is not finite or outside
 *		[0, LOGS_MAX_SECONDS].
 */
static void
check_float(const char *field, Datum value, bool isnull)
{
	double		v;

	if (isnull)
		return;
	v = DatumGetFloat8(value);
	if (isnan(v) || isinf(v))
		reject_field(field, "must be a finite number");
	if (v < 0)
		reject_field(field, "must not be negative");
	if (v > LOGS_MAX_SECONDS)
		reject_field(field, "must be at most 86400 seconds");
}

/*
 * check_text_length
 *		Reject a text value that is not 1 to max_chars characters long.  A
 *		value whose size alone proves it too long is rejected without being
 *		detoasted; the error quotes none of it.
 */
static void
check_text_length(const char *field, Datum value, bool isnull, int max_chars)
{
	Size		bytes;
	text	   *t;
	int			chars;

	if (isnull)
		return;
	bytes = toast_raw_datum_size(value) - VARHDRSZ;
	if (bytes > (Size) max_chars * pg_database_encoding_max_length())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": must be 1 to %d characters long", field, max_chars),
				 errdetail("Got %zu bytes. The log was not recorded.", bytes)));
	t = DatumGetTextPP(value);
	chars = pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	if (chars < 1 || chars > max_chars)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": must be 1 to %d characters long", field, max_chars),
				 errdetail("Got %d characters. The log was not recorded.", chars)));
}

/*
 * check_size
 *		Reject a text or jsonb value larger than max_bytes as stored
 *		(uncompressed), without detoasting it.
 */
static void
check_size(const char *field, Datum value, bool isnull, Size max_bytes)
{
	Size		bytes;

	if (isnull)
		return;
	bytes = toast_raw_datum_size(value) - VARHDRSZ;
	if (bytes > max_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"%s\": must be at most %zu bytes", field, max_bytes),
				 errdetail("Got %zu bytes. The log was not recorded.", bytes)));
}

/*
 * check_mutable_columns
 *		The bounds of the columns a log may still change (logs_guard lets
 *		UPDATE through for them), checked on INSERT and on UPDATE.
 */
static void
check_mutable_columns(Datum *values, bool *nulls)
{
	check_size("error_message", values[logs_columns.error_message],
			   nulls[logs_columns.error_message], LOGS_MAX_NOTE_BYTES);
	check_size("metadata", values[logs_columns.metadata],
			   nulls[logs_columns.metadata], LOGS_MAX_NOTE_BYTES);
	check_size("prompt_messages", values[logs_columns.prompt_messages],
			   nulls[logs_columns.prompt_messages], LOGS_MAX_BODY_BYTES);
	check_size("completion_message", values[logs_columns.completion_message],
			   nulls[logs_columns.completion_message], LOGS_MAX_BODY_BYTES);
}

/*
 * check_created_at
 *		Reject a created_at before 2000-01-01 UTC or later than the wall
 *		clock plus analytics.max_clock_skew.  The wall clock is read only
 *		when the value is later than the transaction's start plus the skew.
 */
static void
check_created_at(Datum value)
{
	TimestampTz ts = DatumGetTimestampTz(value);
	int64		skew = (int64) analytics_max_clock_skew * USECS_PER_SEC;

	if (TIMESTAMP_NOT_FINITE(ts))
		reject_field("created_at", "must be a finite timestamp");
	if (ts < LOGS_MIN_CREATED_AT ||
		(ts > GetCurrentTransactionStartTimestamp() + skew &&
		 ts > GetCurrentTimestamp() + skew))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"created_at\": must be between 2000-01-01 and now() plus analytics.max_clock_skew"),
				 errdetail("Got %s; analytics.max_clock_skew is %d s. The log was not recorded.",
						   timestamptz_to_str(ts), analytics_max_clock_skew)));
}

/*
 * logs_check_customer_identifier
 *		Reject a customer_identifier that is not 1 to 255 characters long
 *		(22023, the log was not recorded).  The insert trigger checks every
 *		log with it; the ingest functions call it too, to name the field
 *		before they upsert the customer.
 */
void
logs_check_customer_identifier(Datum ident)
{
	check_text_length("customer_identifier", ident, false, LOGS_MAX_IDENTIFIER);
}

/*
 * token_count
 *		A token column of a new log (null counts as 0), rejected when
 *		negative.
 */
static int64
token_count(Datum *values, bool *nulls, int col, const char *field)
{
	int32		n = nulls[col] ? 0 : DatumGetInt32(values[col]);

	if (n < 0)
		reject_field(field, "must not be negative");
	return n;
}

/*
 * check_tokens
 *		The token counts of a new log (SPEC sections 12 and 14): none
 *		negative, total_tokens within integer, and the parts within their
 *		whole: cached_tokens + cache_write_tokens of prompt_tokens,
 *		reasoning_tokens of completion_tokens.  Sums in int64.
 */
static void
check_tokens(Datum *values, bool *nulls)
{
	int64		prompt = token_count(values, nulls, logs_columns.prompt_tokens, "prompt_tokens");
	int64		completion = token_count(values, nulls, logs_columns.completion_tokens,
										 "completion_tokens");
	int64		cached = token_count(values, nulls, logs_columns.cached_tokens, "cached_tokens");
	int64		cache_write = token_count(values, nulls, logs_columns.cache_write_tokens,
										  "cache_write_tokens");
	int64		reasoning = token_count(values, nulls, logs_columns.reasoning_tokens,
										"reasoning_tokens");

	if (prompt + completion > PG_INT32_MAX)
		reject_field("total_tokens", "prompt_tokens + completion_tokens must be at most 2147483647");
	if (cached > prompt)
		reject_field("cached_tokens", "must be at most prompt_tokens (cached tokens are part of the prompt)");
	if (cached + cache_write > prompt)
		reject_field("cache_write_tokens",
					 "cached_tokens + cache_write_tokens must be at most prompt_tokens (both are part of the prompt)");
	if (reasoning > completion)
		reject_field("reasoning_tokens",
					 "must be at most completion_tokens (reasoning tokens are part of the completion)");
}

/*
 * logs_check_fields
 *		The field checks of SPEC section 14 on a new log, but for cost and
 *		customer_identifier (logs_cost, logs_check_customer_identifier):
 *		22023 naming the field, 23502 for a missing model or created_at.
 */
static void
logs_check_fields(Datum *values, bool *nulls)
{
	if (nulls[logs_columns.model])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("\"model\" is required"),
				 errdetail("The log was not recorded.")));
	check_text_length("model", values[logs_columns.model], false, LOGS_MAX_IDENTIFIER);
	check_text_length("thread_identifier", values[logs_columns.thread_identifier],
					  nulls[logs_columns.thread_identifier], LOGS_MAX_IDENTIFIER);
	check_text_length("custom_identifier", values[logs_columns.custom_identifier],
					  nulls[logs_columns.custom_identifier], LOGS_MAX_IDENTIFIER);
	check_text_length("request_id", values[logs_columns.request_id],
					  nulls[logs_columns.request_id], LOGS_MAX_IDENTIFIER);
	check_mutable_columns(values, nulls);

	check_tokens(values, nulls);
	check_float("latency", values[logs_columns.latency],
				nulls[logs_columns.latency]);
	check_float("time_to_first_token", values[logs_columns.time_to_first_token],
				nulls[logs_columns.time_to_first_token]);
	if (nulls[logs_columns.created_at])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("\"created_at\" must not be null"),
				 errdetail("The log was not recorded.")));
	check_created_at(values[logs_columns.created_at]);
}

/*
 * logs_cost
 *		The log's cost: the one given, checked to be finite and within
 *		[0, LOGS_MAX_COST], or else computed from the model prices and
 *		stored into values/nulls.  Returns whether it was given.
 */
static bool
logs_cost(Datum *values, bool *nulls, Numeric *cost)
{
	static Numeric zero = NULL;
	static Numeric max_cost = NULL;
	PricesTokens tokens;

	if (zero == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		zero = int64_to_numeric(0);
		max_cost = int64_to_numeric(LOGS_MAX_COST);
		MemoryContextSwitchTo(old);
	}

	if (!nulls[logs_columns.cost])
	{
		*cost = DatumGetNumeric(values[logs_columns.cost]);
		if (numeric_is_nan(*cost) || numeric_is_inf(*cost))
			reject_field("cost", "must be a finite number");
		if (DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(*cost),
											 NumericGetDatum(zero))))
			reject_field("cost", "must not be negative");
		if (DatumGetBool(DirectFunctionCall2(numeric_gt, NumericGetDatum(*cost),
											 NumericGetDatum(max_cost))))
			reject_field("cost", "must be at most 1000000 USD");
		return true;
	}

	tokens.prompt = token_count(values, nulls, logs_columns.prompt_tokens, "prompt_tokens");
	tokens.completion = token_count(values, nulls, logs_columns.completion_tokens,
									"completion_tokens");
	tokens.cached = token_count(values, nulls, logs_columns.cached_tokens, "cached_tokens");
	tokens.cache_write = token_count(values, nulls, logs_columns.cache_write_tokens,
									 "cache_write_tokens");
	*cost = prices_cost(TextDatumGetCString(values[logs_columns.model]), &tokens);
	values[logs_columns.cost] = NumericGetDatum(*cost);
	nulls[logs_columns.cost] = false;
	return false;
}

/*
 * logs_before_insert_as_owner
 *		The work of logs_before_insert, with the extension owner's rights:
 *		field checks, cost, the request's log, the customer's settings,
 *		budget enforcement.  Returns the row with its cost filled in, NULL
 *		(the row is skipped) when its (customer, request_id) has a log
 *		already, or raises an error that records nothing.  Locks what
 *		customers_settings() and budget_check_log() lock, and may wait for
 *		the transaction writing the request's log (src/README.md).
 */
static Datum
logs_before_insert_as_owner(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	HeapTuple	tuple;
	Datum	   *values;
	bool	   *nulls;
	bool		cost_given;
	bool		on_shard;
	bool		has_customer;
	Numeric		cost;

	analytics_require_current("The insert trigger of analytics.logs");
	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "logs_before_insert must be a BEFORE INSERT row trigger");

	tupdesc = RelationGetDescr(trigdata->tg_relation);
	tuple = trigdata->tg_trigtuple;
	logs_columns_lookup(trigdata->tg_relation);

	values = palloc(tupdesc->natts * sizeof(Datum));
	nulls = palloc(tupdesc->natts * sizeof(bool));
	heap_deform_tuple(tuple, tupdesc, values, nulls);

	logs_check_fields(values, nulls);
	cost_given = logs_cost(values, nulls, &cost);

	/*
	 * After distribute() a log without a customer comes as '' (Citus routes
	 * no NULL; src/shards.c).
	 */
	on_shard = shards_is_shard(trigdata->tg_relation);
	has_customer = !nulls[logs_columns.customer_identifier] &&
		!(on_shard &&
		  VARSIZE_ANY_EXHDR(DatumGetPointer(values[logs_columns.customer_identifier])) == 0);
	if (has_customer)
		logs_check_customer_identifier(values[logs_columns.customer_identifier]);
	else if (!nulls[logs_columns.admission_id])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"admission_id\": a log without a customer settles no admission"),
				 errdetail("Got %lld. The log was not recorded.",
						   (long long) DatumGetInt64(values[logs_columns.admission_id])),
				 errhint("Record the log with the customer_identifier the admission was made for.")));

	/*
	 * Idempotent logging: a request whose log exists records nothing.  Last
	 * of the checks, before anything with side effects.
	 */
	if (!nulls[logs_columns.request_id])
	{
		int64		existing;

		if (request_id_find(trigdata->tg_relation,
							values[logs_columns.customer_identifier],
							nulls[logs_columns.customer_identifier],
							values[logs_columns.request_id], &existing))
		{
			request_id_remember(existing);
			return PointerGetDatum(NULL);
		}
	}

	/* On a Citus shard the id is drawn here, on the shard's node. */
	shards_set_current(trigdata->tg_relation);
	if (on_shard)
	{
		values[logs_columns.id] = Int64GetDatum(shards_next_log_id());
		nulls[logs_columns.id] = false;
	}

	if (has_customer)
	{
		Datum		ident = values[logs_columns.customer_identifier];
		char	   *ident_str;
		const CustomerSettings *settings;
		BudgetHeld	held;
		bool		settles = false;

		ident_str = TextDatumGetCString(ident);
		settings = customers_settings(ident_str, ident,
									  on_shard ? shards_colocated_relid(trigdata->tg_relation, "customers")
									  : InvalidOid);

		/* A log that settles an admission: admission.c. */
		if (!nulls[logs_columns.admission_id])
		{
			int64		admission = DatumGetInt64(values[logs_columns.admission_id]);

			switch (admission_settle(ident, admission,
									 DatumGetInt64(values[logs_columns.id]), &held))
			{
				case ADMISSION_SETTLED:
					settles = true;
					break;
				case ADMISSION_EXPIRED:
					break;
				case ADMISSION_TAKEN:

					/*
					 * The log that took it may be this very request, retried
					 * by the proxy and recorded while this one waited for
					 * the admission: then this one records nothing.
					 */
					if (!nulls[logs_columns.request_id])
					{
						int64		existing;

						if (request_id_find(trigdata->tg_relation, ident, false,
											values[logs_columns.request_id], &existing))
						{
							request_id_remember(existing);
							shards_clear_current();
							return PointerGetDatum(NULL);
						}
					}
					/* Importing history (a restore): recorded, settling nothing. */
					if (analytics_budget_enforcement == BUDGET_ENFORCEMENT_RECORD)
						break;
					admission_taken_error(ident, admission);
				case ADMISSION_UNKNOWN:
					if (analytics_budget_enforcement == BUDGET_ENFORCEMENT_RECORD)
						break;
					admission_unknown_error(ident, admission);
			}
		}
		if (budget_applies(settings))
			budget_check_log(ident_str, settings,
							 DatumGetTimestampTz(values[logs_columns.created_at]),
							 cost, settles ? &held : NULL);
	}

	shards_clear_current();
	if (cost_given && !on_shard)
		return PointerGetDatum(tuple);
	return PointerGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * logs_before_insert
 *		BEFORE INSERT row trigger on analytics.logs.  Its work (creating
 *		customers, budget counters, price lookups) runs with the extension
 *		owner's rights, not the writer's (privs.c).  Returns NULL for a log
 *		of a request recorded already (nothing is inserted).
 */
Datum
logs_before_insert(PG_FUNCTION_ARGS)
{
	Datum		result = privs_call_as_owner(logs_before_insert_as_owner, fcinfo);

	/* The log passed: its commit makes the database due for a pass. */
	if (DatumGetPointer(result) != NULL)
		pool_note_log_written();
	return result;
}

/*
 * logs_guard
 *		Row trigger for UPDATE, statement trigger for DELETE and TRUNCATE on
 *		analytics.logs: logs are facts.
 */
Datum
logs_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "logs_guard must be a trigger");

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		static const char *const mutable_columns[] = {
			"metadata", "error_message", "prompt_messages", "completion_message"
		};
		TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
		HeapTuple	oldtup = trigdata->tg_trigtuple;
		HeapTuple	newtup = trigdata->tg_newtuple;
		int			i;

		for (i = 0; i < tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);
			const char *name = NameStr(att->attname);
			bool		oldnull,
						newnull;
			Datum		oldval,
						newval;
			bool		is_mutable = false;
			int			j;

			if (att->attisdropped)
				continue;
			for (j = 0; j < lengthof(mutable_columns); j++)
				if (strcmp(name, mutable_columns[j]) == 0)
					is_mutable = true;
			if (is_mutable)
				continue;
			oldval = heap_getattr(oldtup, i + 1, tupdesc, &oldnull);
			newval = heap_getattr(newtup, i + 1, tupdesc, &newnull);
			if (oldnull != newnull ||
				(!oldnull && !datumIsEqual(oldval, newval, att->attbyval, att->attlen)))
				ereport(ERROR,
						(errcode(ERRCODE_RESTRICT_VIOLATION),
						 errmsg("column \"%s\" of analytics.logs cannot be changed", name),
						 errdetail("Logs are facts: budgets and rollups have counted them as recorded."),
						 errhint("Only metadata, error_message, prompt_messages and completion_message may be updated.")));
		}

		/*
		 * What may change keeps the bounds it had on insert.  Only the
		 * columns this UPDATE changes are checked: a log recorded before the
		 * bounds keeps what it has.
		 */
		{
			Datum	   *values = palloc(tupdesc->natts * sizeof(Datum));
			bool	   *nulls = palloc(tupdesc->natts * sizeof(bool));
			Datum	   *oldvalues = palloc(tupdesc->natts * sizeof(Datum));
			bool	   *oldnulls = palloc(tupdesc->natts * sizeof(bool));

			logs_columns_lookup(trigdata->tg_relation);
			heap_deform_tuple(newtup, tupdesc, values, nulls);
			heap_deform_tuple(oldtup, tupdesc, oldvalues, oldnulls);
			for (i = 0; i < tupdesc->natts; i++)
				if (nulls[i] == oldnulls[i] &&
					(nulls[i] || datumIsEqual(values[i], oldvalues[i],
											  TupleDescAttr(tupdesc, i)->attbyval,
											  TupleDescAttr(tupdesc, i)->attlen)))
					nulls[i] = true;	/* unchanged: not checked */
			check_mutable_columns(values, nulls);
		}
		return PointerGetDatum(newtup);
	}

	if (!analytics_delete_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_RESTRICT_VIOLATION),
				 errmsg("logs cannot be deleted"),
				 errdetail("Logs are facts: budgets and rollups have counted them."),
				 errhint("Use analytics.purge_logs(older_than) for retention, or analytics.delete_customer(customer_identifier) to remove a customer.")));
	return PointerGetDatum(NULL);
}
