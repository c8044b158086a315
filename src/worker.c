/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  A rollup worker (backend_type "analytics rollup"): started by the
 *	  launcher (launcher.c) for one database, it folds the logs there while
 *	  it has reason to stay, then leaves.
 *
 * A visit:
 *
 *	check	clear the database's mark (pool.c says why no commit is lost),
 *			then in a transaction of its own check whether the extension
 *			exists and is at this library's version.  Without it, or at
 *			another version (the library was upgraded, ALTER EXTENSION
 *			UPDATE not run yet): note when to look again and leave (the
 *			second case logged once).
 *	pass	one fold-in pass (rollup.c), each chunk in its own short
 *			transaction.  When databases with logs wait for a worker and this
 *			one has served WORKER_SLICE_MS, it stops between chunks and gives
 *			the database up with its logs left (pool_requeue): a backlog in
 *			one database cannot starve the others.
 *	stay	when databases with logs wait: leave (requeued when logs came).
 *			When more workers run than analytics.max_workers allows (a
 *			reload lowered it): leave.  Otherwise stay, a pass every
 *			analytics.rollup_interval when logs came and none when none did,
 *			and leave after WORKER_LINGER_MS without logs (at once after a
 *			visit the launcher made only because one was due).
 *	alerts	on the coordinator of a Citus cluster, after the pass, send the
 *			budget events the nodes recorded (alerts.c) in a transaction of
 *			its own.  There the worker stays (unless others wait or too many
 *			run) and, between passes, sends them every rollup_interval
 *			without folding, so an event is sent within one interval of its
 *			commit; a coordinator given up waits for the launcher's next
 *			visit (WORKER_SWEEP_MS at most).
 *
 * A failed pass is logged, stored in rollup_state.last_error (shown by
 * analytics.status) and retried after WORKER_ERROR_DELAY_MS times the
 * failures in a row (at most WORKER_ERROR_DELAY_MAX_MS), by a later worker.
 * A worker that ends in the middle of a pass (pg_terminate_backend, an
 * error) marks its database to be served again after
 * WORKER_RESTART_DELAY_MS (worker_at_exit).  SIGTERM ends it at once (die);
 * analytics.worker_enabled = off makes it leave at its next pass.
 *
 * Locking: see rollup.c; a worker holds no lock between passes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
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
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "alerts.h"
#include "analytics.h"
#include "pool.h"
#include "rollup.h"

PGDLLEXPORT void worker_main(Datum main_arg);

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

/* The database this worker serves, when it began, whether its pass yielded. */
static PoolDatabase *worker_db = NULL;
static TimestampTz worker_serve_start = 0;
static bool worker_yielded = false;

/*
 * This is the coordinator of a cluster, which sends the nodes' budget
 * events (alerts.c): the worker stays and passes every rollup_interval.
 */
static bool worker_forwards_alerts = false;

/*
 * worker_should_yield
 *		Whether this worker should give its database up now: databases with
 *		logs wait for a worker and this one has served its slice.
 */
static bool
worker_should_yield(void)
{
	return pg_atomic_read_u32(&pool_shared->waiting) > 0 &&
		TimestampDifferenceExceeds(worker_serve_start, GetCurrentTimestamp(),
								   WORKER_SLICE_MS);
}

/*
 * worker_finish_visit
 *		Record what the visit found: the state, when to visit next and, for
 *		a pass (passed), its end (ok: it succeeded; else the back-off).
 *		Takes the lock.
 */
static void
worker_finish_visit(PoolDatabaseState state, long next_visit_ms, bool passed, bool ok)
{
	PoolDatabase *db = worker_db;
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(pool_shared->lock, LW_EXCLUSIVE);
	db->state = state;
	db->next_visit = TimestampTzPlusMilliseconds(now, next_visit_ms);
	db->in_visit = false;
	if (passed)
	{
		if (ok)
		{
			db->failures = 0;
			db->last_served = now;
			db->retry_after = 0;
		}
		else
		{
			db->failures++;
			db->retry_after =
				TimestampTzPlusMilliseconds(now, Min((long) WORKER_ERROR_DELAY_MS * db->failures,
													 WORKER_ERROR_DELAY_MAX_MS));
			db->next_visit = db->retry_after;
		}
	}
	LWLockRelease(pool_shared->lock);
}

/*
 * worker_at_exit
 *		before_shmem_exit callback: the database has no worker any more; one
 *		that ended in the middle of a visit (an error outside the pass's
 *		PG_TRY, pg_terminate_backend) is marked to be served again after
 *		WORKER_RESTART_DELAY_MS, not at once.  Wakes the launcher.
 */
static void
worker_at_exit(int code, Datum arg)
{
	PoolDatabase *db = worker_db;
	bool		in_visit;

	if (db == NULL)
		return;
	if (LWLockHeldByMe(pool_shared->lock))
		LWLockRelease(pool_shared->lock);
	LWLockAcquire(pool_shared->lock, LW_EXCLUSIVE);
	in_visit = db->in_visit;
	db->in_visit = false;
	if (db->worker_pid == MyProcPid)
		db->worker_pid = 0;
	if (in_visit)
	{
		db->retry_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  WORKER_RESTART_DELAY_MS);
		db->next_visit = Max(db->next_visit, db->retry_after);
	}
	LWLockRelease(pool_shared->lock);
	if (in_visit)
		pool_mark_dirty(db, GetCurrentTimestamp());
	pool_wake_launcher();
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
 * worker_forward_alerts
 *		On the coordinator of a Citus cluster, send the budget events the
 *		nodes recorded since the last pass (alerts.c), in a transaction of
 *		its own; note whether this is such a node (worker_forwards_alerts).
 *		Called outside any transaction; errors propagate.
 */
static void
worker_forward_alerts(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!worker_lock_extension())
	{
		CommitTransactionCommand();
		return;
	}
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "analytics rollup: forwarding budget events");
	worker_forwards_alerts = alerts_forward() >= 0;
	PopActiveSnapshot();
	CommitTransactionCommand();
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
		worker_forward_alerts();
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
 * worker_try_forward_alerts
 *		Between passes on a cluster's coordinator: worker_forward_alerts()
 *		alone (no fold: the coordinator holds no logs), its error logged and
 *		rolled back (the events stay unsent for the next try).  Called
 *		outside any transaction.
 */
static void
worker_try_forward_alerts(MemoryContext pass_context)
{
	MemoryContext old = MemoryContextSwitchTo(pass_context);

	PG_TRY();
	{
		worker_forward_alerts();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(pass_context);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		RESUME_INTERRUPTS();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextReset(pass_context);
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
 * worker_visit
 *		Check the extension and, when it is current, run one pass.  Returns
 *		false when the worker must leave now (no extension, another
 *		version, a failed or yielded pass: each recorded); true after a
 *		pass that succeeded.
 */
static bool
worker_visit(MemoryContext pass_context)
{
	PoolDatabaseState before;
	char		installed[NAMEDATALEN];
	bool		ok;

	LWLockAcquire(pool_shared->lock, LW_EXCLUSIVE);
	before = worker_db->state;
	worker_db->in_visit = true;
	LWLockRelease(pool_shared->lock);

	/*
	 * Clear the mark before the check and the pass read anything (pool.c):
	 * an extension created, or logs committed, after this are seen by them,
	 * or mark the database again.
	 */
	pool_clear_dirty(worker_db);

	switch (worker_extension_state(installed, sizeof(installed)))
	{
		case WORKER_EXTENSION_ABSENT:
			worker_finish_visit(POOL_DB_ABSENT, WORKER_ABSENT_RECHECK_MS, false, false);
			return false;
		case WORKER_EXTENSION_OUTDATED:
			/* Old objects: fold nothing until they are updated. */
			if (before != POOL_DB_OUTDATED)
				ereport(LOG,
						(errmsg("analytics rollup worker waits for ALTER EXTENSION analytics UPDATE"),
						 errdetail("Database %u has analytics %s installed and the loaded library is version %s.",
								   MyDatabaseId, installed, ANALYTICS_VERSION),
						 errhint("Run ALTER EXTENSION analytics UPDATE in that database.")));
			worker_finish_visit(POOL_DB_OUTDATED, WORKER_OUTDATED_RECHECK_MS, false, false);
			return false;
		case WORKER_EXTENSION_CURRENT:
			break;
	}
	if (before == POOL_DB_OUTDATED)
		ereport(LOG,
				(errmsg("analytics rollup worker resumes: the extension is at version %s",
						ANALYTICS_VERSION)));

	worker_yielded = false;
	ok = worker_try_pass(pass_context);
	worker_finish_visit(POOL_DB_CURRENT, WORKER_SWEEP_MS, true, ok);
	if (!ok || worker_yielded)
	{
		/* Failed (retried after the back-off) or yielded: not done. */
		pool_requeue(worker_db);
		return false;
	}
	return true;
}

/*
 * worker_may_stay
 *		After a pass: whether the worker stays in its database.  It leaves
 *		when databases with logs wait (requeueing its own if logs came),
 *		when more workers run than allowed, and after WORKER_LINGER_MS
 *		without logs (at once when the visit had none).
 */
static bool
worker_may_stay(bool had_logs, TimestampTz last_logs)
{
	bool		dirty = pg_atomic_read_u32(&worker_db->dirty) != 0;

	if (pg_atomic_read_u32(&pool_shared->waiting) > 0)
	{
		if (dirty)
			pool_requeue(worker_db);
		return false;
	}
	if ((int) pg_atomic_read_u32(&pool_shared->running) > pool_effective_max_workers())
		return false;			/* its logs stay marked for the next worker */
	if (dirty || worker_forwards_alerts)
		return true;
	return had_logs &&
		!TimestampDifferenceExceeds(last_logs, GetCurrentTimestamp(), WORKER_LINGER_MS);
}

/*
 * worker_check_signals
 *		Between passes and while waiting: interrupts, a SIGHUP's new
 *		settings, and leave when the worker was turned off or the server is
 *		in recovery.
 */
static void
worker_check_signals(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	if (!analytics_worker_enabled || RecoveryInProgress())
		proc_exit(0);
}

/*
 * worker_main
 *		Entry point of a worker; main_arg is the oid of the database to
 *		serve.  Serves it until it should give it up (see the file header).
 */
void
worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext pass_context;
	TimestampTz last_logs;
	bool		had_logs;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/* The fold-in needs READ COMMITTED whatever the server default is. */
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("application_name", "analytics rollup",
					PGC_USERSET, PGC_S_SESSION);

	worker_db = pool_my_database();
	if (worker_db == NULL)
		proc_exit(0);			/* no longer served */
	LWLockAcquire(pool_shared->lock, LW_EXCLUSIVE);
	if (worker_db->worker_pid != 0)
	{
		/* A worker of a launcher before a restart serves it already. */
		worker_db->connected = true;
		LWLockRelease(pool_shared->lock);
		proc_exit(0);
	}
	worker_db->worker_pid = MyProcPid;
	worker_db->connected = true;
	LWLockRelease(pool_shared->lock);
	before_shmem_exit(worker_at_exit, (Datum) 0);

	pass_context = AllocSetContextCreate(TopMemoryContext, "analytics rollup pass",
										 ALLOCSET_DEFAULT_SIZES);
	worker_serve_start = last_logs = GetCurrentTimestamp();
	had_logs = pg_atomic_read_u32(&worker_db->dirty) != 0;

	for (;;)
	{
		TimestampTz pass_start = GetCurrentTimestamp();
		MemoryContext old;
		bool		stay;

		worker_check_signals();
		MemoryContextReset(pass_context);
		old = MemoryContextSwitchTo(pass_context);
		stay = worker_visit(pass_context);
		MemoryContextSwitchTo(old);
		if (!stay)
			proc_exit(0);

		/* Wait for logs, a pass every rollup_interval, while it may stay. */
		for (;;)
		{
			if (pg_atomic_read_u32(&worker_db->dirty) != 0)
			{
				had_logs = true;
				last_logs = GetCurrentTimestamp();
			}
			if (!worker_may_stay(had_logs, last_logs))
				proc_exit(0);
			worker_sleep(pass_start);
			pass_start = GetCurrentTimestamp();
			worker_check_signals();
			if (pg_atomic_read_u32(&worker_db->dirty) != 0)
				break;
			if (worker_forwards_alerts)
				worker_try_forward_alerts(pass_context);
		}
	}
}
