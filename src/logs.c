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
 * Customers: the trigger keeps a per-backend cache of the customers it has
 * seen (that they exist, and their budget settings), kept across
 * transactions.  A cache miss reads the row through the primary key index
 * (no SPI, no row lock); an unknown customer is inserted (ON CONFLICT DO
 * NOTHING, so concurrent first logs agree).  Writers of customers without a
 * budget therefore take no row lock; beyond their RowExclusiveLock on the
 * table they take only the per-customer cover of changes.c (a lock for each
 * of a transaction's first 16 customers, filter bits beyond).
 *
 * The cache is right because of the per-customer change protocol
 * (changes.c): before it reads a customer's settings the trigger covers the
 * customer (changes_cover), so a change of that customer waits for this
 * transaction or this transaction waits for the change, and the cache is
 * dropped whenever a change has begun or ended since the last look.  So no
 * transaction writes logs with settings older than the last committed
 * change, and a change applies to the very next insert.  set_timezone(), and
 * every change without preloading, use the global protocol instead
 * (logs_customers_changing below).  Entries added by a transaction that
 * aborts (fully or to a savepoint) may describe rows that never committed,
 * so the cache is dropped then too.
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

#include "access/detoast.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "storage/lmgr.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "budget.h"
#include "changes.h"
#include "logs.h"
#include "privs.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(logs_before_insert);
PG_FUNCTION_INFO_V1(logs_guard);
PG_FUNCTION_INFO_V1(model_prices_changed);
PG_FUNCTION_INFO_V1(customers_removing);

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
	int			error_message;
	int			thread_identifier;
	int			custom_identifier;
	int			metadata;
	int			prompt_messages;
	int			completion_message;
} LogsColumns;

static LogsColumns logs_columns;

/* Cache entries; keys are palloc'd strings. */
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

/* Per-transaction price cache. */
static MemoryContext price_context = NULL;
static HTAB *price_cache = NULL;

/* Per-backend customer cache, kept across transactions (see above). */
static MemoryContext customer_context = NULL;
static HTAB *customer_cache = NULL;
static bool customer_cache_stale = false;	/* drop at next use */
static bool customer_cache_added = false;	/* entries added in this xact */

/*
 * Bounds of a log's fields (SPEC section 14).  created_at may not be earlier
 * than 2000-01-01 00:00 UTC, which is TimestampTz 0.
 */
#define LOGS_MAX_IDENTIFIER		255
#define LOGS_MAX_SECONDS		86400.0
#define LOGS_MAX_NOTE_BYTES		((Size) 1024 * 1024)
#define LOGS_MAX_BODY_BYTES		((Size) 64 * 1024 * 1024)
#define LOGS_MIN_CREATED_AT		((TimestampTz) 0)

/* At most this many cached customers (about 120 bytes each) per backend. */
#define CUSTOMER_CACHE_MAX 500000

/* OIDs of analytics.customers and analytics.logs, resolved lazily. */
static Oid	customers_relid = InvalidOid;
static Oid	logs_relid = InvalidOid;

/* Column numbers (1-based) of the settings in analytics.customers. */
typedef struct CustomerColumns
{
	AttrNumber	period_budget;
	AttrNumber	budget_duration;
	AttrNumber	period_start;
	AttrNumber	total_budget;
	AttrNumber	markup_percentage;
	AttrNumber	blocked;
} CustomerColumns;

static CustomerColumns customer_columns;

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
cache_create(const char *name, Size entrysize, MemoryContext context)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = string_ptr_hash;
	ctl.match = string_ptr_match;
	ctl.hcxt = context;
	return hash_create(name, 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * The price cache lives in the transaction's memory and goes with it.
 */
static void
price_cache_reset(void)
{
	price_context = NULL;
	price_cache = NULL;
}

static HTAB *
price_cache_get(void)
{
	if (price_cache == NULL)
	{
		price_context = AllocSetContextCreate(TopTransactionContext,
											  "analytics prices",
											  ALLOCSET_SMALL_SIZES);
		price_cache = cache_create("analytics prices", sizeof(PriceEntry),
								   price_context);
	}
	return price_cache;
}

/* Free the customer cache now; only where no entry is in use. */
static void
customer_cache_drop(void)
{
	if (customer_context != NULL)
		MemoryContextDelete(customer_context);
	customer_context = NULL;
	customer_cache = NULL;
	customer_cache_stale = false;
	customers_relid = InvalidOid;
	logs_relid = InvalidOid;
}

static HTAB *
customer_cache_get(void)
{
	if (customer_cache_stale)
		customer_cache_drop();
	if (customer_cache == NULL)
	{
		customer_context = AllocSetContextCreate(CacheMemoryContext,
												 "analytics customers",
												 ALLOCSET_DEFAULT_SIZES);
		customer_cache = cache_create("analytics customers",
									  sizeof(CustomerEntry), customer_context);
	}
	return customer_cache;
}

/*
 * Relcache invalidation of analytics.customers (or of everything): the
 * cache is dropped at its next use, since an entry may be in use now.
 */
static void
customers_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == customers_relid)
	{
		customer_cache_stale = true;
		/* The relation may be gone (DROP EXTENSION): resolve it again. */
		customers_relid = InvalidOid;
		logs_relid = InvalidOid;
	}
}

/*
 * Resolve the OIDs of analytics.customers and analytics.logs, and the
 * column numbers of the customer settings.
 */
static void
relations_resolve(void)
{
	Oid			nsp;
	Relation	rel;
	TupleDesc	tupdesc;

	if (OidIsValid(customers_relid))
		return;
	nsp = get_namespace_oid("analytics", false);
	logs_relid = get_relname_relid("logs", nsp);
	rel = table_open(get_relname_relid("customers", nsp), AccessShareLock);
	tupdesc = RelationGetDescr(rel);
	customer_columns.period_budget = SPI_fnumber(tupdesc, "period_budget");
	customer_columns.budget_duration = SPI_fnumber(tupdesc, "budget_duration");
	customer_columns.period_start = SPI_fnumber(tupdesc, "period_start");
	customer_columns.total_budget = SPI_fnumber(tupdesc, "total_budget");
	customer_columns.markup_percentage = SPI_fnumber(tupdesc, "markup_percentage");
	customer_columns.blocked = SPI_fnumber(tupdesc, "blocked");
	customers_relid = RelationGetRelid(rel);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(logs_relid))
		elog(ERROR, "analytics.logs not found");
}

/*
 * logs_forget_customers
 *		Drop this session's customer cache at its next use.
 */
void
logs_forget_customers(void)
{
	customer_cache_stale = true;
}

/*
 * logs_customers_changing
 *		Called before any change that could make a session's customer cache
 *		wrong: a change of budget settings, a rename or deletion of a
 *		customer.  Takes SHARE ROW EXCLUSIVE on analytics.logs until the end
 *		of the transaction (waiting for every transaction writing logs, and
 *		holding off new ones until this one ends) and queues a relcache
 *		invalidation of analytics.customers, which every session processes
 *		when it next locks analytics.logs.
 */
void
logs_customers_changing(void)
{
	Oid			logs;
	Oid			customers;

	/*
	 * Keep the OIDs: taking the lock processes invalidations, and one of
	 * another change resets the cached ones (customers_relcache_callback).
	 */
	relations_resolve();
	logs = logs_relid;
	customers = customers_relid;
	LockRelationOid(logs, ShareRowExclusiveLock);
	CacheInvalidateRelcacheByRelid(customers);
	customer_cache_stale = true;
}

static void
logs_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (customer_cache_added)
				customer_cache_stale = true;
			/* FALLTHROUGH */
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			customer_cache_added = false;
			price_cache_reset();
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
	/* Entries added since may describe rows that are now rolled back. */
	if (event == SUBXACT_EVENT_ABORT_SUB && customer_cache_added)
		customer_cache_stale = true;
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
	CacheRegisterRelcacheCallback(customers_relcache_callback, (Datum) 0);
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
	logs_columns.error_message = column_number(tupdesc, "error_message");
	logs_columns.thread_identifier = column_number(tupdesc, "thread_identifier");
	logs_columns.custom_identifier = column_number(tupdesc, "custom_identifier");
	logs_columns.metadata = column_number(tupdesc, "metadata");
	logs_columns.prompt_messages = column_number(tupdesc, "prompt_messages");
	logs_columns.completion_message = column_number(tupdesc, "completion_message");
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
 * customer_read
 *		Read a customer's budget settings through the primary key with the
 *		given snapshot; false when there is no such customer.  Takes only
 *		AccessShareLock on the table and its index.  Numerics are copied
 *		into the customer cache's memory.
 */
static bool
customer_read(Datum ident, Snapshot snapshot, CustomerBudget *budget)
{
	Relation	rel;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	bool		found;

	rel = table_open(customers_relid, AccessShareLock);
	index = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ, ident);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
	{
		MemoryContext old = MemoryContextSwitchTo(customer_context);
		bool		isnull;
		Datum		d;

		d = slot_getattr(slot, customer_columns.period_budget, &isnull);
		budget->has_period_budget = !isnull;
		budget->period_budget = isnull ? NULL : DatumGetNumericCopy(d);

		d = slot_getattr(slot, customer_columns.budget_duration, &isnull);
		budget->duration = isnull ? 'm' : TextDatumGetCString(d)[0];

		d = slot_getattr(slot, customer_columns.period_start, &isnull);
		budget->period_start = isnull ? 0 : DatumGetTimestampTz(d);

		d = slot_getattr(slot, customer_columns.total_budget, &isnull);
		budget->has_total_budget = !isnull;
		budget->total_budget = isnull ? NULL : DatumGetNumericCopy(d);

		d = slot_getattr(slot, customer_columns.markup_percentage, &isnull);
		budget->markup = DatumGetNumericCopy(isnull ? NumericGetDatum(numeric_zero) : d);

		d = slot_getattr(slot, customer_columns.blocked, &isnull);
		budget->blocked = !isnull && DatumGetBool(d);
		MemoryContextSwitchTo(old);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * customer_ensure
 *		Make sure the customer exists (creating it with default settings
 *		when unknown) and return its budget settings, from the cache when
 *		possible.  The pointer is valid until the trigger returns.
 */
static const CustomerBudget *
customer_ensure(const char *ident_str, Datum ident)
{
	HTAB	   *cache;
	CustomerEntry *entry;
	CustomerBudget budget;
	bool		found;
	char	   *key = (char *) ident_str;

	/* Bound the memory: start afresh when full (no entry is in use here). */
	if (customer_cache != NULL &&
		hash_get_num_entries(customer_cache) >= CUSTOMER_CACHE_MAX)
		customer_cache_drop();
	cache = customer_cache_get();
	entry = hash_search(cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return &entry->budget;

	/*
	 * The latest snapshot, not the statement's: a COPY (or EXECUTE) takes
	 * its snapshot before it waits for the lock on analytics.logs behind a
	 * settings change, and must still read what that change committed.
	 * While this transaction holds its lock no change can commit, so the
	 * settings read now stay current until it ends.
	 */
	relations_resolve();
	if (!customer_read(ident, GetLatestSnapshot(), &budget))
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1] = {ident};
		SPIPlanPtr	plan;

		SPI_connect();
		plan = analytics_prepare(&customer_create_plan,
							"INSERT INTO analytics.customers (customer_identifier) "
							"VALUES ($1) ON CONFLICT (customer_identifier) DO NOTHING",
							1, argtypes);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not create customer");
		SPI_finish();

		/*
		 * Either our row or one that a concurrent transaction committed
		 * (ON CONFLICT waited for it): a fresh snapshot sees either.
		 */
		CommandCounterIncrement();
		if (!customer_read(ident, GetLatestSnapshot(), &budget))
			elog(ERROR, "customer \"%s\" vanished while being created", ident_str);
	}

	key = MemoryContextStrdup(customer_context, ident_str);
	entry = hash_search(cache, &key, HASH_ENTER, &found);
	entry->key = key;
	entry->budget = budget;
	customer_cache_added = true;
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
	HTAB	   *cache = price_cache_get();
	PriceEntry *entry;
	char	   *key = (char *) model;
	bool		found;

	entry = hash_search(cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];
		SPIPlanPtr	plan;
		PriceEntry	price = {0};

		values[0] = CStringGetTextDatum(model);
		SPI_connect();
		plan = analytics_prepare(&price_plan,
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
			MemoryContext old = MemoryContextSwitchTo(price_context);

			price.found = true;
			price.prompt_per_million = DatumGetNumericCopy(
				SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			price.completion_per_million = DatumGetNumericCopy(
				SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			MemoryContextSwitchTo(old);
		}
		SPI_finish();

		key = MemoryContextStrdup(price_context, model);
		entry = hash_search(cache, &key, HASH_ENTER, &found);
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
 * logs_before_insert_as_owner
 *		The work of logs_before_insert, with the extension owner's rights.
 *		Returns the row with its cost filled in, or raises an error that
 *		records nothing.
 */
static Datum
logs_before_insert_as_owner(PG_FUNCTION_ARGS)
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

	analytics_require_current("The insert trigger of analytics.logs");
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
	check_text_length("model", values[logs_columns.model], false, LOGS_MAX_IDENTIFIER);
	model = TextDatumGetCString(values[logs_columns.model]);
	check_text_length("thread_identifier", values[logs_columns.thread_identifier],
					  nulls[logs_columns.thread_identifier], LOGS_MAX_IDENTIFIER);
	check_text_length("custom_identifier", values[logs_columns.custom_identifier],
					  nulls[logs_columns.custom_identifier], LOGS_MAX_IDENTIFIER);
	check_mutable_columns(values, nulls);

	if (!nulls[logs_columns.prompt_tokens] &&
		DatumGetInt32(values[logs_columns.prompt_tokens]) < 0)
		reject_field("prompt_tokens", "must not be negative");
	if (!nulls[logs_columns.completion_tokens] &&
		DatumGetInt32(values[logs_columns.completion_tokens]) < 0)
		reject_field("completion_tokens", "must not be negative");
	if ((int64) (nulls[logs_columns.prompt_tokens] ? 0 :
				 DatumGetInt32(values[logs_columns.prompt_tokens])) +
		(nulls[logs_columns.completion_tokens] ? 0 :
		 DatumGetInt32(values[logs_columns.completion_tokens])) > PG_INT32_MAX)
		reject_field("total_tokens", "prompt_tokens + completion_tokens must be at most 2147483647");
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

	cost_given = !nulls[logs_columns.cost];
	if (cost_given)
	{
		cost = DatumGetNumeric(values[logs_columns.cost]);
		if (numeric_is_nan(cost) || numeric_is_inf(cost))
			reject_field("cost", "must be a finite number");
		if (DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(cost),
												 NumericGetDatum(numeric_zero))))
			reject_field("cost", "must not be negative");
		if (DatumGetBool(DirectFunctionCall2(numeric_gt, NumericGetDatum(cost),
											 NumericGetDatum(numeric_million))))
			reject_field("cost", "must be at most 1000000 USD");
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
		char	   *ident_str;
		const CustomerBudget *budget;

		check_text_length("customer_identifier", ident, false, LOGS_MAX_IDENTIFIER);
		ident_str = TextDatumGetCString(ident);
		changes_cover(ident_str);

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
 * logs_before_insert
 *		BEFORE INSERT row trigger on analytics.logs.  Its work (creating
 *		customers, budget counters, price lookups) runs with the extension
 *		owner's rights, not the writer's (privs.c).
 */
Datum
logs_before_insert(PG_FUNCTION_ARGS)
{
	worker_note_log_written();
	return privs_call_as_owner(logs_before_insert_as_owner, fcinfo);
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
	price_cache_reset();
	return PointerGetDatum(NULL);
}

/*
 * customers_removing
 *		BEFORE DELETE or TRUNCATE statement trigger on analytics.customers:
 *		only delete_customer() may remove customers (with their logs and
 *		rollups), and sessions must forget them (logs_customers_changing).
 */
Datum
customers_removing(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "customers_removing must be a trigger");
	if (!logs_delete_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_RESTRICT_VIOLATION),
				 errmsg("customers cannot be deleted directly"),
				 errdetail("Their logs and rollups must go with them."),
				 errhint("Use analytics.delete_customer(customer_identifier).")));
	/* delete_customer() has already called changes_begin() per customer. */
	if (!changes_per_customer())
		logs_customers_changing();
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

	if (!logs_delete_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_RESTRICT_VIOLATION),
				 errmsg("logs cannot be deleted"),
				 errdetail("Logs are facts: budgets and rollups have counted them."),
				 errhint("Use analytics.purge_logs(older_than) for retention, or analytics.delete_customer(customer_identifier) to remove a customer.")));
	return PointerGetDatum(NULL);
}
