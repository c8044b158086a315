/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The rollup background workers: a launcher, and one worker per database
 *	  that folds new logs in every analytics.rollup_interval.
 *
 * The launcher (registered at preload time, backend_type "analytics
 * launcher") is connected to no database: it reads pg_database every
 * second and keeps one dynamic worker (backend_type "analytics rollup")
 * running for every database that accepts connections and is not a
 * template.  It restarts a worker that stopped: WORKER_IDLE_DELAY_MS after
 * a quiet exit (no extension in that database, or the worker disabled),
 * WORKER_RESTART_DELAY_MS after any other exit (an error, a crash,
 * pg_terminate_backend).  A worker reports a quiet exit through a small
 * shared memory table.
 *
 * A per-database worker runs passes until it has a reason to stop:
 *
 *	check	in a transaction of its own, whether the extension exists in
 *			the catalog (a CREATE EXTENSION in progress is not visible yet);
 *			if not, exit quietly.  In recovery, skip the pass.
 *	wait	the extension is installed at another version than this
 *			library's (the library was upgraded, ALTER EXTENSION analytics
 *			UPDATE not run yet): skip the pass, fold nothing, say so in
 *			pg_stat_activity (LOG once), check again next interval.
 *	pass	one fold-in pass (rollup.c): read the last id and wait for the
 *			writers that may hold ids up to it, then fold chunk by chunk,
 *			committing each chunk in its own short transaction.
 *	sleep	WaitLatch for what is left of analytics.rollup_interval since the
 *			pass started, none after a pass that took longer (a SIGHUP re-reads the
 *			settings and wakes it).
 *
 *	backoff	after a pass that failed: the error goes to the server log and
 *			to rollup_state.last_error (analytics.status), the transaction
 *			is rolled back and its locks released, and the next pass starts
 *			after WORKER_ERROR_DELAY_MS times the number of failures in a
 *			row (at most WORKER_ERROR_DELAY_MAX_MS).  A log that cannot be
 *			folded is not such an error: the fold sets it aside (rollup.c),
 *			so what is left are errors of the system (a lock timeout, a
 *			cancel, a full disk), which a later pass may not meet.
 *
 * A crash of the worker (or pg_terminate_backend) ends it; the launcher
 * starts a new one after WORKER_RESTART_DELAY_MS.
 * SIGTERM ends either process at once (die); analytics.worker_enabled = off
 * makes the launcher start nothing and running workers exit at their next
 * pass.
 *
 * Locking: see rollup.c; a worker holds no lock between passes.
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
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "rollup.h"
#include "worker.h"

PGDLLEXPORT void worker_launcher_main(Datum main_arg);
PGDLLEXPORT void worker_rollup_main(Datum main_arg);

/* How often the launcher looks for databases and stopped workers. */
#define LAUNCHER_NAPTIME_MS			1000
/* Back-off after a failed pass: this, times the failures in a row, capped. */
#define WORKER_ERROR_DELAY_MS		1000
#define WORKER_ERROR_DELAY_MAX_MS	60000
/* Delay before restarting a worker that failed or was terminated. */
#define WORKER_RESTART_DELAY_MS		2000
/* Delay before looking again at a database without the extension. */
#define WORKER_IDLE_DELAY_MS		10000
/* Databases whose quiet exits the shared table can remember. */
#define WORKER_MAX_DATABASES		256

/* Shared memory: when each database's worker exited quietly. */
typedef struct WorkerIdleSlot
{
	Oid			dboid;			/* InvalidOid: free */
	TimestampTz idle_until;
} WorkerIdleSlot;

typedef struct WorkerShared
{
	slock_t		mutex;
	WorkerIdleSlot slots[WORKER_MAX_DATABASES];
} WorkerShared;

/* Launcher memory: one entry per database. */
typedef struct LauncherEntry
{
	Oid			dboid;			/* hash key */
	BackgroundWorkerHandle *handle; /* NULL: not running */
	TimestampTz next_start;
	bool		seen;			/* still in pg_database */
	bool		warned;			/* registration failure logged */
} LauncherEntry;

static WorkerShared *worker_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * worker_shmem_request
 *		Reserve the shared table of quiet exits (postmaster, at startup).
 */
static void
worker_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WorkerShared)));
}

/*
 * worker_shmem_startup
 *		Create or attach the shared table of quiet exits.
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
		SpinLockInit(&worker_shared->mutex);
		memset(worker_shared->slots, 0, sizeof(worker_shared->slots));
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * worker_note_idle
 *		Record that this database's worker exits quietly and should not be
 *		started again before idle_until.  Takes the table's spinlock.
 */
static void
worker_note_idle(Oid dboid, TimestampTz idle_until)
{
	int			i;
	int			free_slot = -1;

	if (worker_shared == NULL)
		return;
	SpinLockAcquire(&worker_shared->mutex);
	for (i = 0; i < WORKER_MAX_DATABASES; i++)
	{
		if (worker_shared->slots[i].dboid == dboid)
		{
			free_slot = i;
			break;
		}
		if (free_slot < 0 && worker_shared->slots[i].dboid == InvalidOid)
			free_slot = i;
	}
	if (free_slot >= 0)
	{
		worker_shared->slots[free_slot].dboid = dboid;
		worker_shared->slots[free_slot].idle_until = idle_until;
	}
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * worker_take_idle
 *		If the database's worker exited quietly, forget that and return
 *		until when it stays stopped; else return 0.  Takes the spinlock.
 */
static TimestampTz
worker_take_idle(Oid dboid)
{
	TimestampTz result = 0;
	int			i;

	if (worker_shared == NULL)
		return 0;
	SpinLockAcquire(&worker_shared->mutex);
	for (i = 0; i < WORKER_MAX_DATABASES; i++)
	{
		if (worker_shared->slots[i].dboid == dboid)
		{
			result = worker_shared->slots[i].idle_until;
			worker_shared->slots[i].dboid = InvalidOid;
			break;
		}
	}
	SpinLockRelease(&worker_shared->mutex);
	return result;
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
 * launcher_list_databases
 *		The oids of the databases a worker should run in: those that accept
 *		connections, are not templates and are valid.  Runs its own
 *		transaction; the list is allocated in the caller's context.
 */
static List *
launcher_list_databases(void)
{
	MemoryContext caller = CurrentMemoryContext;
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

		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db))
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
 *		Register the dynamic worker of one database; on failure (no free
 *		worker slot) log once and try again after the restart delay.
 */
static void
launcher_start_worker(LauncherEntry *entry, TimestampTz now)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "analytics");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "worker_rollup_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "analytics rollup worker for database %u",
			 entry->dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "analytics rollup");
	worker.bgw_main_arg = ObjectIdGetDatum(entry->dboid);
	worker.bgw_notify_pid = MyProcPid;

	if (RegisterDynamicBackgroundWorker(&worker, &entry->handle))
	{
		entry->warned = false;
		return;
	}
	entry->handle = NULL;
	entry->next_start = TimestampTzPlusMilliseconds(now, WORKER_RESTART_DELAY_MS);
	if (!entry->warned)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the analytics rollup worker for database %u",
						entry->dboid),
				 errhint("Raise max_worker_processes: the launcher needs one worker per database.")));
	entry->warned = true;
}

/*
 * launcher_scan
 *		Bring the set of running workers in line with pg_database: forget
 *		dropped databases, notice stopped workers, start the missing ones
 *		whose delay has passed.
 */
static void
launcher_scan(HTAB *entries)
{
	List	   *databases = launcher_list_databases();
	ListCell   *lc;
	HASH_SEQ_STATUS status;
	LauncherEntry *entry;
	TimestampTz now = GetCurrentTimestamp();

	hash_seq_init(&status, entries);
	while ((entry = hash_seq_search(&status)) != NULL)
		entry->seen = false;

	foreach(lc, databases)
	{
		Oid			dboid = lfirst_oid(lc);
		bool		found;

		entry = hash_search(entries, &dboid, HASH_ENTER, &found);
		if (!found)
		{
			entry->handle = NULL;
			entry->next_start = 0;
			entry->warned = false;
		}
		entry->seen = true;
	}
	list_free(databases);

	hash_seq_init(&status, entries);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->handle != NULL)
		{
			pid_t		pid;
			BgwHandleStatus st = GetBackgroundWorkerPid(entry->handle, &pid);

			if (st == BGWH_POSTMASTER_DIED)
				proc_exit(1);
			if (st != BGWH_STOPPED)
				continue;
			pfree(entry->handle);
			entry->handle = NULL;
			entry->next_start = worker_take_idle(entry->dboid);
			if (entry->next_start == 0)
				entry->next_start = TimestampTzPlusMilliseconds(now, WORKER_RESTART_DELAY_MS);
		}
		if (!entry->seen)
		{
			(void) worker_take_idle(entry->dboid);
			hash_search(entries, &entry->dboid, HASH_REMOVE, NULL);
			continue;
		}
		if (analytics_worker_enabled && now >= entry->next_start)
			launcher_start_worker(entry, now);
	}
}

/*
 * worker_launcher_main
 *		Entry point of the launcher.  Connected to no database; each scan
 *		is a short read-only transaction over pg_database.
 */
void
worker_launcher_main(Datum main_arg)
{
	HASHCTL		ctl;
	HTAB	   *entries;
	MemoryContext scan_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("analytics launcher");

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(LauncherEntry);
	ctl.hcxt = TopMemoryContext;
	entries = hash_create("analytics launcher databases", 64, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	scan_context = AllocSetContextCreate(TopMemoryContext, "analytics launcher scan",
										 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(scan_context);
		old = MemoryContextSwitchTo(scan_context);
		launcher_scan(entries);
		MemoryContextSwitchTo(old);
		pgstat_report_activity(STATE_IDLE, NULL);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAPTIME_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * worker_exit_quietly
 *		End this database's worker without an error and ask the launcher
 *		not to start it again for WORKER_IDLE_DELAY_MS.  Outside any
 *		transaction.
 */
static void
worker_exit_quietly(void)
{
	worker_note_idle(MyDatabaseId,
					 TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 WORKER_IDLE_DELAY_MS));
	proc_exit(0);
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
 *		One fold-in pass: the wait for writers and the first chunk in one
 *		transaction, each further chunk in a transaction of its own.
 *		Called outside any transaction; errors propagate (the worker exits).
 */
static void
worker_pass(void)
{
	int64		target = 0;
	int64		folded = 0;
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
		if (first)
		{
			pgstat_report_activity(STATE_RUNNING, "analytics rollup: waiting for writers");
			target = rollup_settle();
		}
		pgstat_report_activity(STATE_RUNNING, "analytics rollup: folding logs in");
		more = rollup_fold_chunk(target, &folded, first);
		first = false;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		CHECK_FOR_INTERRUPTS();
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
 * worker_rollup_main
 *		Entry point of a per-database worker; main_arg is the database oid.
 */
void
worker_rollup_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext pass_context;
	TimestampTz pass_start;
	long		sleep_ms;
	int			failures = 0;
	bool		waiting = false;
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

	pass_context = AllocSetContextCreate(TopMemoryContext, "analytics rollup pass",
										 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!analytics_worker_enabled)
			worker_exit_quietly();

		pass_start = GetCurrentTimestamp();
		if (!RecoveryInProgress())
		{
			MemoryContext old;

			MemoryContextReset(pass_context);
			old = MemoryContextSwitchTo(pass_context);
			switch (worker_extension_state(installed, sizeof(installed)))
			{
				case WORKER_EXTENSION_ABSENT:
					worker_exit_quietly();
					break;
				case WORKER_EXTENSION_OUTDATED:
					/* Old objects: fold nothing until they are updated. */
					if (!waiting)
						ereport(LOG,
								(errmsg("analytics rollup worker waits for ALTER EXTENSION analytics UPDATE"),
								 errdetail("Database %u has analytics %s installed and the loaded library is version %s.",
										   MyDatabaseId,
										   installed, ANALYTICS_VERSION),
								 errhint("Run ALTER EXTENSION analytics UPDATE in that database.")));
					waiting = true;
					pgstat_report_activity(STATE_IDLE,
										   "analytics rollup: waiting for ALTER EXTENSION analytics UPDATE");
					break;
				case WORKER_EXTENSION_CURRENT:
					if (waiting)
						ereport(LOG,
								(errmsg("analytics rollup worker resumes: the extension is at version %s",
										ANALYTICS_VERSION)));
					waiting = false;
					if (worker_try_pass(pass_context))
						failures = 0;
					else
						failures++;
					break;
			}
			MemoryContextSwitchTo(old);
		}

		/*
		 * Passes start every rollup_interval: sleep what is left of it.  A
		 * pass that took longer (a backlog) is followed at once by the next.
		 */
		sleep_ms = analytics_rollup_interval -
			TimestampDifferenceMilliseconds(pass_start, GetCurrentTimestamp());
		if (failures > 0)
			sleep_ms = Max(sleep_ms, Min((long) WORKER_ERROR_DELAY_MS * failures,
										 WORKER_ERROR_DELAY_MAX_MS));
		if (sleep_ms > 0)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
