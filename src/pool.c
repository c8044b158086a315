/*-------------------------------------------------------------------------
 *
 * pool.c
 *	  The shared table of served databases (shared memory, created when the
 *	  library is preloaded): for each, whether logs were committed there
 *	  since the last pass began ("dirty"), and what the workers found.  The
 *	  launcher (launcher.c) hands dirty databases to the workers (worker.c);
 *	  writers only mark them.
 *
 * Marking.  The insert trigger of logs notes that its transaction wrote a
 * log (pool_note_log_written); the commit (or PREPARE) then sets the
 * database's flag, lock-free, and when it is the first mark since the last
 * pass began and no worker is there, sets the launcher's latch.  A pass
 * clears the flag before it reads the last log id (pool_clear_dirty): the
 * writer sets the flag after its commit is visible and reads it after a
 * memory barrier, the worker clears it and then reads the logs, so either
 * the writer sees the cleared flag and sets it again, or the pass sees the
 * commit.  A committed log is never left without its database due.
 *
 * Locking: the table's own LWLock, never held across anything that can fail
 * or sleep.  A writer takes it (shared) only when its cached slot is stale:
 * the generation counter tells it when a slot changed database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "pool.h"

PG_FUNCTION_INFO_V1(worker_database_status);

PoolShared *pool_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This backend's slot (a hint, checked against MyDatabaseId), or -1. */
static int	pool_my_slot = -1;
/* The generation the cached answer (a slot, or none) was read at. */
static uint32 pool_my_generation = 0;
static bool pool_my_known = false;
/* Whether the current transaction wrote logs. */
static bool pool_wrote_logs = false;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/*
 * pool_shmem_request
 *		Reserve the shared table and its lock (postmaster, at startup).
 */
static void
pool_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PoolShared)));
	RequestNamedLWLockTranche("analytics workers", 1);
}

/*
 * pool_shmem_startup
 *		Create or attach the shared table.
 */
static void
pool_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pool_shared = ShmemInitStruct("analytics rollup workers", sizeof(PoolShared), &found);
	if (!found)
	{
		int			i;

		memset(pool_shared, 0, sizeof(PoolShared));
		pool_shared->lock = &(GetNamedLWLockTranche("analytics workers"))->lock;
		pg_atomic_init_u32(&pool_shared->waiting, 0);
		pg_atomic_init_u32(&pool_shared->running, 0);
		pg_atomic_init_u32(&pool_shared->generation, 1);
		for (i = 0; i < POOL_MAX_DATABASES; i++)
		{
			pg_atomic_init_u32(&pool_shared->dbs[i].dirty, 0);
			pg_atomic_init_u64(&pool_shared->dbs[i].dirty_since, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * pool_register_shmem
 *		Install the shared memory hooks; from _PG_init, only while
 *		shared_preload_libraries is being processed.
 */
void
pool_register_shmem(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pool_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pool_shmem_startup;
}

/*
 * pool_my_database
 *		This database's slot, or NULL: the library is not preloaded, or the
 *		database is not served (not in analytics.databases, or too new: the
 *		launcher gives it a slot, due at once, within a second).  Takes the
 *		lock (shared) only when the cached answer may be stale.
 */
PoolDatabase *
pool_my_database(void)
{
	uint32		generation;

	if (pool_shared == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	if (pool_my_slot >= 0 && pool_shared->dbs[pool_my_slot].dboid == MyDatabaseId)
		return &pool_shared->dbs[pool_my_slot];
	generation = pg_atomic_read_u32(&pool_shared->generation);
	if (pool_my_known && pool_my_slot < 0 && generation == pool_my_generation)
		return NULL;

	LWLockAcquire(pool_shared->lock, LW_SHARED);
	pool_my_slot = -1;
	for (int i = 0; i < POOL_MAX_DATABASES; i++)
	{
		if (pool_shared->dbs[i].dboid == MyDatabaseId)
		{
			pool_my_slot = i;
			break;
		}
	}
	pool_my_generation = pg_atomic_read_u32(&pool_shared->generation);
	pool_my_known = true;
	LWLockRelease(pool_shared->lock);
	return pool_my_slot >= 0 ? &pool_shared->dbs[pool_my_slot] : NULL;
}

/*
 * pool_wake_launcher
 *		Set the launcher's latch, if a launcher runs.
 */
void
pool_wake_launcher(void)
{
	Latch	   *latch = pool_shared ? pool_shared->launcher_latch : NULL;

	if (latch != NULL)
		SetLatch(latch);
}

/*
 * pool_mark_dirty
 *		Mark a database as having logs to fold (as of since, unless it is
 *		already marked), and wake the launcher when no worker is there.
 *		Lock-free.
 */
void
pool_mark_dirty(PoolDatabase *db, TimestampTz since)
{
	pg_memory_barrier();
	if (pg_atomic_read_u32(&db->dirty) != 0)
		return;
	if (pg_atomic_exchange_u32(&db->dirty, 1) != 0)
		return;
	/* A reader that sees the flag before the time takes now instead. */
	pg_atomic_write_u64(&db->dirty_since, (uint64) since);
	/* Hints: a worker that is there sees the flag at its next pass. */
	if (!db->assigned && db->worker_pid == 0)
		pool_wake_launcher();
}

/*
 * pool_clear_dirty
 *		Clear a database's mark before a pass reads the logs (see the file
 *		header for why no commit is lost).  Lock-free.
 */
void
pool_clear_dirty(PoolDatabase *db)
{
	/* The time first: a mark set meanwhile then keeps its own time. */
	pg_atomic_write_u64(&db->dirty_since, 0);
	pg_write_barrier();
	pg_atomic_write_u32(&db->dirty, 0);
	pg_memory_barrier();
}

/*
 * pool_requeue
 *		A worker gives a database up with logs left (a yield, a failed pass,
 *		others waiting): mark it dirty, ranked behind the databases already
 *		waiting, and wake the launcher.  Takes the lock.
 */
void
pool_requeue(PoolDatabase *db)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(pool_shared->lock, LW_EXCLUSIVE);
	db->requeued_at = now;
	LWLockRelease(pool_shared->lock);
	pool_mark_dirty(db, now);
	pool_wake_launcher();
}

/*
 * pool_effective_max_workers
 *		analytics.max_workers, but never more than the server's worker
 *		processes leave beside the launcher.
 */
int
pool_effective_max_workers(void)
{
	return Max(1, Min(analytics_max_workers, max_worker_processes - 1));
}

/*
 * pool_note_log_written
 *		Called by the insert trigger of logs once a log passed it: the
 *		current transaction's commit makes the database due for a pass.
 */
void
pool_note_log_written(void)
{
	pool_wrote_logs = true;
}

/*
 * pool_xact_callback
 *		At the commit (or prepare) of a transaction that wrote logs, mark
 *		this database dirty.  Runs after the commit is visible to others, so
 *		a pass that begins after the mark sees the logs.
 */
static void
pool_xact_callback(XactEvent event, void *arg)
{
	PoolDatabase *db;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			if (pool_wrote_logs && (db = pool_my_database()) != NULL)
				pool_mark_dirty(db, GetCurrentTimestamp());
			pool_wrote_logs = false;
			break;
		case XACT_EVENT_ABORT:
			pool_wrote_logs = false;
			break;
		default:
			break;
	}
}

/*
 * pool_process_utility
 *		ProcessUtility hook: COMMIT PREPARED makes the logs of a prepared
 *		transaction visible in a transaction of its own, which wrote no log:
 *		mark the database at its commit all the same (the PREPARE marked it
 *		too early for a pass to see them).  A mark for a transaction without
 *		logs costs one empty pass.
 */
static void
pool_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		pool_wrote_logs = true;
	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context, params,
								  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/*
 * pool_init
 *		Register the transaction callback that marks databases dirty, and
 *		the hook that sees COMMIT PREPARED; called by _PG_init in every
 *		backend.
 */
void
pool_init(void)
{
	RegisterXactCallback(pool_xact_callback, NULL);
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = pool_process_utility;
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
	PoolDatabase *db;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	db = pool_my_database();
	if (db != NULL)
	{
		TimestampTz last_served;
		TimestampTz since = 0;

		LWLockAcquire(pool_shared->lock, LW_SHARED);
		last_served = db->last_served;
		LWLockRelease(pool_shared->lock);
		pg_memory_barrier();
		if (pg_atomic_read_u32(&db->dirty) != 0)
		{
			since = (TimestampTz) pg_atomic_read_u64(&db->dirty_since);
			if (since == 0)
				since = GetCurrentTimestamp();
		}
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
