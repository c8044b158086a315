/*-------------------------------------------------------------------------
 *
 * pool.h
 *	  The shared table of the databases the rollup workers serve: which ones
 *	  have logs to fold, and what a worker last found there.  Written by
 *	  writers (at commit), the launcher and the workers; see pool.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_POOL_H
#define ANALYTICS_POOL_H

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

/* Databases the shared table can serve at once. */
#define POOL_MAX_DATABASES			4096

/* What a worker last found in a database. */
typedef enum PoolDatabaseState
{
	POOL_DB_UNKNOWN,			/* not visited since the server started */
	POOL_DB_ABSENT,				/* the extension is not installed */
	POOL_DB_OUTDATED,			/* installed at another version */
	POOL_DB_CURRENT				/* installed at the library's version */
} PoolDatabaseState;

/*
 * One served database.  dirty and dirty_since are written by writers without
 * the lock; every other field is written under the table's LWLock
 * (exclusive) and read under it, except where a comment says it is a hint.
 */
typedef struct PoolDatabase
{
	Oid			dboid;			/* InvalidOid: a free slot */
	pg_atomic_uint32 dirty;		/* logs committed since the last pass began */
	pg_atomic_uint64 dirty_since;	/* when dirty was set (0: unknown) */
	TimestampTz requeued_at;	/* a worker gave it up with logs left then */
	TimestampTz next_visit;		/* due then even when clean (0: never) */
	TimestampTz retry_after;	/* not before then, even when dirty */
	TimestampTz last_served;	/* when a worker last finished a pass */
	int			failures;		/* failed passes in a row */
	PoolDatabaseState state;
	bool		assigned;		/* the launcher started a worker for it */
	int			worker_pid;		/* its worker, while connected (0: none) */
	bool		connected;		/* the worker last started got connected */
	bool		in_visit;		/* its worker is in the middle of a visit */
} PoolDatabase;

typedef struct PoolShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch; /* NULL while no launcher runs */
	pg_atomic_uint32 waiting;	/* databases with logs the pool has no room for */
	pg_atomic_uint32 running;	/* workers running, as the launcher last counted */
	pg_atomic_uint32 generation;	/* bumped when a slot changes database */
	PoolDatabase dbs[POOL_MAX_DATABASES];
} PoolShared;

/* NULL unless the library was preloaded. */
extern PoolShared *pool_shared;

extern void pool_init(void);
extern void pool_register_shmem(void);
extern void pool_note_log_written(void);
extern PoolDatabase *pool_my_database(void);
extern void pool_mark_dirty(PoolDatabase *db, TimestampTz since);
extern void pool_clear_dirty(PoolDatabase *db);
extern void pool_requeue(PoolDatabase *db);
extern void pool_wake_launcher(void);
extern int	pool_effective_max_workers(void);

#endif							/* ANALYTICS_POOL_H */
