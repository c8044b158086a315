/*-------------------------------------------------------------------------
 *
 * alerts.c
 *	  Budget alerts: a row of analytics.budget_events, and NOTIFY
 *	  analytics_budget carrying it as JSON, when a customer's billed spend
 *	  first reaches one of its alert_thresholds in a period (or over its
 *	  lifetime), and when it becomes blocked.
 *
 * alerts_spend_reached() runs in the insert trigger of analytics.logs,
 * called by budget_check_log() right after the log's cost was added to a
 * counter of analytics.budget_counters and the log was accepted.  The
 * counter's row lock is held then (until the transaction ends), so the
 * writers of one customer's period reach this point one at a time, each
 * seeing the spend and the `alerted` thresholds of every committed log
 * before it: a threshold is recorded by the first log whose billed spend
 * reaches it, exactly once, and added to `alerted` in the same row.  The
 * event row, the `alerted` update and the notification belong to the log's
 * transaction: a rollback (of it or of a savepoint around the log) drops
 * all three, and the next log that reaches the threshold records it.
 *
 * The common case costs nothing: unless the billed spend reaches the
 * smallest threshold, nothing is read or written here.
 *
 * NOTIFY.  On a single node the event is queued with Async_Notify() and
 * sent when the transaction commits, and the row is inserted with notified
 * = true.  On a Citus cluster the trigger runs on the node holding the
 * customer's shard, where a listener on the coordinator would not hear it:
 * the row is inserted with notified = false, and alerts_forward(), run by
 * the coordinator's rollup worker, marks such rows notified through Citus
 * and sends them, in one transaction (two-phase commit with the nodes), so
 * each event is sent once, one worker pass after its commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "alerts.h"
#include "analytics.h"
#include "shards.h"

static SPIPlanPtr event_insert_plan = NULL;
static SPIPlanPtr event_insert_forwarded_plan = NULL;
static SPIPlanPtr alerted_update_plan = NULL;
static SPIPlanPtr forward_plan = NULL;
static SPIPlanPtr unsent_plan = NULL;

/*
 * The payload of an event: the row as JSON, without `notified`; when that
 * is too long for NOTIFY (8000 bytes: a cost or budget a writer or admin
 * gave with thousands of digits), the row's id, customer and kind with
 * "truncated": true, which the listener reads back from budget_events.
 */
#define ALERTS_ROW_JSON \
	"(pg_catalog.to_jsonb(e) OPERATOR(pg_catalog.-) 'notified'::text)::text"
#define ALERTS_PAYLOAD \
	"CASE WHEN pg_catalog.octet_length(" ALERTS_ROW_JSON ") OPERATOR(pg_catalog.<) 8000 " \
	"THEN " ALERTS_ROW_JSON " ELSE pg_catalog.jsonb_build_object('id', e.id, " \
	"'customer_identifier', e.customer_identifier, 'kind', e.kind, 'truncated', true)::text END"

/*
 * alerts_reached
 *		Whether billed is at least percent % of budget: billed * 100 >=
 *		percent * budget, exact.
 */
static bool
alerts_reached(Numeric billed, Numeric percent, Numeric budget)
{
	static Numeric hundred = NULL;

	if (hundred == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		hundred = int64_to_numeric(100);
		MemoryContextSwitchTo(old);
	}
	return DatumGetBool(DirectFunctionCall2(numeric_ge,
											NumericGetDatum(numeric_mul_opt_error(billed, hundred, NULL)),
											NumericGetDatum(numeric_mul_opt_error(percent, budget, NULL))));
}

/*
 * alerts_record
 *		Insert one event and, on a single node, queue its notification.
 *		Inside SPI.  kind is period_threshold, total_threshold or blocked;
 *		the other values may be null (0 for the Datums, isnull).
 */
static void
alerts_record(Datum ident, const char *kind, Datum threshold, Datum spend,
			  Datum budget, Datum start, Datum end, bool has_period,
			  bool has_amounts)
{
	Oid			argtypes[9] = {TEXTOID, TEXTOID, NUMERICOID, NUMERICOID,
	NUMERICOID, TIMESTAMPTZOID, TIMESTAMPTZOID, BOOLOID, INT8OID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		cluster = shards_logs_distributed();
	SPIPlanPtr	plan;
	const char *sql =
		"INSERT INTO analytics.budget_events AS e "
		"(customer_identifier, kind, threshold, spend, budget, period_start, "
		"period_end, notified, id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

	values[0] = ident;
	values[1] = CStringGetTextDatum(kind);
	values[2] = threshold;
	values[3] = spend;
	values[4] = budget;
	values[5] = start;
	values[6] = end;
	values[7] = BoolGetDatum(!cluster);
	/* On a cluster the id carries the node it was drawn on (src/shards.c). */
	values[8] = Int64GetDatum(cluster ? shards_next_id("budget_event_ids") :
							  nextval_internal(shards_table("budget_event_ids"), true));
	if (!has_amounts)
		nulls[2] = nulls[3] = nulls[4] = 'n';
	if (!has_period)
		nulls[5] = nulls[6] = 'n';

	if (cluster)
	{
		/* The coordinator's worker sends it (alerts_forward). */
		plan = analytics_prepare(&event_insert_forwarded_plan, sql, 9, argtypes);
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record budget event");
		return;
	}
	plan = analytics_prepare(&event_insert_plan,
							 psprintf("%s RETURNING %s", sql, ALERTS_PAYLOAD),
							 9, argtypes);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not record budget event");
	Async_Notify(ALERTS_CHANNEL,
				 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
}

/*
 * alerts_spend_reached
 *		After a log of the customer ident added its cost to the counter of
 *		[start, end) (the lifetime counter when lifetime), whose row lock
 *		this transaction holds: record an event for each of the customer's
 *		thresholds that billed (the billed spend with the log) reaches and
 *		that the counter's `alerted` (numeric[]) does not hold yet, and add
 *		them to `alerted`.  budget is period_budget or total_budget.  Inside
 *		SPI, in the inserting transaction.
 */
void
alerts_spend_reached(Datum ident, const CustomerSettings *settings,
					 bool lifetime, TimestampTz start, TimestampTz end,
					 Numeric billed, Numeric budget, Datum alerted)
{
	Datum	   *done;
	bool	   *done_nulls;
	int			ndone;
	Datum	   *all;
	int			nall;
	int			nnew = 0;
	ArrayType  *array;

	/* The common case: below the smallest threshold, nothing to do. */
	if (settings->nthresholds == 0 ||
		!alerts_reached(billed, settings->thresholds[0], budget))
		return;

	array = DatumGetArrayTypeP(alerted);
	deconstruct_array(array, NUMERICOID, -1, false, TYPALIGN_INT,
					  &done, &done_nulls, &ndone);
	all = palloc((ndone + settings->nthresholds) * sizeof(Datum));
	memcpy(all, done, ndone * sizeof(Datum));
	nall = ndone;

	/* Ascending, so the events of one log are recorded in that order. */
	for (int i = 0; i < settings->nthresholds; i++)
	{
		Numeric		t = settings->thresholds[i];
		bool		seen = false;

		if (!alerts_reached(billed, t, budget))
			break;
		for (int j = 0; j < ndone && !seen; j++)
			seen = !done_nulls[j] &&
				DatumGetBool(DirectFunctionCall2(numeric_eq, done[j],
												 NumericGetDatum(t)));
		if (seen)
			continue;
		/*
		 * Importing history (analytics.budget_enforcement = record, as a
		 * restore runs): the threshold counts as reached, but its event, if
		 * any, is history too; a restore brings it back from the dump.
		 */
		if (analytics_budget_enforcement != BUDGET_ENFORCEMENT_RECORD)
			alerts_record(ident, lifetime ? "total_threshold" : "period_threshold",
						  NumericGetDatum(t), NumericGetDatum(billed),
						  NumericGetDatum(budget), TimestampTzGetDatum(start),
						  TimestampTzGetDatum(end), !lifetime, true);
		all[nall++] = NumericGetDatum(t);
		nnew++;
	}
	if (nnew > 0)
	{
		Oid			argtypes[4] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		NUMERICARRAYOID};
		Datum		values[4];
		SPIPlanPtr	plan;

		values[0] = ident;
		values[1] = TimestampTzGetDatum(start);
		values[2] = TimestampTzGetDatum(end);
		values[3] = PointerGetDatum(construct_array(all, nall, NUMERICOID, -1,
													false, TYPALIGN_INT));
		plan = analytics_prepare(&alerted_update_plan,
								 "UPDATE analytics.budget_counters SET alerted = $4 "
								 "WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
								 "AND period_start OPERATOR(pg_catalog.=) $2 "
								 "AND period_end OPERATOR(pg_catalog.=) $3",
								 4, argtypes);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != 1)
			elog(ERROR, "could not update alerted thresholds of budget counter");
	}
}

/*
 * alerts_customer_blocked
 *		The customer ident became blocked: record a `blocked` event (no
 *		threshold, spend, budget or period), unless history is being
 *		imported (analytics.budget_enforcement = record).  In the updating
 *		transaction, outside SPI.
 */
void
alerts_customer_blocked(Datum ident)
{
	/* Importing history (a restore): see alerts_spend_reached. */
	if (analytics_budget_enforcement == BUDGET_ENFORCEMENT_RECORD)
		return;
	SPI_connect();
	alerts_record(ident, "blocked", (Datum) 0, (Datum) 0, (Datum) 0,
				  (Datum) 0, (Datum) 0, false, false);
	SPI_finish();
}

/*
 * alerts_forward
 *		On the coordinator of a Citus cluster: mark every committed event not
 *		sent yet as notified, through Citus, and queue its notification, in
 *		the caller's transaction (its commit sends them; the two-phase
 *		commit makes the nodes' updates and the sending atomic).  Events of
 *		transactions still in progress are not visible and are sent by a
 *		later call.  Returns how many were queued, or -1 when this node is
 *		not the coordinator of a cluster (nothing to forward).  Inside a
 *		transaction with a snapshot, outside SPI.
 */
int
alerts_forward(void)
{
	SPIPlanPtr	plan;
	int			n;

	if (!shards_is_coordinator())
		return -1;
	SPI_connect();

	/*
	 * Most passes have nothing to send: find out with a plain read (the
	 * partial index of unsent events), which locks no row and writes no
	 * node, before the two-phase UPDATE.
	 */
	plan = analytics_prepare(&unsent_plan,
							 "SELECT FROM analytics.budget_events "
							 "WHERE NOT notified LIMIT 1",
							 0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unsent budget events");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return 0;
	}
	plan = analytics_prepare(&forward_plan,
							 "WITH f AS (UPDATE analytics.budget_events "
							 "SET notified = true WHERE NOT notified RETURNING *) "
							 "SELECT " ALERTS_PAYLOAD " FROM f e ORDER BY e.id",
							 0, NULL);
	if (SPI_execute_plan(plan, NULL, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not forward budget events");
	n = (int) SPI_processed;
	for (int i = 0; i < n; i++)
		Async_Notify(ALERTS_CHANNEL,
					 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return n;
}
