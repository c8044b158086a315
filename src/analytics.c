/*-------------------------------------------------------------------------
 *
 * analytics.c
 *	  Entry point of the analytics extension: _PG_init defines the
 *	  analytics.* settings and, when the library is preloaded, registers the
 *	  rollup worker.  Everything else works without preloading.  Also what
 *	  the modules share: the version gate (analytics_require_current), the
 *	  plan helper, the string-keyed cache tables and the flag that lets the
 *	  extension's own functions remove logs and customers.  The modules and
 *	  their protocols are described in src/README.md.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "postmaster/postmaster.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/rel.h"

#include "analytics.h"
#include "changes.h"
#include "customers.h"
#include "prices.h"
#include "launcher.h"
#include "pool.h"
#include "shards.h"

PG_MODULE_MAGIC;

int			analytics_budget_enforcement = BUDGET_ENFORCEMENT_REJECT;
int			analytics_rollup_interval = 500;
bool		analytics_worker_enabled = true;
int			analytics_max_clock_skew = 300;
int			analytics_admission_timeout = 600;
int			analytics_max_workers = 2;
char	   *analytics_databases = NULL;

bool		analytics_delete_allowed = false;

static const struct config_enum_entry budget_enforcement_options[] = {
	{"reject", BUDGET_ENFORCEMENT_REJECT, false},
	{"record", BUDGET_ENFORCEMENT_RECORD, false},
	{NULL, 0, false}
};

/*
 * Whether this backend saw the installed extension at the library's version
 * (see analytics_require_current).
 */
static bool analytics_version_current = false;

void		_PG_init(void);

static void analytics_version_forget(void);
static void analytics_relcache_callback(Datum arg, Oid relid);
static void analytics_xact_callback(XactEvent event, void *arg);

/*
 * _PG_init
 *		Define the settings; register the worker only at preload time.
 */
void
_PG_init(void)
{
	DefineCustomEnumVariable("analytics.budget_enforcement",
							 "Whether logs over a customer's budget are rejected or only recorded.",
							 "reject (the default) rejects them with SQLSTATE UA001-UA003; "
							 "record accepts and counts every log, for importing history.",
							 &analytics_budget_enforcement,
							 BUDGET_ENFORCEMENT_REJECT,
							 budget_enforcement_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("analytics.rollup_interval",
							"Time between the starts of two passes of the rollup worker.",
							NULL,
							&analytics_rollup_interval,
							500,
							10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("analytics.max_clock_skew",
							"How far past the current time a log's created_at may be.",
							"Logs created later than now() plus this are rejected (SQLSTATE 22023).",
							&analytics_max_clock_skew,
							300,
							0, 365 * 24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("analytics.admission_timeout",
							"How long an admission of analytics.admit() holds its estimate when no log settles it.",
							"After it the estimate no longer counts against the budgets, and a log naming "
							"the admission is checked like a log without one.",
							&analytics_admission_timeout,
							600,
							1, 24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("analytics.worker_enabled",
							 "Whether the rollup worker runs on this server.",
							 "Turn it off on every node but one when the data is sharded.",
							 &analytics_worker_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("analytics.max_workers",
							"Most rollup workers running at once on this server, for all databases.",
							"The launcher hands databases with logs to fold to at most this many "
							"workers (and never more than max_worker_processes minus one).",
							&analytics_max_workers,
							2,
							1, MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("analytics.databases",
							   "The databases the rollup workers serve, as a comma-separated list.",
							   "Empty (the default): every database that has the extension.",
							   &analytics_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   launcher_check_databases, NULL, NULL);

	MarkGUCPrefixReserved("analytics");

	changes_init();
	customers_init();
	prices_init();
	pool_init();
	shards_init();
	/*
	 * One relcache callback for the whole library: a process has room for
	 * only ten, which Citus and logical decoding (Citus' shard moves) need
	 * most of.
	 */
	CacheRegisterRelcacheCallback(analytics_relcache_callback, (Datum) 0);
	RegisterXactCallback(analytics_xact_callback, NULL);

	if (process_shared_preload_libraries_in_progress)
		launcher_register();
}

/*
 * analytics_prepare
 *		Prepare a parameterized statement once per backend (SPI_prepare +
 *		SPI_keepplan) and remember it in *slot.  Must be called inside SPI.
 *		The plan cache replans it when the objects it uses change.
 */
SPIPlanPtr
analytics_prepare(SPIPlanPtr *slot, const char *sql, int nargs,
				  const Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/* String-keyed dynahash: the key is a char pointer. */
static uint32
analytics_string_hash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return string_hash(s, strlen(s) + 1);
}

static int
analytics_string_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(char *const *) key1, *(char *const *) key2);
}

/*
 * analytics_string_cache_create
 *		A hash table in `context` whose entries (of entrysize bytes) begin
 *		with their key, a char pointer to a string the caller allocates in
 *		the same context.
 */
HTAB *
analytics_string_cache_create(const char *name, Size entrysize,
							  MemoryContext context)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = analytics_string_hash;
	ctl.match = analytics_string_match;
	ctl.hcxt = context;
	return hash_create(name, 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * analytics_installed_version
 *		The extversion of the analytics extension in this database's
 *		catalog, palloc'd in the current memory context, or NULL when it is
 *		not installed.  Must be called inside a transaction; reads
 *		pg_extension with the catalog snapshot.
 */
char *
analytics_installed_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *result = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("analytics"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		version = heap_getattr(tuple, Anum_pg_extension_extversion,
										   RelationGetDescr(rel), &isnull);

		if (!isnull)
			result = TextDatumGetCString(version);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * analytics_require_current
 *		Refuse to go on unless the extension installed in this database is
 *		at the version of this library (ANALYTICS_VERSION): after the new
 *		library is installed and the server restarted, the database keeps
 *		its old objects until ALTER EXTENSION analytics UPDATE, and code
 *		written for the new objects must not run against the old ones.
 *		"what" names the caller in the error detail.  Allowed while an
 *		extension script runs (an upgrade script may call our functions
 *		before its last step).  Must be called inside a transaction.
 *
 *		It runs for every inserted log, so a positive answer is kept for the
 *		backend.  That relies on versions only moving forward: ALTER
 *		EXTENSION UPDATE never goes back, so once the catalog says
 *		ANALYTICS_VERSION it stays so until the extension is dropped.  A
 *		DROP EXTENSION drops the extension's tables, which sends relcache
 *		invalidations, and the relcache callback forgets the answer; so does
 *		the end of a transaction that aborted (it may have seen its own
 *		uncommitted ALTER EXTENSION).  A negative answer is checked again
 *		at every call.
 */
void
analytics_require_current(const char *what)
{
	char	   *installed;

	if (analytics_version_current || creating_extension)
		return;
	installed = analytics_installed_version();
	if (installed != NULL && strcmp(installed, ANALYTICS_VERSION) == 0)
	{
		analytics_version_current = true;
		return;
	}
	if (installed == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"analytics\" is not installed in this database"),
				 errdetail("%s needs the objects of analytics %s.", what,
						   ANALYTICS_VERSION)));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("analytics %s is installed but the loaded library is version %s",
					installed, ANALYTICS_VERSION),
			 errdetail("%s needs the objects of analytics %s.", what,
					   ANALYTICS_VERSION),
			 errhint("Run ALTER EXTENSION analytics UPDATE.")));
}

/*
 * analytics_version_forget
 *		Drop the cached positive answer of analytics_require_current.
 */
static void
analytics_version_forget(void)
{
	analytics_version_current = false;
}

/*
 * analytics_relcache_callback
 *		The library's one relcache callback: the version gate, the customer
 *		cache and the shard map each drop what an invalidation may have made
 *		stale.  Only marks: no catalog access, no memory a caller may hold.
 */
static void
analytics_relcache_callback(Datum arg, Oid relid)
{
	analytics_version_forget();
	customers_relcache_invalidate(relid);
	shards_relcache_invalidate(relid);
}

/*
 * analytics_xact_callback
 *		At the end of a transaction: forget the version seen by one that
 *		aborted (it may have seen its own uncommitted ALTER EXTENSION), and
 *		reset analytics_delete_allowed whatever the way out.
 */
static void
analytics_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			analytics_version_forget();
			/* FALLTHROUGH */
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			analytics_delete_allowed = false;
			break;
		default:
			break;
	}
}
