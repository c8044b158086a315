/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher of the rollup workers: one per server (registered at
 *	  preload time, backend_type "analytics launcher"), connected to no
 *	  database.  It keeps a slot of the shared table (pool.c) for every
 *	  served database and hands the due ones to at most analytics.max_workers
 *	  workers (worker.c), one per database.
 *
 * A database is due when it is dirty (logs committed since the last pass
 * began) and past its retry_after, or when its next_visit came (after the
 * server starts, a sweep every minute, a look at a database without the
 * extension or waiting for ALTER EXTENSION UPDATE).  Dirty databases come
 * first, the one waiting longest first (a database a worker gave up with
 * logs left ranks from when it was given up); timer visits come after them
 * and do not count as waiting.  The launcher publishes how many dirty
 * databases it had no room for (workers give theirs up when some wait) and
 * how many workers run (workers leave when there are more than
 * analytics.max_workers, after a reload lowered it).
 *
 * It wakes on its latch (the first commit of logs in a database without a
 * worker, a worker that exits, a SIGHUP) or at the next due time, and reads
 * pg_database at most once a second.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "analytics.h"
#include "launcher.h"
#include "pool.h"

PGDLLEXPORT void launcher_main(Datum main_arg);

/* The longest the launcher sleeps, and how often it reads pg_database. */
#define LAUNCHER_NAPTIME_MS			1000
/* Delay before serving again a database whose worker never got connected. */
#define LAUNCHER_RETRY_MS			2000
/* How often the table-full warning may repeat. */
#define LAUNCHER_FULL_WARNING_MS	60000

/* Launcher memory: the worker it started for a database. */
typedef struct LauncherWorker
{
	Oid			dboid;			/* hash key */
	int			slot;			/* its slot (kept while assigned) */
	BackgroundWorkerHandle *handle;
} LauncherWorker;

/* A due database, as the launcher ranks them. */
typedef struct LauncherCandidate
{
	int			slot;
	bool		dirty;			/* logs wait (else a timer visit) */
	TimestampTz since;			/* waiting since: earliest first */
} LauncherCandidate;

/* The served databases, sorted, as last read from pg_database. */
static Oid *launcher_dbs = NULL;
static int	launcher_ndbs = 0;
static TimestampTz launcher_dbs_read = 0;
static bool launcher_dbs_stale = true;
static TimestampTz launcher_full_warned = 0;
static bool launcher_start_warned = false;	/* until a worker starts again */

/*
 * launcher_check_databases
 *		Check hook of analytics.databases: a comma-separated list of
 *		database names (exact, case-sensitive; double-quote a name with a
 *		comma or spaces at its ends).
 */
bool
launcher_check_databases(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *names = NIL;
	bool		ok = SplitGUCList(raw, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(raw);
	return ok;
}

/*
 * launcher_register
 *		Register the launcher; called from _PG_init only while
 *		shared_preload_libraries is being processed.
 */
void
launcher_register(void)
{
	BackgroundWorker worker;

	pool_register_shmem();

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "analytics");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "analytics launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "analytics launcher");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/*
 * launcher_oid_cmp
 *		qsort/bsearch order of database oids.
 */
static int
launcher_oid_cmp(const void *a, const void *b)
{
	Oid			x = *(const Oid *) a;
	Oid			y = *(const Oid *) b;

	return (x > y) - (x < y);
}

/*
 * launcher_read_databases
 *		Read the served databases into launcher_dbs (sorted): those that
 *		accept connections, are not templates, are valid and, when
 *		analytics.databases is set, are named there (names that match no
 *		database are logged).  Runs its own transaction; allocates in the
 *		caller's context.
 */
static void
launcher_read_databases(void)
{
	List	   *names = NIL;
	bool	   *matched = NULL;
	int			nnames;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	int			n = 0;
	MemoryContext caller = CurrentMemoryContext;

	if (analytics_databases != NULL && analytics_databases[0] != '\0')
		(void) SplitGUCList(pstrdup(analytics_databases), ',', &names); /* checked */
	nnames = list_length(names);
	if (nnames > 0)
		matched = palloc0(sizeof(bool) * nnames);
	if (launcher_dbs == NULL)
		launcher_dbs = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * POOL_MAX_DATABASES * 4);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		bool		named = (nnames == 0);
		ListCell   *lc;

		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db))
			continue;
		foreach(lc, names)
		{
			if (strcmp((char *) lfirst(lc), NameStr(db->datname)) == 0)
			{
				named = true;
				matched[foreach_current_index(lc)] = true;
			}
		}
		if (named && n < POOL_MAX_DATABASES * 4)
			launcher_dbs[n++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);

	if (launcher_dbs_stale && nnames > 0)
	{
		ListCell   *lc;

		/* Once per reload: a name that matches no database. */
		foreach(lc, names)
			if (!matched[foreach_current_index(lc)])
				ereport(LOG,
						(errmsg("analytics.databases names \"%s\", which is no database that accepts connections",
								(char *) lfirst(lc))));
	}
	qsort(launcher_dbs, n, sizeof(Oid), launcher_oid_cmp);
	launcher_ndbs = n;
	launcher_dbs_read = GetCurrentTimestamp();
	launcher_dbs_stale = false;
}

/*
 * launcher_start_worker
 *		Register a worker for the database of slot i; false when the server
 *		has no free worker slot.  The caller holds the lock exclusively.
 */
static bool
launcher_start_worker(HTAB *workers, int i)
{
	BackgroundWorker worker;
	Oid			dboid = pool_shared->dbs[i].dboid;
	LauncherWorker *entry;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	bool		ok;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "analytics");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "analytics rollup worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "analytics rollup");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	/* The handle lives as long as the worker. */
	old = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&worker, &handle);
	MemoryContextSwitchTo(old);
	if (!ok)
		return false;
	entry = hash_search(workers, &dboid, HASH_ENTER, NULL);
	entry->slot = i;
	entry->handle = handle;
	pool_shared->dbs[i].assigned = true;
	pool_shared->dbs[i].connected = false;
	return true;
}

/*
 * launcher_reap
 *		Forget the workers that stopped (their slots are no longer
 *		assigned; a worker that stopped in the middle of a visit marked its
 *		database itself, worker.c; one that never got connected is retried
 *		after LAUNCHER_RETRY_MS).  The caller holds the lock exclusively.
 */
static void
launcher_reap(HTAB *workers, TimestampTz now)
{
	HASH_SEQ_STATUS status;
	LauncherWorker *entry;

	hash_seq_init(&status, workers);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		pid_t		pid;
		BgwHandleStatus st = GetBackgroundWorkerPid(entry->handle, &pid);
		PoolDatabase *db;

		if (st == BGWH_POSTMASTER_DIED)
			proc_exit(1);
		if (st != BGWH_STOPPED)
			continue;
		db = &pool_shared->dbs[entry->slot];	/* an assigned slot is never freed */
		db->assigned = false;
		if (!db->connected)
		{
			/* It failed before it could say so itself: not at once again. */
			db->retry_after = TimestampTzPlusMilliseconds(now, LAUNCHER_RETRY_MS);
			db->next_visit = Max(db->next_visit, db->retry_after);
		}
		pfree(entry->handle);
		hash_search(workers, &entry->dboid, HASH_REMOVE, NULL);
	}
}

/*
 * launcher_sync_slots
 *		Give every served database a slot (due at once) and free the slots
 *		of databases no longer served.  When the table is full, a slot of a
 *		database without the extension is taken back.  Returns false when a
 *		database found no slot.  The caller holds the lock exclusively.
 */
static bool
launcher_sync_slots(void)
{
	bool	   *has_slot = palloc0(sizeof(bool) * Max(launcher_ndbs, 1));
	bool		changed = false;
	bool		ok = true;
	int			free_i = 0;

	for (int i = 0; i < POOL_MAX_DATABASES; i++)
	{
		PoolDatabase *db = &pool_shared->dbs[i];
		Oid		   *found;

		if (!OidIsValid(db->dboid))
			continue;
		found = bsearch(&db->dboid, launcher_dbs, launcher_ndbs, sizeof(Oid), launcher_oid_cmp);
		if (found != NULL)
			has_slot[found - launcher_dbs] = true;
		else if (!db->assigned && db->worker_pid == 0)
		{
			db->dboid = InvalidOid;
			changed = true;
		}
	}

	for (int d = 0; d < launcher_ndbs; d++)
	{
		PoolDatabase *db;

		if (has_slot[d])
			continue;
		while (free_i < POOL_MAX_DATABASES && OidIsValid(pool_shared->dbs[free_i].dboid))
			free_i++;
		if (free_i == POOL_MAX_DATABASES)
		{
			/* Full: take back a slot of a database without the extension. */
			for (free_i = 0; free_i < POOL_MAX_DATABASES; free_i++)
			{
				db = &pool_shared->dbs[free_i];
				if (db->state == POOL_DB_ABSENT && !db->assigned && db->worker_pid == 0 &&
					pg_atomic_read_u32(&db->dirty) == 0)
					break;
			}
			if (free_i == POOL_MAX_DATABASES)
			{
				ok = false;
				break;
			}
		}
		db = &pool_shared->dbs[free_i];
		db->dboid = launcher_dbs[d];
		pg_atomic_write_u32(&db->dirty, 0);
		pg_atomic_write_u64(&db->dirty_since, 0);
		db->requeued_at = 0;
		db->next_visit = 1;		/* due now: nothing is known about it */
		db->retry_after = 0;
		db->last_served = 0;
		db->failures = 0;
		db->state = POOL_DB_UNKNOWN;
		db->assigned = false;
		db->worker_pid = 0;
		db->connected = false;
		db->in_visit = false;
		changed = true;
	}
	if (changed)
		pg_atomic_fetch_add_u32(&pool_shared->generation, 1);
	pfree(has_slot);
	return ok;
}

/*
 * launcher_candidate_cmp
 *		qsort order of due databases: those with logs first, then the
 *		longest waiting first.
 */
static int
launcher_candidate_cmp(const void *a, const void *b)
{
	const LauncherCandidate *x = a;
	const LauncherCandidate *y = b;

	if (x->dirty != y->dirty)
		return x->dirty ? -1 : 1;
	return (x->since > y->since) - (x->since < y->since);
}

/*
 * launcher_round
 *		One round: sync the slots with the served databases, reap stopped
 *		workers, start workers for the due databases while the pool has
 *		room, publish how many databases with logs wait and how many
 *		workers run.  Returns how long to sleep, in milliseconds.
 */
static long
launcher_round(HTAB *workers)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake;
	LauncherCandidate *candidates;
	int			ncandidates = 0;
	int			running = 0;
	int			waiting = 0;
	int			room;
	bool		full;
	bool		start_failed = false;

	if (launcher_dbs_stale ||
		TimestampDifferenceExceeds(launcher_dbs_read, now, LAUNCHER_NAPTIME_MS))
		launcher_read_databases();	/* its transaction leaves our context current */
	wake = TimestampTzPlusMilliseconds(launcher_dbs_read, LAUNCHER_NAPTIME_MS);
	candidates = palloc(sizeof(LauncherCandidate) * POOL_MAX_DATABASES);

	LWLockAcquire(pool_shared->lock, LW_EXCLUSIVE);
	full = !launcher_sync_slots();
	launcher_reap(workers, now);

	for (int i = 0; i < POOL_MAX_DATABASES; i++)
	{
		PoolDatabase *db = &pool_shared->dbs[i];
		bool		dirty;
		TimestampTz since;

		if (!OidIsValid(db->dboid))
			continue;
		if (db->assigned || db->worker_pid != 0)
		{
			running++;
			continue;
		}
		if (db->retry_after > now)
		{
			/* A back-off: neither its logs nor a timer bring a worker yet. */
			wake = Min(wake, db->retry_after);
			continue;
		}
		dirty = pg_atomic_read_u32(&db->dirty) != 0;
		if (dirty)
		{
			since = (TimestampTz) pg_atomic_read_u64(&db->dirty_since);
			since = Max(since == 0 ? now : since, db->requeued_at);
		}
		else if (db->next_visit != 0 && db->next_visit <= now)
			since = db->next_visit;
		else
		{
			if (db->next_visit != 0)
				wake = Min(wake, db->next_visit);
			continue;
		}
		candidates[ncandidates].slot = i;
		candidates[ncandidates].dirty = dirty;
		candidates[ncandidates].since = since;
		ncandidates++;
	}
	qsort(candidates, ncandidates, sizeof(LauncherCandidate), launcher_candidate_cmp);

	room = analytics_worker_enabled ? pool_effective_max_workers() - running : 0;
	for (int c = 0; c < ncandidates; c++)
	{
		if (room > 0 && !start_failed)
		{
			if (launcher_start_worker(workers, candidates[c].slot))
			{
				room--;
				running++;
				continue;
			}
			start_failed = true;
		}
		if (candidates[c].dirty)
			waiting++;
	}
	pg_atomic_write_u32(&pool_shared->waiting, (uint32) waiting);
	pg_atomic_write_u32(&pool_shared->running, (uint32) running);
	LWLockRelease(pool_shared->lock);

	if (start_failed && !launcher_start_warned)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start an analytics rollup worker"),
				 errdetail("Every background worker slot of the server is taken."),
				 errhint("Raise max_worker_processes, or lower analytics.max_workers.")));
	launcher_start_warned = start_failed;
	if (full && TimestampDifferenceExceeds(launcher_full_warned, now, LAUNCHER_FULL_WARNING_MS))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the analytics launcher serves at most %d databases", POOL_MAX_DATABASES),
				 errhint("Name the databases to serve in analytics.databases.")));
		launcher_full_warned = now;
	}
	pfree(candidates);
	return Max(0, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), wake));
}

/*
 * launcher_at_exit
 *		Forget the launcher's latch, so that writers stop setting it.
 */
static void
launcher_at_exit(int code, Datum arg)
{
	if (pool_shared != NULL)
		pool_shared->launcher_latch = NULL;
}

/*
 * launcher_main
 *		Entry point of the launcher.  A launcher that restarts does not know
 *		the workers of the one before: they run on (counted through their
 *		pid in the table) and leave on their own.
 */
void
launcher_main(Datum main_arg)
{
	HASHCTL		ctl;
	HTAB	   *workers;
	MemoryContext round_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("analytics launcher");

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(LauncherWorker);
	ctl.hcxt = TopMemoryContext;
	workers = hash_create("analytics launcher workers", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	round_context = AllocSetContextCreate(TopMemoryContext, "analytics launcher round",
										  ALLOCSET_DEFAULT_SIZES);

	LWLockAcquire(pool_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < POOL_MAX_DATABASES; i++)
		pool_shared->dbs[i].assigned = false;
	pool_shared->launcher_latch = MyLatch;
	LWLockRelease(pool_shared->lock);
	before_shmem_exit(launcher_at_exit, (Datum) 0);

	for (;;)
	{
		MemoryContext old;
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			launcher_dbs_stale = true;
		}

		ResetLatch(MyLatch);
		MemoryContextReset(round_context);
		old = MemoryContextSwitchTo(round_context);
		sleep_ms = launcher_round(workers);
		MemoryContextSwitchTo(old);
		pgstat_report_activity(STATE_IDLE, NULL);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 10), PG_WAIT_EXTENSION);
	}
}
