/*-------------------------------------------------------------------------
 *
 * rollup.h
 *	  The fold-in of analytics.logs into analytics.usage_daily.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_ROLLUP_H
#define ANALYTICS_ROLLUP_H

/* Ids folded by one statement: bounds the memory and size of each step. */
#define ROLLUP_CHUNK_IDS	200000

extern void rollup_require_read_committed(const char *what);
extern int64 rollup_settle(void);
extern bool rollup_fold_chunk(int64 target, int64 *pass_folded, bool first);
extern int64 rollup_fold_all(void);

#endif							/* ANALYTICS_ROLLUP_H */
