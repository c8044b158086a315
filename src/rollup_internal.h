/*-------------------------------------------------------------------------
 *
 * rollup_internal.h
 *	  What the fold (rollup.c) shares with the functions that must
 *	  serialize with it (rollup_admin.c): the state row, a fold statement's
 *	  parameters, and running SQL against the tables or a node's shards.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_ROLLUP_INTERNAL_H
#define ANALYTICS_ROLLUP_INTERNAL_H

#include "datatype/timestamp.h"
#include "utils/snapshot.h"

/*
 * Whether the id expression ID lies inside a recorded gap: the gaps are
 * disjoint, so only the one with the greatest lo <= ID can hold it (one
 * backward probe of the primary key per id).
 */
#define ROLLUP_IN_GAP(ID) \
"EXISTS (SELECT 1 FROM (SELECT g.hi FROM analytics.rollup_gaps g" \
"                        WHERE g.lo OPERATOR(pg_catalog.<=) " ID \
"                        ORDER BY g.lo DESC LIMIT 1) g" \
"         WHERE g.hi OPERATOR(pg_catalog.>=) " ID ")"

/* The rollup state, read under the row lock. */
typedef struct RollupState
{
	int64		watermark;
	char	   *timezone;
	bool		retained_from_null;
	TimestampTz retained_from;
} RollupState;

/* Which logs of its id range a fold statement reads ($7 of fold_sql). */
typedef enum RollupSource
{
	ROLLUP_SOURCE_ALL = 0,		/* every log of the range */
	ROLLUP_SOURCE_GAPS = 1,		/* those inside a recorded gap */
	ROLLUP_SOURCE_OUTSIDE = 2	/* those outside every recorded gap */
} RollupSource;

/* What a fold statement folds, but for its id range. */
typedef struct RollupFold
{
	const char *tz;				/* the calendar days of this time zone */
	TimestampTz since;			/* logs created at or after this */
	bool		summaries;		/* the coarser rollups too */
	RollupSource source;
	Snapshot	snapshot;		/* every statement reads it (or each its own:
								 * InvalidSnapshot) */
	Oid			logs;			/* analytics.logs or one of its shards */
} RollupFold;

extern void spi_run_in(Snapshot snapshot, const char *sql, int nargs, Oid *argtypes,
					   Datum *values, const char *nulls, int expected);
extern void spi_run(const char *sql, int nargs, Oid *argtypes, Datum *values,
					const char *nulls, int expected);
extern Oid	rollup_logs_relid(void);
extern const char *rollup_sql_for(const char *sql, Oid logs);
extern const char *rollup_replace(const char *sql, const char *from, const char *to);
extern void rollup_lock_state(RollupState *state);
extern int64 rollup_fold_guarded(int64 lo, int64 hi, const RollupFold *fold, int64 *folded);
extern void rollup_fold_through(int64 lo, int64 hi, const RollupFold *fold, int64 *folded);
extern void rollup_refold(Oid logs, int64 watermark, const char *tz, TimestampTz since,
						  int64 *folded);
extern void rollup_rebuild_summaries(Oid logs);

#endif							/* ANALYTICS_ROLLUP_INTERNAL_H */
