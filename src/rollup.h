/*-------------------------------------------------------------------------
 *
 * rollup.h
 *	  The fold-in of analytics.logs into analytics.usage_daily.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_ROLLUP_H
#define ANALYTICS_ROLLUP_H

#include "nodes/pg_list.h"

/* Ids folded by one statement: bounds the memory and size of each step. */
#define ROLLUP_CHUNK_IDS	200000

/*
 * One fold-in pass, which may span several transactions: what
 * rollup_settle() read at its start, and its progress.
 */
typedef struct RollupPass
{
	int64		target;			/* the last id handed out when it began */
	int			nlockers;		/* the transactions that could still commit */
	int64	   *lockers;		/* an id up to target, as encoded vxids */
	int64		folded;			/* logs with a customer folded so far */
	bool		first;			/* no chunk ran yet */
	List	   *logs;			/* the logs relations it folds (the node's
								 * when it began) */
} RollupPass;

extern void rollup_require_read_committed(const char *what);
extern void rollup_settle(RollupPass *pass, MemoryContext cxt);
extern bool rollup_fold_chunk(RollupPass *pass);
extern int64 rollup_fold_all(void);

#endif							/* ANALYTICS_ROLLUP_H */
