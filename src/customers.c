/*-------------------------------------------------------------------------
 *
 * customers.c
 *	  Customers as the write path of analytics.logs sees them: a
 *	  per-session cache of their settings, the creation of a customer on
 *	  its first log, the guard against deleting customers by hand, and the
 *	  glue between the cache and the change protocol (changes.c).
 *
 * The insert trigger asks customers_settings() for the settings of every
 * log's customer.  The cache, kept across transactions, knows the customers
 * the session has seen; a miss reads the row through the primary key index
 * (no SPI, no row lock), and an unknown customer is inserted (ON CONFLICT
 * DO NOTHING, so concurrent first logs agree) and read back.  Writers of
 * customers without a budget therefore take no row lock.
 *
 * Why the cache is right: before it reads settings, customers_settings()
 * covers the customer (changes_cover), and the change protocol tells this
 * file when the cache must be forgotten (the callbacks registered in
 * customers_init); a change without the per-customer protocol, and
 * set_timezone(), use the global one, customers_changing().  Entries added
 * by a transaction that aborts (fully or to a savepoint) may describe rows
 * that never committed, so the cache is forgotten then too.  The protocol
 * and the lock order are described in src/README.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "analytics.h"
#include "changes.h"
#include "customers.h"
#include "periods.h"
#include "shards.h"

PG_FUNCTION_INFO_V1(customers_removing);

/* A cache entry; the key is a palloc'd identifier. */
typedef struct CustomerEntry
{
	char	   *key;
	CustomerSettings settings;
} CustomerEntry;

/* At most this many cached customers (about 120 bytes each) per backend. */
#define CUSTOMER_CACHE_MAX 500000

/* Per-backend customer cache, kept across transactions (see above). */
static MemoryContext customer_context = NULL;
static HTAB *customer_cache = NULL;
static bool customer_cache_stale = false;	/* drop at next use */
static bool customer_cache_added = false;	/* entries added in this xact */

/* OIDs of analytics.customers and analytics.logs, resolved lazily. */
static Oid	customers_relid = InvalidOid;
static Oid	logs_relid = InvalidOid;

/*
 * The settings columns of analytics.customers, in the order of
 * CustomerSetting: what the cache holds, and what budget_customers_changed()
 * sends through the change protocol when it changes.
 */
typedef enum CustomerSetting
{
	SETTING_PERIOD_BUDGET,
	SETTING_BUDGET_DURATION,
	SETTING_PERIOD_START,
	SETTING_TOTAL_BUDGET,
	SETTING_MARKUP_PERCENTAGE,
	SETTING_BLOCKED,
	SETTING_ALERT_THRESHOLDS
} CustomerSetting;

const char *const customers_setting_columns[CUSTOMERS_SETTINGS] = {
	"period_budget", "budget_duration", "period_start", "total_budget",
	"markup_percentage", "blocked", "alert_thresholds"
};

static SPIPlanPtr customer_create_plan = NULL;

static Numeric numeric_zero;

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
		customer_cache = analytics_string_cache_create("analytics customers",
													   sizeof(CustomerEntry),
													   customer_context);
	}
	return customer_cache;
}

/*
 * customers_forget
 *		Drop this session's customer cache at its next use (an entry may be
 *		in use now).
 */
static void
customers_forget(void)
{
	customer_cache_stale = true;
}

/*
 * Relcache invalidation of analytics.customers (or of everything): the
 * cache is dropped at its next use.
 */
void
customers_relcache_invalidate(Oid relid)
{
	if (relid == InvalidOid || relid == customers_relid ||
		shards_is_known(relid, "customers"))
	{
		customers_forget();
		/* The relation may be gone (DROP EXTENSION): resolve it again. */
		customers_relid = InvalidOid;
		logs_relid = InvalidOid;
	}
}

static void
customers_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (customer_cache_added)
				customers_forget();
			/* FALLTHROUGH */
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			customer_cache_added = false;
			break;
		default:
			break;
	}
}

static void
customers_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	/* Entries added since may describe rows that are now rolled back. */
	if (event == SUBXACT_EVENT_ABORT_SUB && customer_cache_added)
		customers_forget();
}

/*
 * customers_init
 *		Register the cache's callbacks, with the transaction machinery, the
 *		relcache and the change protocol; called from _PG_init.
 */
void
customers_init(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	numeric_zero = int64_to_numeric(0);
	MemoryContextSwitchTo(old);

	RegisterXactCallback(customers_xact_callback, NULL);
	RegisterSubXactCallback(customers_subxact_callback, NULL);
	changes_set_callbacks(customers_forget, customers_changing);
}

/*
 * customers_resolve
 *		Resolve the OIDs of analytics.customers and analytics.logs.
 */
static void
customers_resolve(void)
{
	Oid			nsp;

	if (OidIsValid(customers_relid))
		return;
	nsp = get_namespace_oid("analytics", false);
	logs_relid = get_relname_relid("logs", nsp);
	customers_relid = get_relname_relid("customers", nsp);
	if (!OidIsValid(logs_relid) || !OidIsValid(customers_relid))
		elog(ERROR, "analytics.logs or analytics.customers not found");
}

/*
 * customers_changing
 *		The global change protocol, for a change that could make a session's
 *		customer cache wrong when the per-customer one is not used (no
 *		preloading, too many changes at once, set_timezone()).  Takes SHARE
 *		ROW EXCLUSIVE on analytics.logs until the end of the transaction
 *		(waiting for every transaction writing logs, and holding off new
 *		ones until this one ends) and queues a relcache invalidation of
 *		analytics.customers, which every session processes when it next
 *		locks analytics.logs.
 */
void
customers_changing(void)
{
	Oid			logs;
	Oid			customers;

	/*
	 * Keep the OIDs: taking the lock processes invalidations, and one of
	 * another change resets the cached ones (customers_relcache_callback).
	 */
	customers_resolve();
	if (shards_has_current())
	{
		logs = shards_current("logs");
		customers = shards_current("customers");
		LockRelationOid(logs, ShareRowExclusiveLock);
		CacheInvalidateRelcacheByRelid(customers);
	}
	else
	{
		/* Every logs relation of the node (one on a single node). */
		List	   *all = list_copy(shards_local_logs());
		ListCell   *lc;

		foreach(lc, all)
		{
			LockRelationOid(lfirst_oid(lc), ShareRowExclusiveLock);
			CacheInvalidateRelcacheByRelid(shards_colocated_oid(lfirst_oid(lc), "customers"));
		}
		if (all == NIL)
			CacheInvalidateRelcacheByRelid(customers_relid);
	}
	customers_forget();
}

static int
numeric_ptr_cmp(const void *a, const void *b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(*(const Numeric *) a),
											 NumericGetDatum(*(const Numeric *) b)));
}

/*
 * customer_read_thresholds
 *		Set settings' alert thresholds from alert_thresholds (numeric[],
 *		possibly NULL): the distinct non-null values, ascending, in the
 *		current memory context (the cache's).
 */
static void
customer_read_thresholds(ArrayType *array, CustomerSettings *settings)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			kept = 0;

	settings->nthresholds = 0;
	settings->thresholds = NULL;
	if (array == NULL)
		return;
	deconstruct_array(array, NUMERICOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n == 0)
		return;
	settings->thresholds = palloc(n * sizeof(Numeric));
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			settings->thresholds[kept++] = DatumGetNumericCopy(elems[i]);
	qsort(settings->thresholds, kept, sizeof(Numeric), numeric_ptr_cmp);
	n = kept;
	kept = 0;
	for (int i = 0; i < n; i++)
		if (kept == 0 || numeric_ptr_cmp(&settings->thresholds[kept - 1],
										 &settings->thresholds[i]) != 0)
			settings->thresholds[kept++] = settings->thresholds[i];
	settings->nthresholds = kept;
}

/*
 * customer_read
 *		Read a customer's settings through the primary key with the given
 *		snapshot; false when there is no such customer.  Takes only
 *		AccessShareLock on the table and its index.  Numerics are copied
 *		into the customer cache's memory.
 */
static bool
customer_read(Oid relid, Datum ident, Snapshot snapshot, CustomerSettings *settings)
{
	Relation	rel;
	AttrNumber	setting_attnums[CUSTOMERS_SETTINGS];
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	bool		found;

	rel = table_open(relid, AccessShareLock);
	for (int i = 0; i < CUSTOMERS_SETTINGS; i++)
		setting_attnums[i] = SPI_fnumber(RelationGetDescr(rel), customers_setting_columns[i]);
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

		d = slot_getattr(slot, setting_attnums[SETTING_PERIOD_BUDGET], &isnull);
		settings->has_period_budget = !isnull;
		settings->period_budget = isnull ? NULL : DatumGetNumericCopy(d);

		d = slot_getattr(slot, setting_attnums[SETTING_BUDGET_DURATION], &isnull);
		settings->duration = periods_duration(isnull ? "monthly" : text_to_cstring(DatumGetTextPP(d)),
											  "budget_duration");

		d = slot_getattr(slot, setting_attnums[SETTING_PERIOD_START], &isnull);
		settings->period_start = isnull ? 0 : DatumGetTimestampTz(d);

		d = slot_getattr(slot, setting_attnums[SETTING_TOTAL_BUDGET], &isnull);
		settings->has_total_budget = !isnull;
		settings->total_budget = isnull ? NULL : DatumGetNumericCopy(d);

		d = slot_getattr(slot, setting_attnums[SETTING_MARKUP_PERCENTAGE], &isnull);
		settings->markup = DatumGetNumericCopy(isnull ? NumericGetDatum(numeric_zero) : d);

		d = slot_getattr(slot, setting_attnums[SETTING_BLOCKED], &isnull);
		settings->blocked = !isnull && DatumGetBool(d);

		d = slot_getattr(slot, setting_attnums[SETTING_ALERT_THRESHOLDS], &isnull);
		customer_read_thresholds(isnull ? NULL : DatumGetArrayTypeP(d), settings);
		MemoryContextSwitchTo(old);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * customer_create
 *		Create the customer ident in the relation customers (the table, or
 *		a customers shard on a Citus node) with default settings, unless a
 *		concurrent transaction committed it first.
 */
static void
customer_create(Oid customers, Datum ident)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {ident};
	const char *sql = "INSERT INTO %s (customer_identifier) "
		"VALUES ($1) ON CONFLICT (customer_identifier) DO NOTHING";
	int			ret;

	SPI_connect();
	if (customers == customers_relid)
		ret = SPI_execute_plan(analytics_prepare(&customer_create_plan,
												 psprintf(sql, "analytics.customers"),
												 1, argtypes),
							   values, NULL, false, 0);
	else
		ret = SPI_execute_with_args(psprintf(sql,
											 quote_qualified_identifier("analytics",
																		get_rel_name(customers))),
									1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not create customer");
	SPI_finish();
}

/*
 * customers_settings
 *		The settings of the customer ident (ident_str as a C string), those
 *		of the last committed change: covers the customer for this
 *		transaction first (changes_cover), then reads them from the cache
 *		or the table, creating the customer with default settings when
 *		unknown.  customers is the relation holding the customer (a Citus
 *		shard), or InvalidOid for analytics.customers.  The pointer is valid
 *		until the trigger returns.  Inside the inserting transaction.
 */
const CustomerSettings *
customers_settings(const char *ident_str, Datum ident, Oid customers)
{
	HTAB	   *cache;
	CustomerEntry *entry;
	CustomerSettings settings;
	bool		found;
	char	   *key = (char *) ident_str;

	changes_cover(ident_str);

	/* Bound the memory: start afresh when full (no entry is in use here). */
	if (customer_cache != NULL &&
		hash_get_num_entries(customer_cache) >= CUSTOMER_CACHE_MAX)
		customer_cache_drop();
	cache = customer_cache_get();
	entry = hash_search(cache, &key, HASH_FIND, NULL);
	if (entry != NULL)
		return &entry->settings;

	/*
	 * The latest snapshot, not the statement's: a COPY (or EXECUTE) takes
	 * its snapshot before it waits for the lock on analytics.logs behind a
	 * settings change, and must still read what that change committed.
	 * While this transaction covers the customer no change of it can
	 * commit, so the settings read now stay current until it ends.
	 */
	customers_resolve();
	if (!OidIsValid(customers))
		customers = customers_relid;
	if (!customer_read(customers, ident, GetLatestSnapshot(), &settings))
	{
		customer_create(customers, ident);

		/*
		 * Either our row or one that a concurrent transaction committed
		 * (ON CONFLICT waited for it): a fresh snapshot sees either.
		 */
		CommandCounterIncrement();
		if (!customer_read(customers, ident, GetLatestSnapshot(), &settings))
			elog(ERROR, "customer \"%s\" vanished while being created", ident_str);
	}

	key = MemoryContextStrdup(customer_context, ident_str);
	entry = hash_search(cache, &key, HASH_ENTER, &found);
	entry->key = key;
	entry->settings = settings;
	customer_cache_added = true;
	return &entry->settings;
}

/*
 * customers_removing
 *		BEFORE DELETE or TRUNCATE statement trigger on analytics.customers:
 *		only delete_customer() may remove customers (with their logs and
 *		rollups), and sessions must forget them.
 */
Datum
customers_removing(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "customers_removing must be a trigger");
	if (!analytics_delete_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_RESTRICT_VIOLATION),
				 errmsg("customers cannot be deleted directly"),
				 errdetail("Their logs and rollups must go with them."),
				 errhint("Use analytics.delete_customer(customer_identifier).")));
	/* delete_customer() has already called changes_begin() per customer. */
	if (!changes_per_customer())
	{
		shards_set_current(((TriggerData *) fcinfo->context)->tg_relation);
		customers_changing();
		shards_clear_current();
	}
	return PointerGetDatum(NULL);
}
