/*-------------------------------------------------------------------------
 *
 * rollup_admin.c
 *	  The administrative functions that must serialize with the fold:
 *	  purge_logs(), delete_customer() and set_timezone().
 *
 * Each takes the table locks (or the customer's change lock) first, then the
 * rollup_state row lock that the fold holds while it moves the watermark
 * (src/README.md, lock order).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "pgtime.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "changes.h"
#include "customers.h"
#include "privs.h"
#include "rollup.h"
#include "rollup_internal.h"
#include "shards.h"

PG_FUNCTION_INFO_V1(rollup_purge_logs);
PG_FUNCTION_INFO_V1(rollup_delete_customer);
PG_FUNCTION_INFO_V1(rollup_set_timezone);
PG_FUNCTION_INFO_V1(rollup_purge_logs_node);
PG_FUNCTION_INFO_V1(rollup_delete_customer_node);
PG_FUNCTION_INFO_V1(rollup_set_timezone_node);

/*
 * On a Citus cluster each node folds its own shards with its own
 * rollup_state and rollup_gaps, so each of these functions does its work
 * node by node: called through the coordinator, it runs its node variant
 * (analytics._purge_logs_node() and so on) on every node with
 * run_command_on_all_nodes(), each node in a transaction of its own, and
 * reports the first failure.  A node variant works on the node's own
 * shards only.  On a single node the function does the work itself.
 */
static bool rollup_node_call = false;

/*
 * rollup_on_every_node
 *		Run the SQL call on every node of the cluster; the results, one text
 *		per node.  Raises the first node's error.
 */
static List *
rollup_on_every_node(const char *what, const char *call, bool tolerate_failures)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	List	   *results = NIL;
	MemoryContext outer = CurrentMemoryContext;

	/*
	 * The nodes run it in transactions of their own, over connections of
	 * their own: inside the caller's transaction block they could wait for
	 * its locks (a deadlock nobody detects) and would commit whatever it
	 * does afterwards.
	 */
	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot run inside a transaction block on a Citus cluster", what),
				 errdetail("Each node runs its part in a transaction of its own."),
				 errhint("Call it on its own, outside BEGIN ... COMMIT.")));
	values[0] = CStringGetTextDatum(call);
	SPI_connect();
	spi_run("SELECT n.nodeid, n.success, n.result "
			"FROM pg_catalog.run_command_on_all_nodes($1) n ORDER BY n.nodeid",
			1, argtypes, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *result = SPI_getvalue(tuple, tupdesc, 3);
		bool		success = DatumGetBool(SPI_getbinval(tuple, tupdesc, 2, &isnull));
		MemoryContext old;

		if (!success && !tolerate_failures)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("%s failed on node %s", what, SPI_getvalue(tuple, tupdesc, 1)),
					 errdetail("%s", result ? result : "no message"),
					 errhint("The nodes run it at once, each committing on its own: those that succeeded did their part. Run it again once the node is back (each part can run twice).")));
		old = MemoryContextSwitchTo(outer);
		results = lappend(results, success ? pstrdup(result ? result : "") : NULL);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return results;
}

/*
 * rollup_share_settings
 *		On the coordinator of a cluster, once every node ran set_timezone()
 *		or purge_logs(): the coordinator's time zone and retention boundary
 *		become the cluster's (rollup_settings, which nodes added later adopt).
 */
static Datum
rollup_share_settings_as_owner(PG_FUNCTION_ARGS)
{
	RollupState state;
	Oid			argtypes[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		values[2];
	char		nulls[2];
	int			guc_level;

	/* Read first: Citus updates a reference table from no local table. */
	SPI_connect();
	rollup_lock_state(&state);
	values[0] = CStringGetTextDatum(state.timezone);
	values[1] = TimestampTzGetDatum(state.retained_from);
	nulls[0] = ' ';
	nulls[1] = state.retained_from_null ? 'n' : ' ';
	/* Citus sends the parameters as text: in a style every node reads. */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("datestyle", "ISO, YMD", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	spi_run("UPDATE analytics.rollup_settings SET timezone = $1, retained_from = $2",
			2, argtypes, values, nulls, SPI_OK_UPDATE);
	AtEOXact_GUC(true, guc_level);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * rollup_dispatched
 *		Whether this call must run node by node: the logs are distributed and
 *		this is not already a node variant's call.
 */
static bool
rollup_dispatched(void)
{
	return !rollup_node_call && shards_logs_distributed();
}

/*
 * rollup_customer_logs
 *		The logs relation of customer ident on this node: analytics.logs, or
 *		on a Citus node the logs shard the customer hashes to when this node
 *		holds it (InvalidOid when it does not).
 */
static Oid
rollup_customer_logs(Datum ident)
{
	Oid			argtypes[1] = {TEXTOID};
	bool		isnull;
	int64		shardid;
	Oid			relid;

	if (!shards_logs_distributed())
		return rollup_logs_relid();
	SPI_connect();
	spi_run("SELECT pg_catalog.get_shard_id_for_distribution_column('analytics.logs', $1)",
			1, argtypes, &ident, NULL, SPI_OK_SELECT);
	shardid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	relid = shards_logs_shard(shardid);
	if (!OidIsValid(relid) || !list_member_oid(shards_local_logs(), relid))
		return InvalidOid;
	return relid;
}

/*
 * rollup_purge_logs
 *		SQL: analytics.purge_logs(older_than timestamptz) returns bigint.
 *
 * Folds pending logs in, then deletes the folded logs created before the
 * start of older_than's calendar day in the rollup time zone, so no rollup
 * day is left half backed by raw logs.  Returns the number of logs deleted.
 * Holds the rollup_state row lock (from the fold) until the end of the
 * transaction; READ COMMITTED only.
 */
static Datum
rollup_purge_logs_as_owner(PG_FUNCTION_ARGS)
{
	TimestampTz older_than;
	RollupState state;
	TimestampTz cutoff;
	uint64		deleted = 0;
	bool		isnull;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be null"),
				 errhint("Pass the time before which raw logs are deleted, such as now() - interval '90 days'.")));
	older_than = PG_GETARG_TIMESTAMPTZ(0);
	if (TIMESTAMP_NOT_FINITE(older_than))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must be a finite timestamp"),
				 errhint("Pass the time before which raw logs are deleted, such as now() - interval '90 days'.")));
	rollup_require_read_committed("analytics.purge_logs()");

	/*
	 * The lock its DELETE needs, before the fold takes the row lock: see
	 * src/README.md.
	 */
	foreach(lc, shards_local_logs())
		LockRelationOid(lfirst_oid(lc), RowExclusiveLock);
	SPI_connect();
	(void) rollup_fold_all();
	rollup_lock_state(&state);

	{
		Oid			argtypes[2] = {TIMESTAMPTZOID, TEXTOID};
		Datum		values[2];

		values[0] = TimestampTzGetDatum(older_than);
		values[1] = CStringGetTextDatum(state.timezone);
		spi_run("SELECT pg_catalog.timezone($2, pg_catalog.date_trunc('day', pg_catalog.timezone($2, $1)))",
				2, argtypes, values, NULL, SPI_OK_SELECT);
		cutoff = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
	}

	{
		Oid			argtypes[2] = {TIMESTAMPTZOID, INT8OID};
		Datum		values[2];

		values[0] = TimestampTzGetDatum(cutoff);
		values[1] = Int64GetDatum(state.watermark);
		analytics_delete_allowed = true;
		PG_TRY();
		{
			foreach(lc, shards_local_logs())
			{
				spi_run(rollup_sql_for("DELETE FROM analytics.logs l "
									   "WHERE l.created_at OPERATOR(pg_catalog.<) $1 "
									   "AND l.id OPERATOR(pg_catalog.<=) $2 "
									   "AND NOT " ROLLUP_IN_GAP("l.id"), lfirst_oid(lc)),
						2, argtypes, values, NULL, SPI_OK_DELETE);
				deleted += SPI_processed;
				/* Admissions are kept until their logs' retention ends. */
				spi_run(rollup_sql_for("DELETE FROM analytics.admissions "
									   "WHERE created_at OPERATOR(pg_catalog.<) $1",
									   lfirst_oid(lc)),
						2, argtypes, values, NULL, SPI_OK_DELETE);
			}
		}
		PG_FINALLY();
		{
			analytics_delete_allowed = false;
		}
		PG_END_TRY();
	}

	/* On a cluster every node moves it, so that they stay equal. */
	if (deleted > 0 || rollup_node_call)
	{
		Oid			argtypes[1] = {TIMESTAMPTZOID};
		Datum		values[1];

		values[0] = TimestampTzGetDatum(cutoff);
		spi_run("UPDATE analytics.rollup_state "
				"SET retained_from = GREATEST(retained_from, $1)",
				1, argtypes, values, NULL, SPI_OK_UPDATE);
	}
	SPI_finish();
	PG_RETURN_INT64((int64) deleted);
}

/*
 * rollup_delete_customer
 *		SQL: analytics.delete_customer(customer_identifier text) returns void.
 *
 * Removes the customer, all its logs (folded or not) and, through the
 * foreign keys, its rollups and budget counters.  An unknown customer is an
 * error (42704).  READ COMMITTED only.
 *
 * Locks in this order (src/README.md): ROW EXCLUSIVE on analytics.logs,
 * which its DELETE needs, as purge_logs() does (taken later, after the row
 * lock, it deadlocked with set_timezone(), which holds SHARE ROW EXCLUSIVE
 * on logs and waits for the row); then changes_begin() (changes.c) takes
 * the customer's change lock (or, in the global fallback, SHARE ROW
 * EXCLUSIVE on logs), which waits for the transactions writing logs of the
 * customer, keeps new ones out until commit and makes every session forget
 * the customer; then the rollup_state row lock, so no fold runs between the
 * deletion of the logs and of the rollup rows.
 */
static Datum
rollup_delete_customer_as_owner(PG_FUNCTION_ARGS)
{
	RollupState state;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *ident;
	Oid			logs;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("customer_identifier must not be null")));
	values[0] = PG_GETARG_DATUM(0);
	ident = text_to_cstring(PG_GETARG_TEXT_PP(0));
	rollup_require_read_committed("analytics.delete_customer()");

	/*
	 * The table lock its DELETE needs, then the customer's writers done and
	 * new ones held off (changes.c), before the row lock: see src/README.md.
	 */
	logs = rollup_customer_logs(values[0]);
	if (!OidIsValid(logs))
		PG_RETURN_BOOL(false);
	LockRelationOid(logs, RowExclusiveLock);
	shards_set_current_oid(logs);
	changes_begin(ident);
	shards_clear_current();
	SPI_connect();
	rollup_lock_state(&state);

	spi_run(rollup_sql_for("SELECT 1 FROM analytics.customers "
						   "WHERE customer_identifier OPERATOR(pg_catalog.=) $1", logs),
			1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0 && rollup_node_call)
	{
		/* The caller on the coordinator reports an unknown customer. */
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("customer \"%s\" does not exist", ident),
				 errhint("See analytics.customers for the known customers.")));

	analytics_delete_allowed = true;
	PG_TRY();
	{
		spi_run(rollup_sql_for("DELETE FROM analytics.logs "
							   "WHERE customer_identifier OPERATOR(pg_catalog.=) $1", logs),
				1, argtypes, values, NULL, SPI_OK_DELETE);
		spi_run(rollup_sql_for("DELETE FROM analytics.customers "
							   "WHERE customer_identifier OPERATOR(pg_catalog.=) $1", logs),
				1, argtypes, values, NULL, SPI_OK_DELETE);
	}
	PG_FINALLY();
	{
		analytics_delete_allowed = false;
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/*
 * rollup_set_timezone
 *		SQL: analytics.set_timezone(timezone text) returns void.
 *
 * Validates the zone name, stores it (canonically spelled) in
 * rollup_state.timezone and rebuilds usage_daily from the retained logs,
 * then the coarser rollups from usage_daily.
 * Rollup days before rollup_state.retained_from (whose raw logs were
 * purged) are kept as they are; the logs from retained_from on are folded
 * again by days of the new zone, and retained_from moves to the start of
 * the first new-zone day that holds only such logs.  Locks the rollup_state
 * row; READ COMMITTED only.
 */
static Datum
rollup_set_timezone_as_owner(PG_FUNCTION_ARGS)
{
	char	   *name;
	pg_tz	   *tz;
	const char *canonical;
	RollupState state;
	TimestampTz since = DT_NOBEGIN;
	bool		new_from_null = true;
	TimestampTz new_from = 0;
	int64		refolded = 0;
	bool		isnull;
	List	   *logs;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone must not be null"),
				 errhint("Use a name from pg_timezone_names, such as Europe/Paris.")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	tz = pg_tzset(name);
	if (tz == NULL || !pg_tz_acceptable(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" is not recognized", name),
				 errhint("Use a name from pg_timezone_names, such as Europe/Paris.")));
	canonical = pg_get_timezone_name(tz);
	rollup_require_read_committed("analytics.set_timezone()");

	/*
	 * Budget periods follow the zone too: wait out the log writers (the
	 * table lock before the row lock, see src/README.md), make every
	 * session re-read the zone, and drop the period counters, which are
	 * rebuilt from the logs by the new zone's periods.
	 */
	customers_changing();
	SPI_connect();
	rollup_lock_state(&state);
	logs = list_copy(shards_local_logs());
	foreach(lc, logs)
		spi_run(rollup_sql_for("DELETE FROM analytics.budget_counters "
							   "WHERE period_start OPERATOR(pg_catalog.<>) '-infinity'",
							   lfirst_oid(lc)),
				0, NULL, NULL, NULL, SPI_OK_DELETE);

	if (state.retained_from_null)
	{
		foreach(lc, logs)
			spi_run(rollup_sql_for("DELETE FROM analytics.usage_daily", lfirst_oid(lc)),
					0, NULL, NULL, NULL, SPI_OK_DELETE);
	}
	else
	{
		Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
		Datum		values[3];
		Datum		first_day;
		Oid			delargtypes[1] = {DATEOID};

		/*
		 * Keep the rows of days before the old zone's day of retained_from;
		 * the new boundary is the start (in the new zone) of the later of
		 * that day and the first new-zone day starting at or after
		 * retained_from.
		 */
		values[0] = CStringGetTextDatum(state.timezone);
		values[1] = CStringGetTextDatum(canonical);
		values[2] = TimestampTzGetDatum(state.retained_from);
		spi_run("SELECT b.d_old, pg_catalog.timezone($2, GREATEST(b.d_old, "
				"  CASE WHEN b.local_new OPERATOR(pg_catalog.=) pg_catalog.date_trunc('day', b.local_new) "
				"       THEN b.local_new::pg_catalog.date "
				"       ELSE b.local_new::pg_catalog.date OPERATOR(pg_catalog.+) 1 END)::pg_catalog.timestamp) "
				"FROM (SELECT pg_catalog.timezone($1, $3)::pg_catalog.date AS d_old, "
				"             pg_catalog.timezone($2, $3) AS local_new) b",
				3, argtypes, values, NULL, SPI_OK_SELECT);
		first_day = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		new_from = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 2, &isnull));
		new_from_null = false;
		since = state.retained_from;
		foreach(lc, logs)
			spi_run(rollup_sql_for("DELETE FROM analytics.usage_daily WHERE day OPERATOR(pg_catalog.>=) $1",
								   lfirst_oid(lc)),
					1, delargtypes, &first_day, NULL, SPI_OK_DELETE);
	}

	/*
	 * Fold the retained logs again, chunk by chunk, by the new zone's days:
	 * those below the watermark but inside a recorded gap are not counted
	 * yet (the next fold counts them, by the new zone's days).
	 */
	foreach(lc, logs)
		rollup_refold(lfirst_oid(lc), state.watermark, canonical, since, &refolded);

	/*
	 * Per-customer totals do not depend on the zone, but active days and the
	 * per-day rollups do: rebuild the coarser rollups from usage_daily.
	 */
	foreach(lc, logs)
		rollup_rebuild_summaries(lfirst_oid(lc));

	{
		Oid			argtypes[2] = {TEXTOID, TIMESTAMPTZOID};
		Datum		values[2];
		char		nulls[2] = {' ', new_from_null ? 'n' : ' '};

		values[0] = CStringGetTextDatum(canonical);
		values[1] = TimestampTzGetDatum(new_from);
		spi_run("UPDATE analytics.rollup_state SET timezone = $1, retained_from = $2",
				2, argtypes, values, nulls, SPI_OK_UPDATE);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * The SQL entry points of the functions above.  Each first checks that the
 * caller is a member of analytics_admin, before any lock (a lock taken
 * first would hold up every log writer until the refusal), then does its
 * work with the extension owner's rights (privs.c): admins do not write
 * the rollups, budget_counters or rollup_state themselves.
 */
Datum
rollup_purge_logs(PG_FUNCTION_ARGS)
{
	analytics_require_current("analytics.purge_logs()");
	privs_require_admin("analytics.purge_logs()");
	if (rollup_dispatched())
	{
		List	   *results;
		ListCell   *lc;
		int64		deleted = 0;

		if (PG_ARGISNULL(0))
			return privs_call_as_owner(rollup_purge_logs_as_owner, fcinfo);
		/* Not as text: the nodes' DateStyle may read it otherwise. */
		results = rollup_on_every_node("analytics.purge_logs()", psprintf("SELECT analytics._purge_logs_node("
												"'2000-01-01 00:00:00+00'::pg_catalog.timestamptz "
												"OPERATOR(pg_catalog.+) (" INT64_FORMAT
												" OPERATOR(pg_catalog.*) pg_catalog.interval '1 microsecond'))",
												(int64) PG_GETARG_TIMESTAMPTZ(0)),
									   false);
		foreach(lc, results)
			if (*(char *) lfirst(lc) != '\0')
				deleted += strtoi64((char *) lfirst(lc), NULL, 10);
		(void) privs_call_as_owner(rollup_share_settings_as_owner, fcinfo);
		PG_RETURN_INT64(deleted);
	}
	return privs_call_as_owner(rollup_purge_logs_as_owner, fcinfo);
}

Datum
rollup_delete_customer(PG_FUNCTION_ARGS)
{
	analytics_require_current("analytics.delete_customer()");
	privs_require_admin("analytics.delete_customer()");
	if (rollup_dispatched() && !PG_ARGISNULL(0))
	{
		char	   *ident = text_to_cstring(PG_GETARG_TEXT_PP(0));
		List	   *results;
		ListCell   *lc;

		/* Done once the node of the customer's shard did it. */
		results = rollup_on_every_node("analytics.delete_customer()", psprintf("SELECT analytics._delete_customer_node(%s)",
												quote_literal_cstr(ident)),
									   true);
		foreach(lc, results)
			if (lfirst(lc) != NULL && strcmp((char *) lfirst(lc), "t") == 0)
				PG_RETURN_VOID();
		foreach(lc, results)
			if (lfirst(lc) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("delete_customer(%s) could not reach every node", quote_literal_cstr(ident)),
						 errdetail("No reachable node holds the customer; the one that does may be down."),
						 errhint("Run it again once every node is back.")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("customer \"%s\" does not exist", ident),
				 errhint("See analytics.customers for the known customers.")));
	}
	(void) privs_call_as_owner(rollup_delete_customer_as_owner, fcinfo);
	PG_RETURN_VOID();
}

Datum
rollup_set_timezone(PG_FUNCTION_ARGS)
{
	analytics_require_current("analytics.set_timezone()");
	privs_require_admin("analytics.set_timezone()");
	if (rollup_dispatched() && !PG_ARGISNULL(0))
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
		pg_tz	   *tz = pg_tzset(name);

		if (tz == NULL || !pg_tz_acceptable(tz))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" is not recognized", name),
					 errhint("Use a name from pg_timezone_names, such as Europe/Paris.")));
		(void) rollup_on_every_node("analytics.set_timezone()", psprintf("SELECT analytics._set_timezone_node(%s)",
											 quote_literal_cstr(pg_get_timezone_name(tz))),
									false);
		(void) privs_call_as_owner(rollup_share_settings_as_owner, fcinfo);
		PG_RETURN_VOID();
	}
	return privs_call_as_owner(rollup_set_timezone_as_owner, fcinfo);
}

/*
 * rollup_node_variant
 *		Call fn as a node variant: the work on this node's shards only.
 */
static Datum
rollup_node_variant(PGFunction fn, const char *name, FunctionCallInfo fcinfo)
{
	Datum		result;

	analytics_require_current(name);
	privs_require_admin(name);
	rollup_node_call = true;
	PG_TRY();
	{
		result = privs_call_as_owner(fn, fcinfo);
	}
	PG_FINALLY();
	{
		rollup_node_call = false;
	}
	PG_END_TRY();
	return result;
}

Datum
rollup_purge_logs_node(PG_FUNCTION_ARGS)
{
	return rollup_node_variant(rollup_purge_logs_as_owner, "analytics._purge_logs_node()", fcinfo);
}

Datum
rollup_delete_customer_node(PG_FUNCTION_ARGS)
{
	return rollup_node_variant(rollup_delete_customer_as_owner, "analytics._delete_customer_node()", fcinfo);
}

Datum
rollup_set_timezone_node(PG_FUNCTION_ARGS)
{
	return rollup_node_variant(rollup_set_timezone_as_owner, "analytics._set_timezone_node()", fcinfo);
}
