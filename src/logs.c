/*-------------------------------------------------------------------------
 *
 * logs.c
 *	  The write path of analytics.logs.
 *
 * logs_before_insert is the BEFORE INSERT row trigger every new log goes
 * through (INSERT, COPY and the ingest functions).  It validates the row,
 * fills in the cost from analytics.model_prices when none is given, makes
 * sure the customer exists, and hands customers with a budget (or blocked
 * ones) to budget_check_log().
 *
 * Locking: the first log of a customer in a transaction takes a FOR KEY
 * SHARE lock on the customer's row (creating the row first when it is
 * unknown).  That lock does not conflict with other writers of the same
 * customer, nor with plain updates of the customer's row; it conflicts with
 * DELETE and with the FOR UPDATE lock that a budget change takes (see
 * budget.c).  So while a transaction holds it, the customer cannot vanish
 * and its budget settings cannot change, which is why the settings read
 * with the lock are cached for the rest of the transaction.  The cache is
 * dropped at the end of the transaction and at the abort of any
 * subtransaction (whose row locks are released with it).
 *
 * logs_guard keeps logs facts: UPDATE of any column but metadata,
 * error_message, prompt_messages and completion_message is rejected, and so
 * are DELETE and TRUNCATE unless logs_delete_allowed is set by
 * purge_logs() or delete_customer().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "budget.h"
#include "logs.h"

PG_FUNCTION_INFO_V1(logs_before_insert);
PG_FUNCTION_INFO_V1(logs_guard);
PG_FUNCTION_INFO_V1(model_prices_changed);

bool		logs_delete_allowed = false;

/* Column numbers of analytics.logs, looked up once per backend. */
typedef struct LogsColumns
{
	Oid			relid;
	int			created_at;
	int			customer_identifier;
	int			model;
	int			prompt_tokens;
	int			completion_tokens;
	int			cost;
	int			latency;
	int			time_to_first_token;
} LogsColumns;

static LogsColumns logs_columns;

/* Per-transaction cache entries; keys are palloc'd strings. */
typedef struct CustomerEntry
{
	char	   *key;
	CustomerBudget budget;
} CustomerEntry;

typedef struct PriceEntry
{
	char	   *key;
	bool		found;
	Numeric		prompt_per_million;
	Numeric		completion_per_million;
} PriceEntry;

static MemoryContext cache_context = NULL;
static HTAB *customer_cache = NULL;
static HTAB *price_cache = NULL;

static SPIPlanPtr customer_lock_plan = NULL;
static SPIPlanPtr customer_create_plan = NULL;
static SPIPlanPtr price_plan = NULL;

static Numeric numeric_zero;
static Numeric numeric_million;

/* String-keyed dynahash: the key is a char pointer. */
static uint32
string_ptr_hash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return string_hash(s, strlen(s) + 1);
}

static int
string_ptr_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(char *const *) key1, *(char *const *) key2);
}

static HTAB *
cache_create(const char *name, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = string_ptr_hash;
	ctl.match = string_ptr_match;
	ctl.hcxt = cache_context;
	return hash_create(name, 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * Forget both caches.  Their memory belongs to the transaction and goes
 * with it; at a subtransaction abort it stays until the top transaction
 * ends, which is harmless.
 */
static void
caches_reset(void)
{
	cache_context = NULL;
	customer_cache = NULL;
	price_cache = NULL;
}

static void
caches_ensure(void)
{
	if (cache_context == NULL)
		cache_context = AllocSetContextCreate(TopTransactionContext,
											  "analytics write cache",
											  ALLOCSET_DEFAULT_SIZES);
	if (customer_cache == NULL)
		customer_cache = cache_create("analytics customers", sizeof(CustomerEntry));
	if (price_cache == NULL)
		price_cache = cache_create("analytics prices", sizeof(PriceEntry));
}

/*
 * logs_forget_customers
 *		Drop the customer cache, for functions that change or remove
 *		customers inside a transaction that may also insert logs.
 */
void
logs_forget_customers(void)
{
	caches_reset();
}

static void
logs_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			caches_reset();
			logs_delete_allowed = false;
			break;
		default:
			break;
	}
}

static void
logs_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	/* Row locks taken in an aborted subtransaction are gone: so is the cache. */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		caches_reset();
}

/*
 * logs_init
 *		Register the transaction callbacks; called from _PG_init.
 */
void
logs_init(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	numeric_zero = int64_to_numeric(0);
	numeric_million = int64_to_numeric(1000000);
	MemoryContextSwitchTo(old);

	RegisterXactCallback(logs_xact_callback, NULL);
	RegisterSubXactCallback(logs_subxact_callback, NULL);
}

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
	logs_columns.created_at = column_number(tupdesc, "created_at");
	logs_columns.customer_identifier = column_number(tupdesc, "customer_identifier");
	logs_columns.model = column_number(tupdesc, "model");
	logs_columns.prompt_tokens = column_number(tupdesc, "prompt_tokens");
	logs_columns.completion_tokens = column_number(tupdesc, "completion_tokens");
	logs_columns.cost = column_number(tupdesc, "cost");
	logs_columns.latency = column_number(tupdesc, "latency");
	logs_columns.time_to_first_token = column_number(tupdesc, "time_to_first_token");
	logs_columns.relid = RelationGetRelid(rel);
}

static SPIPlanPtr
plan_prepare(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

static void
reject_field(const char *field, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"%s\": %s", field, problem),
			 errdetail("The log was not recorded.")));
}

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
}

/*
 * Read the customer's budget settings under a FOR KEY SHARE lock.  Returns
 * false when there is no such customer.  Must be called inside SPI.
 */
static bool
customer_lock(Datum ident, CustomerBudget *budget)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {ident};
	SPIPlanPtr	plan;
	HeapTuple	tuple;
	TupleDesc	tupdesc;
	bool		isnull;
	Datum		d;
	char	   *duration;
	MemoryContext old;

	plan = plan_prepare(&customer_lock_plan,
						"SELECT period_budget, budget_duration, period_start, "
						"total_budget, markup_percentage, blocked "
						"FROM analytics.customers "
						"WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
						"FOR KEY SHARE",
						1, argtypes);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read customer");
	if (SPI_processed == 0)
		return false;

	tuple = SPI_tuptable->vals[0];
	tupdesc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(cache_context);

	d = SPI_getbinval(tuple, tupdesc, 1, &isnull);
	budget->has_period_budget = !isnull;
	budget->period_budget = isnull ? NULL : DatumGetNumericCopy(d);

	duration = SPI_getvalue(tuple, tupdesc, 2);
	budget->duration = duration ? duration[0] : 'm';

	d = SPI_getbinval(tuple, tupdesc, 3, &isnull);
	budget->period_start = isnull ? 0 : DatumGetTimestampTz(d);

	d = SPI_getbinval(tuple, tupdesc, 4, &isnull);
	budget->has_total_budget = !isnull;
	budget->total_budget = isnull ? NULL : DatumGetNumericCopy(d);

	d = SPI_getbinval(tuple, tupdesc, 5, &isnull);
	budget->markup = DatumGetNumericCopy(isnull ? NumericGetDatum(numeric_zero) : d);

	d = SPI_getbinval(tuple, tupdesc, 6, &isnull);
	budget->blocked = !isnull && DatumGetBool(d);

	MemoryContextSwitchTo(old);
	return true;
}

/*
 * customer_ensure
 *		Make sure the customer exists and is locked FOR KEY SHARE by this
 *		transaction; return its budget settings (cached per transaction).
 */
static const CustomerBudget *
customer_ensure(const char *ident_str, Datum ident)
{
	CustomerEntry *entry;
	bool		found;
	char	   *key = (char *) ident_str;

	caches_ensure();
	entry = hash_search(customer_cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return &entry->budget;

	{
		CustomerBudget budget;

		SPI_connect();
		if (!customer_lock(ident, &budget))
		{
			Oid			argtypes[1] = {TEXTOID};
			Datum		values[1] = {ident};
			SPIPlanPtr	plan;

			plan = plan_prepare(&customer_create_plan,
								"INSERT INTO analytics.customers (customer_identifier) "
								"VALUES ($1) ON CONFLICT (customer_identifier) DO NOTHING",
								1, argtypes);
			if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not create customer");
			if (!customer_lock(ident, &budget))
				elog(ERROR, "customer \"%s\" vanished while being created", ident_str);
		}
		SPI_finish();

		key = MemoryContextStrdup(cache_context, ident_str);
		entry = hash_search(customer_cache, &key, HASH_ENTER, &found);
		entry->budget = budget;
	}
	return &entry->budget;
}

/*
 * price_lookup
 *		The price entry for a model: the longest model_prices.model that the
 *		name starts with.  Cached per transaction; model_prices_changed()
 *		drops the cache when the table is edited.
 */
static const PriceEntry *
price_lookup(const char *model)
{
	PriceEntry *entry;
	char	   *key = (char *) model;
	bool		found;

	caches_ensure();
	entry = hash_search(price_cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];
		SPIPlanPtr	plan;
		PriceEntry	price = {0};

		values[0] = CStringGetTextDatum(model);
		SPI_connect();
		plan = plan_prepare(&price_plan,
							"SELECT prompt_per_million, completion_per_million "
							"FROM analytics.model_prices "
							"WHERE pg_catalog.starts_with($1, model) "
							"ORDER BY pg_catalog.length(model) DESC LIMIT 1",
							1, argtypes);
		if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read model prices");
		if (SPI_processed == 1)
		{
			bool		isnull;
			MemoryContext old = MemoryContextSwitchTo(cache_context);

			price.found = true;
			price.prompt_per_million = DatumGetNumericCopy(
				SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			price.completion_per_million = DatumGetNumericCopy(
				SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			MemoryContextSwitchTo(old);
		}
		SPI_finish();

		key = MemoryContextStrdup(cache_context, model);
		entry = hash_search(price_cache, &key, HASH_ENTER, &found);
		price.key = key;
		*entry = price;
	}
	return entry;
}

/* cost = (prompt * prompt_price + completion * completion_price) / 1e6 */
static Numeric
cost_from_prices(const char *model, int32 prompt_tokens, int32 completion_tokens)
{
	const PriceEntry *price = price_lookup(model);
	Numeric		sum;

	if (!price->found)
		return numeric_zero;
	sum = numeric_add_opt_error(
		numeric_mul_opt_error(int64_to_numeric(prompt_tokens),
							  price->prompt_per_million, NULL),
		numeric_mul_opt_error(int64_to_numeric(completion_tokens),
							  price->completion_per_million, NULL),
		NULL);
	sum = numeric_div_opt_error(sum, numeric_million, NULL);
	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale,
											   NumericGetDatum(sum)));
}

/*
 * logs_before_insert
 *		BEFORE INSERT row trigger on analytics.logs.  Returns the row with its
 *		cost filled in, or raises an error that records nothing.
 */
Datum
logs_before_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	tupdesc;
	HeapTuple	tuple;
	Datum	   *values;
	bool	   *nulls;
	bool		cost_given;
	Numeric		cost;
	char	   *model;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "logs_before_insert must be a BEFORE INSERT row trigger");

	rel = trigdata->tg_relation;
	tupdesc = RelationGetDescr(rel);
	tuple = trigdata->tg_trigtuple;
	logs_columns_lookup(rel);

	values = palloc(tupdesc->natts * sizeof(Datum));
	nulls = palloc(tupdesc->natts * sizeof(bool));
	heap_deform_tuple(tuple, tupdesc, values, nulls);

	if (nulls[logs_columns.model])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("\"model\" is required"),
				 errdetail("The log was not recorded.")));
	model = TextDatumGetCString(values[logs_columns.model]);

	if (!nulls[logs_columns.prompt_tokens] &&
		DatumGetInt32(values[logs_columns.prompt_tokens]) < 0)
		reject_field("prompt_tokens", "must not be negative");
	if (!nulls[logs_columns.completion_tokens] &&
		DatumGetInt32(values[logs_columns.completion_tokens]) < 0)
		reject_field("completion_tokens", "must not be negative");
	check_float("latency", values[logs_columns.latency],
				nulls[logs_columns.latency]);
	check_float("time_to_first_token", values[logs_columns.time_to_first_token],
				nulls[logs_columns.time_to_first_token]);
	if (nulls[logs_columns.created_at])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("\"created_at\" must not be null"),
				 errdetail("The log was not recorded.")));
	if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(values[logs_columns.created_at])))
		reject_field("created_at", "must be a finite timestamp");

	cost_given = !nulls[logs_columns.cost];
	if (cost_given)
	{
		cost = DatumGetNumeric(values[logs_columns.cost]);
		if (numeric_is_nan(cost) || numeric_is_inf(cost))
			reject_field("cost", "must be a finite number");
		if (DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(cost),
												 NumericGetDatum(numeric_zero))))
			reject_field("cost", "must not be negative");
	}
	else
	{
		int32		prompt = nulls[logs_columns.prompt_tokens] ? 0 :
			DatumGetInt32(values[logs_columns.prompt_tokens]);
		int32		completion = nulls[logs_columns.completion_tokens] ? 0 :
			DatumGetInt32(values[logs_columns.completion_tokens]);

		cost = cost_from_prices(model, prompt, completion);
		values[logs_columns.cost] = NumericGetDatum(cost);
		nulls[logs_columns.cost] = false;
	}

	if (!nulls[logs_columns.customer_identifier])
	{
		Datum		ident = values[logs_columns.customer_identifier];
		char	   *ident_str = TextDatumGetCString(ident);
		int			len = pg_mbstrlen(ident_str);
		const CustomerBudget *budget;

		if (len < 1 || len > 255)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for \"customer_identifier\": must be 1 to 255 characters long"),
					 errdetail("Got %d characters. The log was not recorded.", len)));

		budget = customer_ensure(ident_str, ident);
		if (budget_applies(budget))
			budget_check_log(ident_str, budget,
							 DatumGetTimestampTz(values[logs_columns.created_at]),
							 cost);
	}

	if (cost_given)
		return PointerGetDatum(tuple);
	return PointerGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * model_prices_changed
 *		Statement trigger on analytics.model_prices: forget cached prices.
 */
Datum
model_prices_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "model_prices_changed must be a trigger");
	price_cache = NULL;
	return PointerGetDatum(NULL);
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
		return PointerGetDatum(newtup);
	}

	if (!logs_delete_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_RESTRICT_VIOLATION),
				 errmsg("logs cannot be deleted"),
				 errdetail("Logs are facts: budgets and rollups have counted them."),
				 errhint("Use analytics.purge_logs(older_than) for retention, or analytics.delete_customer(customer_identifier) to remove a customer.")));
	return PointerGetDatum(NULL);
}
