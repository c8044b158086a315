/*-------------------------------------------------------------------------
 *
 * pending.c
 *	  What tells the views which logs are not folded in yet, on the node
 *	  that reads them.
 *
 * A log is pending when its id lies in this node's range of ids above the
 * node's watermark, or inside one of the node's gaps (src/README.md, "How a
 * log is counted exactly once").  The views say so with
 *
 *	(l.id > analytics._fold_watermark() AND l.id <= analytics._fold_id_last())
 *	OR l.id = ANY (analytics._fold_gap_ids())
 *
 * On a single node the watermark and gaps are those of rollup_state and
 * rollup_gaps and every id is in range.  On a Citus cluster Citus runs these
 * functions on the node of each shard task (a SELECT has only its parameters
 * evaluated on the coordinator), so each reads the state of the node that
 * folds the shard it scans; logs drawn on another node (a shard moved in)
 * are outside the range: the node's worker counts them in when it takes the
 * shard over.  STABLE: each reads the caller's snapshot, the one the view
 * reads the rollups with, and is evaluated once per scan, so the
 * conditions reach the index on id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "shards.h"

PG_FUNCTION_INFO_V1(pending_watermark);
PG_FUNCTION_INFO_V1(pending_id_last);
PG_FUNCTION_INFO_V1(pending_gap_ids);

/*
 * pending_watermark
 *		SQL: analytics._fold_watermark() returns bigint.  This node's
 *		rollup watermark.
 */
Datum
pending_watermark(PG_FUNCTION_ARGS)
{
	bool		isnull = true;
	Datum		d = (Datum) 0;

	SPI_connect();
	if (SPI_execute("SELECT watermark FROM analytics.rollup_state", true, 2) != SPI_OK_SELECT)
		elog(ERROR, "could not read analytics.rollup_state");
	if (SPI_processed == 1)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("analytics.rollup_state must hold exactly one row"),
				 errhint("Reinstall the extension.")));
	/* A Citus node's ids start at its group id (src/shards.c). */
	PG_RETURN_INT64(Max(DatumGetInt64(d),
						shards_logs_distributed() ? shards_node_prefix() : 0));
}

/*
 * pending_id_last
 *		SQL: analytics._fold_id_last() returns bigint.  The greatest id this
 *		node draws (src/shards.c).
 */
Datum
pending_id_last(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(shards_id_last());
}

/*
 * pending_gap_ids
 *		SQL: analytics._fold_gap_ids() returns bigint[].  The ids of the
 *		logs of this node inside one of its gaps that the caller's snapshot
 *		sees (committed since the fold recorded the gap), or null.  One
 *		index range scan per gap and logs relation (LATERAL keeps the gaps
 *		outside); jit off, as the gaps table is rarely analyzed.
 */
Datum
pending_gap_ids(PG_FUNCTION_ARGS)
{
	List	   *logs = shards_local_logs();
	StringInfoData sql;
	bool		isnull = true;
	Datum		d = (Datum) 0;
	int			guc_level;

	SPI_connect();
	if (SPI_execute("SELECT FROM analytics.rollup_gaps LIMIT 1", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read analytics.rollup_gaps");
	if (SPI_processed == 0 || logs == NIL)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT CASE WHEN pg_catalog.count(x.id) OPERATOR(pg_catalog.>) 0 "
					 "THEN pg_catalog.array_agg(x.id) END "
					 "FROM analytics.rollup_gaps g CROSS JOIN LATERAL ("
					 "SELECT l.id FROM %s "
					 "WHERE l.id OPERATOR(pg_catalog.>=) g.lo AND l.id OPERATOR(pg_catalog.<=) g.hi "
					 "OFFSET 0) x", shards_logs_sql(logs));
	guc_level = NewGUCNestLevel();
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_execute(sql.data, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the gaps of analytics.logs");
	AtEOXact_GUC(true, guc_level);
	if (SPI_processed == 1)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		d = SPI_datumTransfer(d, false, -1);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}
