/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The rollup background workers: a launcher, and a bounded pool of
 *	  short-lived workers that it hands the databases with logs to fold.
 *
 * The launcher (registered at preload time, backend_type "analytics
 * launcher") is connected to no database.  A shared table has a slot per
 * database it serves (every database that accepts connections and is not a
 * template, or those named in analytics.databases).  A slot is due for a
 * visit when
 *
 *	dirty	a transaction that wrote logs there committed (or prepared) since
 *			the last pass there started: the insert trigger notes the write
 *			(worker_note_log_written) and the commit sets the flag and wakes
 *			the launcher; or
 *	timer	its next_visit came: at start (nothing is known after a restart),
 *			every WORKER_SWEEP_MS for a database with the extension (logs
 *			that reached it without the trigger, a COMMIT PREPARED in another
 *			session), WORKER_ABSENT_RECHECK_MS for one without it,
 *			WORKER_OUTDATED_RECHECK_MS for one waiting for ALTER EXTENSION
 *			UPDATE, and the back-off after a failed pass.
 *
 * The launcher starts at most analytics.max_workers workers (and never more
 * than max_worker_processes minus itself), one per database, for the due
 * databases that have waited longest first, and publishes how many due
 * databases are left waiting.  A worker (backend_type "analytics rollup")
 * serves its one database:
 *
 *	check	whether the extension exists and is at this library's version;
 *			if not, note when to look again and exit.
 *	pass	clear the dirty flag, then one fold-in pass (rollup.c), each
 *			chunk in its own short transaction.  When databases are waiting
 *			and this worker has served for WORKER_SLICE_MS, it stops between
 *			chunks, marks its database dirty again (behind those waiting) and
 *			exits: a backlog in one database cannot starve the others.
 *	stay	while nothing waits it keeps its database, a pass every
 *			analytics.rollup_interval, and exits after WORKER_LINGER_MS
 *			without new logs; when something waits it exits after the pass.
 *
 * A failed pass is logged, stored in rollup_state.last_error (shown by
 * analytics.status) and retried after WORKER_ERROR_DELAY_MS times the
 * failures in a row (at most WORKER_ERROR_DELAY_MAX_MS).  A worker that ends
 * in the middle of a pass (pg_terminate_backend, an error) leaves its
 * database dirty, retried after WORKER_RESTART_DELAY_MS.  Clearing the flag
 * before the pass reads the last log id cannot lose a commit: a writer sets
 * the flag after its commit is visible, the worker clears it before it
 * reads, and a memory barrier on each side makes one of them see the other.
 *
 * SIGTERM ends either process at once (die); analytics.worker_enabled = off
 * makes the launcher start nothing and running workers exit at their next
 * pass.  The sizing rule is in the README (Settings).
 *
 * Locking: see rollup.c; a worker holds no lock between passes.  The shared
 * table is guarded by its own LWLock, taken by a writer only when it is the
 * first to commit logs since the last pass (the flag is read first without
 * it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "rollup.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(worker_database_status);

PGDLLEXPORT void worker_launcher_main(Datum main_arg);
PGDLLEXPORT void worker_rollup_main(Datum main_arg);

/* How often the launcher looks at pg_database when nothing wakes it. */
#define LAUNCHER_NAPTIME_MS			1000
/* A worker serves this long at least before it yields to waiting databases. */
#define WORKER_SLICE_MS				1000
/* A worker with nothing waiting stays this long for new logs. */
#define WORKER_LINGER_MS			5000
/* Every database with the extension is visited at least this often. */
#define WORKER_SWEEP_MS				60000
/* A database without the extension is looked at again after this. */
#define WORKER_ABSENT_RECHECK_MS	300000
/* A database waiting for ALTER EXTENSION UPDATE is looked at again after this. */
#define WORKER_OUTDATED_RECHECK_MS	5000
/* Back-off after a failed pass: this, times the failures in a row, capped. */
#define WORKER_ERROR_DELAY_MS		1000
#define WORKER_ERROR_DELAY_MAX_MS	60000
/* Delay before serving again a database whose worker ended mid-pass. */
#define WORKER_RESTART_DELAY_MS		2000
/* Databases the shared table can serve. */
#define WORKER_MAX_DATABASES		4096

/* What a worker found in a database, kept for the launcher and the log. */
typedef enum WorkerDatabaseState
{
	WORKER_DB_UNKNOWN,			/* never visited since the server started */
	WORKER_DB_ABSENT,			/* the extension is not installed */
	WORKER_DB_OUTDATED,			/* installed at another version */
	WORKER_DB_CURRENT			/* installed at the library's version */
} WorkerDatabaseState;

/*
 * One served database.  dirty and dirty_since are atomics, written by
 * writers without the lock; the rest is written under the table's LWLock
 * (exclusive) and read under it (shared).
 */
typedef struct WorkerDatabase
{
	Oid			dboid;			/* InvalidOid: a free slot */
	pg_atomic_uint32 dirty;		/* logs committed since the last pass began */
	pg_atomic_uint64 dirty_since;	/* when dirty was set (0: unknown) */
	TimestampTz next_visit;		/* due then even when clean (0: never) */
	TimestampTz retry_after;	/* not before then, even when dirty */
	TimestampTz last_served;	/* when a worker last finished a pass */
	int			failures;		/* failed passes in a row */
	WorkerDatabaseState state;
	bool		assigned;		/* the launcher started a worker for it */
	bool		in_pass;		/* its worker is in the middle of a pass */
} WorkerDatabase;

typedef struct WorkerShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch; /* NULL while no launcher runs */
	pg_atomic_uint32 waiting;	/* due databases the pool has no room for */
	WorkerDatabase dbs[WORKER_MAX_DATABASES];
} WorkerShared;

/* Launcher memory: the worker it started for a database. */
typedef struct LauncherEntry
{
	Oid			dboid;			/* hash key */
	BackgroundWorkerHandle *handle;
} LauncherEntry;

/* A due database, as the launcher ranks them. */
typedef struct LauncherCandidate
{
	int			slot;
	TimestampTz since;			/* waiting since: earliest first */
} LauncherCandidate;

static WorkerShared *worker_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This backend's slot (a hint, checked against MyDatabaseId). */
static int	worker_my_slot = -1;
/* Whether the current transaction wrote logs. */
static bool worker_wrote_logs = false;
/* In a worker: when it began to serve, and whether its pass yielded. */
static TimestampTz worker_serve_start = 0;
static bool worker_yielded = false;

/*
 * worker_shmem_request
 *		Reserve the shared table and its lock (postmaster, at startup).
 */
static void
worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WorkerShared)));
	RequestNamedLWLockTranche("analytics workers", 1);
}

/*
 * worker_shmem_startup
 *		Create or attach the shared table.
 */
static void
worker_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	worker_shared = ShmemInitStruct("analytics rollup workers",
									sizeof(WorkerShared), &found);
	if (!found)
	{
		int			i;

		memset(worker_shared, 0, sizeof(WorkerShared));
		worker_shared->lock = &(GetNamedLWLockTranche("analytics workers"))->lock;
		pg_atomic_init_u32(&worker_shared->waiting, 0);
		for (i = 0; i < WORKER_MAX_DATABASES; i++)
		{
			pg_atomic_init_u32(&worker_shared->dbs[i].dirty, 0);
			pg_atomic_init_u64(&worker_shared->dbs[i].dirty_since, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * worker_find_slot
 *		The slot of database dboid, or -1.  The caller holds the lock.
 */
static int
worker_find_slot(Oid dboid)
{
	int			i;

	for (i = 0; i < WORKER_MAX_DATABASES; i++)
		if (worker_shared->dbs[i].dboid == dboid)
			return i;
	return -1;
}

/*
 * worker_add_slot
 *		The slot of database dboid, taking a free one (due at once) if it has
 *		none; -1 when the table is full.  The caller holds the lock
 *		exclusively.
 */
static int
worker_add_slot(Oid dboid)
{
	int			i = worker_find_slot(dboid);
	WorkerDatabase *db;

	if (i >= 0)
		return i;
	for (i = 0; i < WORKER_MAX_DATABASES; i++)
		if (worker_shared->dbs[i].dboid == InvalidOid)
			break;
	if (i == WORKER_MAX_DATABASES)
		return -1;
	db = &worker_shared->dbs[i];
	db->dboid = dboid;
	pg_atomic_write_u32(&db->dirty, 0);
	pg_atomic_write_u64(&db->dirty_since, 0);
	db->next_visit = 1;			/* due now: nothing is known about it */
	db->retry_after = 0;
	db->last_served = 0;
	db->failures = 0;
	db->state = WORKER_DB_UNKNOWN;
	db->assigned = false;
	db->in_pass = false;
	return i;
}

/*
 * worker_my_database
 *		This database's slot, or NULL: the library is not preloaded, or the
 *		database is not served (not in analytics.databases, or too new: the
 *		launcher gives it a slot, due at once, within LAUNCHER_NAPTIME_MS).
 *		Takes the lock (shared) only when the hint is stale.
 */
static WorkerDatabase *
worker_my_database(void)
{
	if (worker_shared == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	if (worker_my_slot >= 0 &&
		worker_shared->dbs[worker_my_slot].dboid == MyDatabaseId)
		return &worker_shared->dbs[worker_my_slot];
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	worker_my_slot = worker_find_slot(MyDatabaseId);
	LWLockRelease(worker_shared->lock);
	return worker_my_slot >= 0 ? &worker_shared->dbs[worker_my_slot] : NULL;
}

/*
 * worker_mark_dirty
 *		Mark a database as having logs to fold, and wake the launcher when it
 *		is the first mark since the last pass began.  since: when the logs
 *		began to wait.  Lock-free.
 */
static void
worker_mark_dirty(WorkerDatabase *db, TimestampTz since)
{
	pg_memory_barrier();
	if (pg_atomic_read_u32(&db->dirty) != 0)
		return;
	if (pg_atomic_exchange_u32(&db->dirty, 1) != 0)
		return;
	pg_atomic_write_u64(&db->dirty_since, (uint64) since);
	if (worker_shared->launcher_latch != NULL)
		SetLatch(worker_shared->launcher_latch);
}

/*
 * worker_requeue
 *		Mark a database dirty as of now, behind every database already
 *		waiting: a worker that gives up a database with logs left.
 */
static void
worker_requeue(WorkerDatabase *db)
{
	pg_atomic_write_u64(&db->dirty_since, (uint64) GetCurrentTimestamp());
	pg_atomic_write_u32(&db->dirty, 1);
	pg_memory_barrier();
	if (worker_shared->launcher_latch != NULL)
		SetLatch(worker_shared->launcher_latch);
}

/*
 * worker_note_log_written
 *		Called by the insert trigger of logs: the current transaction wrote
 *		a log, so its commit makes the database due for a pass.
 */
void
worker_note_log_written(void)
{
	worker_wrote_logs = true;
}

/*
 * worker_xact_callback
 *		At the commit (or prepare) of a transaction that wrote logs, mark
 *		this database dirty.  Runs after the commit is visible to others, so
 *		a pass that begins after the mark sees the logs.
 */
static void
worker_xact_callback(XactEvent event, void *arg)
{
	WorkerDatabase *db;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			if (worker_wrote_logs && (db = worker_my_database()) != NULL)
				worker_mark_dirty(db, GetCurrentTimestamp());
			worker_wrote_logs = false;
			break;
		case XACT_EVENT_ABORT:
			worker_wrote_logs = false;
			break;
		default:
			break;
	}
}

/*
 * worker_init
 *		Register the transaction callback that marks databases dirty; called
 *		by _PG_init in every backend.
 */
void
worker_init(void)
{
	RegisterXactCallback(worker_xact_callback, NULL);
}

/*
 * worker_check_databases
 *		Check hook of analytics.databases: a comma-separated list of names.
 */
bool
worker_check_databases(char **newval, void **extra, GucSource source)
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
 * worker_register_launcher
 *		Register the launcher and the shared table; called from _PG_init
 *		only while shared_preload_libraries is being processed.
 */
void
worker_register_launcher(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = worker_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = worker_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "analytics");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "worker_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "analytics launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "analytics launcher");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/*
 * launcher_served_names
 *		analytics.databases as a list of names, NIL when empty (every
 *		database).  Allocated in the current context.
 */
static List *
launcher_served_names(void)
{
	List	   *names = NIL;

	if (analytics_databases == NULL || analytics_databases[0] == '\0')
		return NIL;
	/* The check hook accepted it, so it splits. */
	(void) SplitGUCList(pstrdup(analytics_databases), ',', &names);
	return names;
}

/*
 * launcher_list_databases
 *		The oids of the databases to serve: those that accept connections,
 *		are not templates, are valid and, when analytics.databases is set,
 *		are named there.  Runs its own transaction; the list is allocated in
 *		the caller's context.
 */
static List *
launcher_list_databases(void)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *names = launcher_served_names();
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();

	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tuple = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		MemoryContext old;
		ListCell   *lc;
		bool		named = (names == NIL);

		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db))
			continue;
		foreach(lc, names)
			if (strcmp((char *) lfirst(lc), NameStr(db->datname)) == 0)
				named = true;
		if (!named)
			continue;
		old = MemoryContextSwitchTo(caller);
		result = lappend_oid(result, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	CommitTransactionCommand();
	return result;
}

/*
 * launcher_start_worker
 *		Register a worker for the database of slot i; false when the server
 *		has no free worker slot (warned about once until one starts).
 */
static bool
launcher_start_worker(HTAB *entries, int i)
{
	static bool warned = false;
	BackgroundWorker worker;
	Oid			dboid = worker_shared->dbs[i].dboid;
	LauncherEntry *entry;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "analytics");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "worker_rollup_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "analytics rollup worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "analytics rollup");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		if (!warned)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start an analytics rollup worker"),
					 errdetail("Every background worker slot of the server is taken."),
					 errhint("Raise max_worker_processes, or lower analytics.max_workers.")));
		warned = true;
		return false;
	}
	warned = false;
	entry = hash_search(entries, &dboid, HASH_ENTER, NULL);
	entry->handle = handle;
	worker_shared->dbs[i].assigned = true;
	return true;
}

/*
 * launcher_reap
 *		Forget the workers that stopped.  A worker that stopped in the middle
 *		of a pass leaves its database dirty, to be served again after
 *		WORKER_RESTART_DELAY_MS.  Returns how many still run.  Holds the lock
 *		exclusively.
 */
static int
launcher_reap(HTAB *entries, TimestampTz now)
{
	HASH_SEQ_STATUS status;
	LauncherEntry *entry;
	int			running = 0;

	hash_seq_init(&status, entries);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		pid_t		pid;
		BgwHandleStatus st = GetBackgroundWorkerPid(entry->handle, &pid);
		int			i;

		if (st == BGWH_POSTMASTER_DIED)
			proc_exit(1);
		if (st != BGWH_STOPPED)
		{
			running++;
			continue;
		}
		i = worker_find_slot(entry->dboid);
		if (i >= 0)
		{
			WorkerDatabase *db = &worker_shared->dbs[i];

			db->assigned = false;
			if (db->in_pass)
			{
				db->in_pass = false;
				db->retry_after = TimestampTzPlusMilliseconds(now, WORKER_RESTART_DELAY_MS);
				worker_mark_dirty(db, now);
			}
		}
		pfree(entry->handle);
		hash_search(entries, &entry->dboid, HASH_REMOVE, NULL);
	}
	return running;
}

/*
 * launcher_candidate_cmp
 *		qsort order of due databases: longest waiting first.
 */
static int
launcher_candidate_cmp(const void *a, const void *b)
{
	TimestampTz x = ((const LauncherCandidate *) a)->since;
	TimestampTz y = ((const LauncherCandidate *) b)->since;

	return (x > y) - (x < y);
}

/*
 * launcher_scan
 *		One round of the launcher: bring the shared table in line with the
 *		served databases, reap stopped workers, start workers for the due
 *		databases that waited longest while the pool has room, and publish
 *		how many are left waiting.  Returns how long to sleep.
 */
static long
launcher_scan(HTAB *entries)
{
	List	   *databases = launcher_list_databases();
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, LAUNCHER_NAPTIME_MS);
	LauncherCandidate *candidates;
	int			ncandidates = 0;
	int			running;
	int			room;
	int			i;
	int			c;
	bool		full = false;

	candidates = palloc(sizeof(LauncherCandidate) * WORKER_MAX_DATABASES);
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);

	/* Slots for the served databases; free those no longer served. */
	for (i = 0; i < WORKER_MAX_DATABASES; i++)
	{
		WorkerDatabase *db = &worker_shared->dbs[i];

		if (OidIsValid(db->dboid) && !db->assigned &&
			!list_member_oid(databases, db->dboid))
			db->dboid = InvalidOid;
	}
	{
		ListCell   *lc;

		foreach(lc, databases)
			if (worker_add_slot(lfirst_oid(lc)) < 0)
				full = true;
	}

	running = launcher_reap(entries, now);

	for (i = 0; i < WORKER_MAX_DATABASES; i++)
	{
		WorkerDatabase *db = &worker_shared->dbs[i];
		bool		dirty;
		TimestampTz since;

		if (!OidIsValid(db->dboid) || db->assigned)
			continue;
		dirty = pg_atomic_read_u32(&db->dirty) != 0;
		if (dirty && db->retry_after > now)
		{
			wake = Min(wake, db->retry_after);
			continue;
		}
		if (dirty)
		{
			since = (TimestampTz) pg_atomic_read_u64(&db->dirty_since);
			if (since == 0)
				since = now;
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
		candidates[ncandidates].since = since;
		ncandidates++;
	}
	qsort(candidates, ncandidates, sizeof(LauncherCandidate), launcher_candidate_cmp);

	room = analytics_worker_enabled ?
		Min(analytics_max_workers, max_worker_processes - 1) - running : 0;
	for (c = 0; c < ncandidates && room > 0; c++)
	{
		if (!launcher_start_worker(entries, candidates[c].slot))
			break;
		room--;
	}
	pg_atomic_write_u32(&worker_shared->waiting, (uint32) (ncandidates - c));
	LWLockRelease(worker_shared->lock);

	if (full)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the analytics launcher serves at most %d databases",
						WORKER_MAX_DATABASES),
				 errhint("Name the databases to serve in analytics.databases.")));
	list_free(databases);
	pfree(candidates);
	return Max(0, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), wake));
}

/*
 * worker_launcher_main
 *		Entry point of the launcher.  Connected to no database; each scan
 *		is a short read-only transaction over pg_database.  Woken by its
 *		latch: a first commit of logs in a database, a worker that stopped
 *		(bgw_notify_pid), a SIGHUP.
 */
void
worker_launcher_main(Datum main_arg)
{
	HASHCTL		ctl;
	HTAB	   *entries;
	MemoryContext scan_context;
	int			i;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("analytics launcher");

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(LauncherEntry);
	ctl.hcxt = TopMemoryContext;
	entries = hash_create("analytics launcher workers", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	scan_context = AllocSetContextCreate(TopMemoryContext, "analytics launcher scan",
										 ALLOCSET_DEFAULT_SIZES);

	/*
	 * A launcher that restarts does not know the workers of the one before:
	 * they finish on their own, and their databases count as unassigned.
	 */
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < WORKER_MAX_DATABASES; i++)
		worker_shared->dbs[i].assigned = false;
	worker_shared->launcher_latch = MyLatch;
	LWLockRelease(worker_shared->lock);

	for (;;)
	{
		MemoryContext old;
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		ResetLatch(MyLatch);
		MemoryContextReset(scan_context);
		old = MemoryContextSwitchTo(scan_context);
		sleep_ms = launcher_scan(entries);
		MemoryContextSwitchTo(old);
		pgstat_report_activity(STATE_IDLE, NULL);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 10), PG_WAIT_EXTENSION);
	}
}

/*
 * worker_should_yield
 *		Whether a worker should give up its database now: databases wait for
 *		a worker and this one has served its slice.
 */
static bool
worker_should_yield(void)
{
	return pg_atomic_read_u32(&worker_shared->waiting) > 0 &&
		TimestampDifferenceExceeds(worker_serve_start, GetCurrentTimestamp(),
								   WORKER_SLICE_MS);
}

/*
 * worker_finish_visit
 *		Record in this database's slot what the visit found: state, when to
 *		visit next, and the end of a pass (ok: it succeeded).  Takes the lock.
 */
static void
worker_finish_visit(WorkerDatabase *db, WorkerDatabaseState state,
					long next_visit_ms, bool passed, bool ok)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	db->state = state;
	db->next_visit = TimestampTzPlusMilliseconds(now, next_visit_ms);
	if (passed)
	{
		db->in_pass = false;
		if (ok)
		{
			db->failures = 0;
			db->last_served = now;
			db->retry_after = 0;
		}
		else
		{
			db->failures++;
			db->retry_after = TimestampTzPlusMilliseconds(now,
														  Min((long) WORKER_ERROR_DELAY_MS * db->failures,
															  WORKER_ERROR_DELAY_MAX_MS));
			db->next_visit = db->retry_after;
		}
	}
	LWLockRelease(worker_shared->lock);
}

/* What a per-database worker finds in the catalog before a pass. */
typedef enum WorkerExtensionState
{
	WORKER_EXTENSION_ABSENT,	/* not installed, or not committed yet */
	WORKER_EXTENSION_OUTDATED,	/* installed at another version than the
								 * library's: waits for ALTER EXTENSION */
	WORKER_EXTENSION_CURRENT	/* installed at the library's version */
} WorkerExtensionState;

/*
 * worker_extension_state
 *		Whether the extension is installed (committed) in this database, and
 *		at this library's version.  When it is at another version, copies it
 *		into installed (of size len).  Runs its own short transaction.
 */
static WorkerExtensionState
worker_extension_state(char *installed, size_t len)
{
	WorkerExtensionState state;
	char	   *version;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "analytics rollup: checking for the extension");
	version = analytics_installed_version();
	if (version == NULL)
		state = WORKER_EXTENSION_ABSENT;
	else if (strcmp(version, ANALYTICS_VERSION) == 0)
		state = WORKER_EXTENSION_CURRENT;
	else
	{
		state = WORKER_EXTENSION_OUTDATED;
		strlcpy(installed, version, len);
	}
	CommitTransactionCommand();
	return state;
}

/*
 * worker_lock_extension
 *		Lock the extension object (AccessShareLock, until the end of the
 *		transaction) and say whether it still exists.  DROP EXTENSION takes
 *		AccessExclusiveLock on it before it locks any of its relations, so
 *		it waits for a pass's transaction to end, and a pass never waits for
 *		a DROP EXTENSION that already holds some of the tables: the two
 *		cannot deadlock.  Inside a transaction.
 */
static bool
worker_lock_extension(void)
{
	Oid			extoid = get_extension_oid("analytics", true);

	if (!OidIsValid(extoid))
		return false;
	LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	/* Locking processed the invalidations of a DROP that committed meanwhile. */
	return get_extension_oid("analytics", true) == extoid;
}

/*
 * worker_pass
 *		One fold-in pass: reading the writers in progress and the first
 *		chunk in one transaction, each further chunk in a transaction of its
 *		own.  Stops between chunks when it should yield (worker_yielded is
 *		then set).
 *		Called outside any transaction; errors propagate.
 */
static void
worker_pass(void)
{
	MemoryContext pass_context = CurrentMemoryContext;
	RollupPass	pass;
	bool		first = true;
	bool		more;

	do
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (!worker_lock_extension())
		{
			/* DROP EXTENSION committed while we waited: nothing to fold. */
			CommitTransactionCommand();
			break;
		}
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "analytics rollup: folding logs in");
		if (first)
			rollup_settle(&pass, pass_context);
		more = rollup_fold_chunk(&pass);
		first = false;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		CHECK_FOR_INTERRUPTS();
		if (more && worker_should_yield())
		{
			/* Others wait: the rest of this backlog goes behind them. */
			worker_yielded = true;
			break;
		}
	} while (more);

	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * worker_record_error
 *		Store a failed pass's error in rollup_state.last_error (shown by
 *		analytics.status), in a transaction of its own.  Best effort: a
 *		failure to record it is logged and otherwise ignored.  Called
 *		outside any transaction.
 */
static void
worker_record_error(const char *sqlstate, const char *message)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	PG_TRY();
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];
		char	   *text;

		text = psprintf("%s: %s", sqlstate, message);
		text = pnstrdup(text, pg_mbcliplen(text, strlen(text), 1000));
		values[0] = CStringGetTextDatum(text);
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_execute_with_args("UPDATE analytics.rollup_state SET last_error = $1, "
							  "last_error_at = pg_catalog.now()",
							  1, argtypes, values, NULL, false, 0);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
}

/*
 * worker_try_pass
 *		worker_pass(), catching its error: report it, roll back everything
 *		(subtransactions of the fold included) and record it with
 *		worker_record_error().  Returns whether the pass succeeded.  Called
 *		outside any transaction, in the pass's memory context.
 */
static bool
worker_try_pass(MemoryContext pass_context)
{
	volatile bool ok = false;

	PG_TRY();
	{
		worker_pass();
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(pass_context);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		RESUME_INTERRUPTS();
		/* The abort left TopMemoryContext current. */
		MemoryContextSwitchTo(pass_context);
		pgstat_report_activity(STATE_IDLE, NULL);
		worker_record_error(unpack_sql_state(edata->sqlerrcode),
							edata->message ? edata->message : "");
	}
	PG_END_TRY();
	return ok;
}

/*
 * worker_sleep
 *		Sleep what is left of analytics.rollup_interval since from (none
 *		when it is over: a backlog is followed at once by the next pass); a
 *		SIGHUP wakes it.
 */
static void
worker_sleep(TimestampTz from)
{
	long		sleep_ms = analytics_rollup_interval -
		TimestampDifferenceMilliseconds(from, GetCurrentTimestamp());

	if (sleep_ms > 0)
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

/*
 * worker_rollup_main
 *		Entry point of a worker; main_arg is the oid of the database to
 *		serve.  Serves it until it should give it up (see the file header).
 */
void
worker_rollup_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext pass_context;
	TimestampTz last_dirty;
	WorkerDatabase *db;
	char		installed[NAMEDATALEN];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/* The fold-in needs READ COMMITTED whatever the server default is. */
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("application_name", "analytics rollup",
					PGC_USERSET, PGC_S_SESSION);

	db = worker_my_database();
	if (db == NULL)
		proc_exit(0);			/* no longer served */
	pass_context = AllocSetContextCreate(TopMemoryContext, "analytics rollup pass",
										 ALLOCSET_DEFAULT_SIZES);
	worker_serve_start = last_dirty = GetCurrentTimestamp();

	for (bool first = true;; first = false)
	{
		TimestampTz pass_start;
		WorkerDatabaseState state;
		WorkerDatabaseState before;
		MemoryContext old;
		bool		ok;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!analytics_worker_enabled || RecoveryInProgress())
			proc_exit(0);

		/*
		 * After the first pass: stay while nothing else waits, a pass every
		 * rollup_interval when logs came, none when none did; give the
		 * database up when others wait (behind them, if logs came), or
		 * after WORKER_LINGER_MS without logs.
		 */
		if (!first)
		{
			bool		dirty = pg_atomic_read_u32(&db->dirty) != 0;

			if (pg_atomic_read_u32(&worker_shared->waiting) > 0)
			{
				if (dirty)
					worker_requeue(db);
				proc_exit(0);
			}
			if (dirty)
				last_dirty = GetCurrentTimestamp();
			else
			{
				if (TimestampDifferenceExceeds(last_dirty, GetCurrentTimestamp(),
											   WORKER_LINGER_MS))
					proc_exit(0);
				worker_sleep(GetCurrentTimestamp());
				continue;
			}
		}

		pass_start = GetCurrentTimestamp();
		MemoryContextReset(pass_context);
		old = MemoryContextSwitchTo(pass_context);
		LWLockAcquire(worker_shared->lock, LW_SHARED);
		before = db->state;
		LWLockRelease(worker_shared->lock);
		switch (worker_extension_state(installed, sizeof(installed)))
		{
			case WORKER_EXTENSION_ABSENT:
				worker_finish_visit(db, WORKER_DB_ABSENT, WORKER_ABSENT_RECHECK_MS, false, false);
				proc_exit(0);
				break;
			case WORKER_EXTENSION_OUTDATED:
				/* Old objects: fold nothing until they are updated. */
				if (before != WORKER_DB_OUTDATED)
					ereport(LOG,
							(errmsg("analytics rollup worker waits for ALTER EXTENSION analytics UPDATE"),
							 errdetail("Database %u has analytics %s installed and the loaded library is version %s.",
									   MyDatabaseId,
									   installed, ANALYTICS_VERSION),
							 errhint("Run ALTER EXTENSION analytics UPDATE in that database.")));
				worker_finish_visit(db, WORKER_DB_OUTDATED, WORKER_OUTDATED_RECHECK_MS, false, false);
				proc_exit(0);
				break;
			case WORKER_EXTENSION_CURRENT:
				break;
		}
		if (before == WORKER_DB_OUTDATED)
			ereport(LOG,
					(errmsg("analytics rollup worker resumes: the extension is at version %s",
							ANALYTICS_VERSION)));

		/* Clear the flag before the pass reads the last id (see header). */
		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		db->in_pass = true;
		LWLockRelease(worker_shared->lock);
		pg_atomic_write_u32(&db->dirty, 0);
		pg_memory_barrier();

		worker_yielded = false;
		ok = worker_try_pass(pass_context);
		MemoryContextSwitchTo(old);
		state = WORKER_DB_CURRENT;
		worker_finish_visit(db, state, WORKER_SWEEP_MS, true, ok);
		if (!ok || worker_yielded)
		{
			/* Failed (retried after the back-off) or yielded: not done. */
			worker_requeue(db);
			proc_exit(0);
		}
		worker_sleep(pass_start);
	}
}

/*
 * worker_database_status
 *		SQL: analytics._worker_status(OUT last_served timestamptz, OUT
 *		waiting_since timestamptz): when a worker last finished a pass in this
 *		database, and since when committed logs wait for a pass (null: none
 *		wait).  Both null when the library is not preloaded or the database
 *		is not served; last_served is null before the first pass since the
 *		server started.  Takes the table's lock (shared).
 */
Datum
worker_database_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2] = {0, 0};
	bool		nulls[2] = {true, true};
	WorkerDatabase *db;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	db = worker_my_database();
	if (db != NULL)
	{
		TimestampTz last_served;
		TimestampTz since = 0;

		LWLockAcquire(worker_shared->lock, LW_SHARED);
		last_served = db->last_served;
		LWLockRelease(worker_shared->lock);
		pg_memory_barrier();
		if (pg_atomic_read_u32(&db->dirty) != 0)
			since = (TimestampTz) pg_atomic_read_u64(&db->dirty_since);
		if (last_served != 0)
		{
			values[0] = TimestampTzGetDatum(last_served);
			nulls[0] = false;
		}
		if (since != 0)
		{
			values[1] = TimestampTzGetDatum(since);
			nulls[1] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
