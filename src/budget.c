/*-------------------------------------------------------------------------
 *
 * budget.c
 *	  Budget enforcement in the write path of analytics.logs, and the
 *	  calendar arithmetic of budget periods.
 *
 * budget_check_log() runs inside the BEFORE INSERT trigger of analytics.logs
 * (logs.c) for every log of a customer that is blocked or has a
 * period_budget or a total_budget.  Customers with neither never get here.
 *
 * Counters.  analytics.budget_counters holds, per customer and budget
 * period, the RAW cost (before markup) of the customer's committed logs in
 * that period; the row with period ['-infinity', 'infinity') is the lifetime
 * counter.  Markup is applied when comparing (billed = raw * (1 + markup *
 * 0.01)), so a markup change re-prices the whole period consistently.  A
 * counter row is created lazily from the logs (and, for the lifetime, from
 * analytics.usage_daily plus the logs above the rollup watermark, so purged
 * logs still count) the first time a log of its period needs it.
 *
 * Locking protocol, and why it is exact under READ COMMITTED:
 *
 * 1. The budget settings the insert trigger uses (from logs.c's customer
 *	  cache) are those of the last committed change: every change of a
 *	  budget setting goes through budget_customers_changed(), which calls
 *	  changes_begin() (changes.c): the change waits for the transactions
 *	  writing that customer's logs, and writes of it that begin after it
 *	  wait until it ends and then read the new settings.  That is "a change
 *	  applies to the very next insert".
 *
 * 2. Each log adds its cost with one UPDATE of its counter row, returning
 *	  the new spend.  The row lock taken by the UPDATE is held until the
 *	  inserting transaction ends, so the writers of one customer's period are
 *	  serialized on that row; a waiting UPDATE re-reads the latest committed
 *	  version (READ COMMITTED re-check) and adds to it.  The spend before
 *	  this log is new - cost, which therefore counts every committed log of
 *	  the period and this transaction's own earlier logs.  If it is already
 *	  at or over the budget the log is rejected; the error aborts the
 *	  (sub)transaction and with it the increment.  A rolled-back insert's
 *	  increment is rolled back with it.  Hence accepted spend never exceeds
 *	  the budget by more than one crossing log.
 *
 * 3. Counters are exact only while the budget they serve is set: logs of
 *	  a customer without a budget are not counted.  So when a budget goes
 *	  from null to a value (or period_start or budget_duration change),
 *	  budget_customers_changed() deletes the customer's counters; that
 *	  happens under the table lock of point 1, i.e. after every
 *	  uncounted insert of the customer has committed, and the counters are
 *	  rebuilt from the committed logs by the next insert.  Concurrent first
 *	  inserts of a period race on the counter's primary key: the loser of
 *	  INSERT ... ON CONFLICT DO NOTHING waits for the winner and then updates
 *	  the winner's row.
 *
 * Customers without a budget take no lock here at all.  Only rows of the
 * log's own customer are touched (ready for sharding by customer).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "budget.h"
#include "changes.h"
#include "logs.h"
#include "privs.h"

PG_FUNCTION_INFO_V1(budget_period_bounds);
PG_FUNCTION_INFO_V1(budget_customers_changed);

/* Prepared plans, kept for the life of the backend. */
static SPIPlanPtr counter_add_plan = NULL;
static SPIPlanPtr counter_init_period_plan = NULL;
static SPIPlanPtr counter_init_lifetime_plan = NULL;
static SPIPlanPtr timezone_plan = NULL;
static SPIPlanPtr counters_reset_plan = NULL;

/* The extension time zone, read once per transaction. */
static LocalTransactionId timezone_lxid = InvalidLocalTransactionId;
static text *timezone_name = NULL;

/* The settings whose change budget_customers_changed() serializes. */
static const char *const budget_columns[] = {
	"period_budget", "budget_duration", "period_start", "total_budget",
	"markup_percentage", "blocked"
};

/*
 * budget_add_months
 *		Calendar arithmetic on a timestamp without time zone: ts + n months,
 *		the day of month clamped to the length of the target month (as
 *		timestamp + interval does).
 */
static Timestamp
budget_add_months(Timestamp ts, int64 n)
{
	Interval	span;

	if (n > PG_INT32_MAX || n < PG_INT32_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("budget period out of range")));
	span.time = 0;
	span.day = 0;
	span.month = (int32) n;
	return DatumGetTimestamp(DirectFunctionCall2(timestamp_pl_interval,
												 TimestampGetDatum(ts),
												 IntervalPGetDatum(&span)));
}

/* Floor division for a positive divisor. */
static int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	if (a % b != 0 && a < 0)
		q--;
	return q;
}

/*
 * budget_period_compute
 *		The budget period [start, end) that contains `at`: the period k with
 *		anchor + k * d <= at < anchor + (k + 1) * d, d being one day, one
 *		week, one month or one year ('d', 'w', 'm', 'y').  The arithmetic is
 *		done on wall-clock time in `timezone` (timestamp without time zone),
 *		and each bound is computed as anchor + k * d rather than step by
 *		step, so an anchor on January 31 gives period starts on February 28
 *		(or 29), March 31, April 30, and so on.  Pure computation: no locks,
 *		no catalog access beyond the time zone lookup.
 */
void
budget_period_compute(TimestampTz anchor, char duration, TimestampTz at,
					  text *timezone, TimestampTz *start, TimestampTz *end)
{
	Timestamp	local_anchor;
	Timestamp	local_at;
	Timestamp	s;
	Timestamp	e;

	local_anchor = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone,
														 PointerGetDatum(timezone),
														 TimestampTzGetDatum(anchor)));
	local_at = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone,
													 PointerGetDatum(timezone),
													 TimestampTzGetDatum(at)));

	if (duration == 'd' || duration == 'w')
	{
		/* Wall-clock days have 24 hours: no DST in timestamp arithmetic. */
		int64		step = (duration == 'd' ? 1 : 7) * USECS_PER_DAY;
		int64		k = floor_div(local_at - local_anchor, step);

		s = local_anchor + k * step;
		e = s + step;
	}
	else if (duration == 'm' || duration == 'y')
	{
		int			months = (duration == 'y') ? 12 : 1;
		struct pg_tm tm_anchor;
		struct pg_tm tm_at;
		fsec_t		fsec;
		int64		k;

		if (timestamp2tm(local_anchor, NULL, &tm_anchor, &fsec, NULL, NULL) != 0 ||
			timestamp2tm(local_at, NULL, &tm_at, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		k = floor_div((int64) (tm_at.tm_year - tm_anchor.tm_year) * 12 +
					  (tm_at.tm_mon - tm_anchor.tm_mon), months);
		/* The estimate is off by at most one period either way. */
		s = budget_add_months(local_anchor, k * months);
		if (s > local_at)
		{
			k--;
			s = budget_add_months(local_anchor, k * months);
		}
		e = budget_add_months(local_anchor, (k + 1) * months);
		if (e <= local_at)
		{
			k++;
			s = e;
			e = budget_add_months(local_anchor, (k + 1) * months);
		}
	}
	else
	{
		elog(ERROR, "unknown budget duration '%c'", duration);
		return;					/* keep compiler quiet */
	}

	*start = DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone,
													 PointerGetDatum(timezone),
													 TimestampGetDatum(s)));
	*end = DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone,
												   PointerGetDatum(timezone),
												   TimestampGetDatum(e)));
}

/*
 * budget_duration_code
 *		'd', 'w', 'm' or 'y' for a duration name; 22023 naming `field`
 *		otherwise.
 */
char
budget_duration_code(const char *duration, const char *field)
{
	if (strcmp(duration, "daily") == 0)
		return 'd';
	if (strcmp(duration, "weekly") == 0)
		return 'w';
	if (strcmp(duration, "monthly") == 0)
		return 'm';
	if (strcmp(duration, "yearly") == 0)
		return 'y';
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"%s\": \"%s\"", field, duration),
			 errhint("Use daily, weekly, monthly or yearly.")));
	return 'm';					/* keep compiler quiet */
}

static const char *
budget_duration_word(char code)
{
	switch (code)
	{
		case 'd':
			return "daily";
		case 'w':
			return "weekly";
		case 'y':
			return "yearly";
		default:
			return "monthly";
	}
}

/*
 * budget_period_bounds
 *		SQL: analytics.budget_period_bounds(anchor, duration, at, timezone)
 *		returns (period_start, period_end).  Immutable; no locks.
 */
Datum
budget_period_bounds(PG_FUNCTION_ARGS)
{
	TimestampTz anchor = PG_GETARG_TIMESTAMPTZ(0);
	char	   *duration = text_to_cstring(PG_GETARG_TEXT_PP(1));
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(2);
	text	   *timezone = PG_GETARG_TEXT_PP(3);
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	TimestampTz start;
	TimestampTz end;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (TIMESTAMP_NOT_FINITE(anchor) || TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("budget periods need finite timestamps")));

	budget_period_compute(anchor, budget_duration_code(duration, "budget_duration"), at,
						  timezone, &start, &end);
	values[0] = TimestampTzGetDatum(start);
	values[1] = TimestampTzGetDatum(end);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

/*
 * budget_timezone
 *		analytics.rollup_state.timezone, read once per transaction.  Must be
 *		called inside SPI.  Takes no lock beyond the snapshot read.
 */
static text *
budget_timezone(void)
{
	if (timezone_name == NULL || timezone_lxid != MyProc->lxid)
	{
		SPIPlanPtr	plan;
		bool		isnull = true;
		Datum		d = (Datum) 0;

		plan = analytics_prepare(&timezone_plan,
							  "SELECT timezone FROM analytics.rollup_state", 0, NULL);
		/* Not read-only: a fresh snapshot, see customer_ensure in logs.c. */
		if (SPI_execute_plan(plan, NULL, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read analytics.rollup_state");
		if (SPI_processed == 1)
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (timezone_name != NULL)
			pfree(timezone_name);
		timezone_name = NULL;
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			timezone_name = isnull ? cstring_to_text("UTC") : DatumGetTextPCopy(d);
			MemoryContextSwitchTo(old);
		}
		timezone_lxid = MyProc->lxid;
	}
	return timezone_name;
}

/*
 * budget_counter_add
 *		Add cost to the customer's counter of [start, end) and return the
 *		new raw spend, creating the counter from the logs first when it does
 *		not exist.  Must be called inside SPI.  Locks the counter row until
 *		the end of the transaction (see the file header).
 */
static Numeric
budget_counter_add(Datum ident, TimestampTz start, TimestampTz end,
				   Numeric cost, bool lifetime)
{
	Oid			argtypes[4] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, NUMERICOID};
	Datum		values[4];
	SPIPlanPtr	update;
	int			attempt;

	values[0] = ident;
	values[1] = TimestampTzGetDatum(start);
	values[2] = TimestampTzGetDatum(end);
	values[3] = NumericGetDatum(cost);

	update = analytics_prepare(&counter_add_plan,
							"UPDATE analytics.budget_counters "
							"SET spend = spend OPERATOR(pg_catalog.+) $4 "
							"WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
							"AND period_start OPERATOR(pg_catalog.=) $2 "
							"AND period_end OPERATOR(pg_catalog.=) $3 "
							"RETURNING spend",
							4, argtypes);

	for (attempt = 0; attempt < 2; attempt++)
	{
		bool		isnull;
		SPIPlanPtr	init;

		if (SPI_execute_plan(update, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not update budget counter");
		if (SPI_processed == 1)
			return DatumGetNumeric(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));

		/*
		 * No counter yet: build it from what is committed (plus this
		 * transaction's own logs).  A concurrent builder makes us wait on the
		 * primary key and then do nothing; the UPDATE then sees its row.
		 */
		if (lifetime)
			init = analytics_prepare(&counter_init_lifetime_plan,
								  "INSERT INTO analytics.budget_counters "
								  "(customer_identifier, period_start, period_end, spend) "
								  "SELECT $1, $2, $3, "
								  "(SELECT coalesce(pg_catalog.sum(u.cost), 0) "
								  " FROM analytics.usage_daily u "
								  " WHERE u.customer_identifier OPERATOR(pg_catalog.=) $1) "
								  "OPERATOR(pg_catalog.+) "
								  "(SELECT coalesce(pg_catalog.sum(l.cost), 0) "
								  " FROM analytics.logs l "
								  " WHERE l.customer_identifier OPERATOR(pg_catalog.=) $1 "
								  " AND l.id OPERATOR(pg_catalog.>) "
								  " (SELECT s.watermark FROM analytics.rollup_state s)) "
								  "ON CONFLICT DO NOTHING",
								  3, argtypes);
		else
			init = analytics_prepare(&counter_init_period_plan,
								  "INSERT INTO analytics.budget_counters "
								  "(customer_identifier, period_start, period_end, spend) "
								  "SELECT $1, $2, $3, coalesce(pg_catalog.sum(l.cost), 0) "
								  "FROM analytics.logs l "
								  "WHERE l.customer_identifier OPERATOR(pg_catalog.=) $1 "
								  "AND l.created_at OPERATOR(pg_catalog.>=) $2 "
								  "AND l.created_at OPERATOR(pg_catalog.<) $3 "
								  "ON CONFLICT DO NOTHING",
								  3, argtypes);
		if (SPI_execute_plan(init, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not create budget counter");
	}
	elog(ERROR, "budget counter of customer vanished while being created");
	return NULL;				/* keep compiler quiet */
}

/* billed = raw * (1 + markup * 0.01), exact (numeric products are exact). */
static Numeric
budget_billed(Numeric raw, Numeric markup)
{
	static Numeric one = NULL;
	static Numeric hundredth = NULL;
	Numeric		factor;

	if (one == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		one = int64_to_numeric(1);
		hundredth = DatumGetNumeric(DirectFunctionCall3(numeric_in,
														CStringGetDatum("0.01"),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
		MemoryContextSwitchTo(old);
	}
	factor = numeric_add_opt_error(one,
								   numeric_mul_opt_error(markup, hundredth, NULL),
								   NULL);
	return DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale,
											   NumericGetDatum(numeric_mul_opt_error(raw, factor, NULL))));
}

static bool
numeric_at_least(Numeric a, Numeric b)
{
	return DatumGetBool(DirectFunctionCall2(numeric_ge, NumericGetDatum(a),
											NumericGetDatum(b)));
}

/* An amount for messages: at least `digits` decimals, none lost. */
static char *
budget_amount(Numeric n, int digits)
{
	int32		scale = DatumGetInt32(DirectFunctionCall1(numeric_scale,
														  NumericGetDatum(n)));

	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   DirectFunctionCall2(numeric_round,
																   NumericGetDatum(n),
																   Int32GetDatum(Max(scale, digits)))));
}

/* A spend for messages: four decimals. */
static char *
budget_spend(Numeric n)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   DirectFunctionCall2(numeric_round,
																   NumericGetDatum(n),
																   Int32GetDatum(4))));
}

/* "2026-12-01 00:00:00 UTC": a moment as wall-clock time in the zone. */
static char *
budget_format_time(TimestampTz ts, text *timezone)
{
	Timestamp	local = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone,
															  PointerGetDatum(timezone),
															  TimestampTzGetDatum(ts)));
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(local, NULL, &tm, &fsec, NULL, NULL) != 0)
		return pstrdup("(out of range)");
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d %s",
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec, text_to_cstring(timezone));
}

/*
 * budget_check_log
 *		Enforce the customer's budgets on one new log:
 *		blocked -> UA003; period spend before this log already at or over
 *		period_budget -> UA001; total spend before it at or over total_budget
 *		-> UA002.  Otherwise the log's raw cost is added to its period's and
 *		the lifetime counter.  With analytics.budget_enforcement = record
 *		the log is counted and never rejected.
 *
 * `budget` holds the settings of the last committed change (see point 1
 * above); the caller runs inside the inserting transaction, READ COMMITTED
 * or stricter.  Locks the customer's counter rows until the transaction ends.
 */
void
budget_check_log(const char *customer, const CustomerBudget *budget,
				 TimestampTz created_at, Numeric cost)
{
	bool		reject = analytics_budget_enforcement != BUDGET_ENFORCEMENT_RECORD;
	Datum		ident;

	if (budget->blocked && reject)
		ereport(ERROR,
				(errcode(ERRCODE_ANALYTICS_BLOCKED),
				 errmsg("customer \"%s\" is blocked", customer),
				 errdetail("Logs of a blocked customer are rejected; the log was not recorded."),
				 errhint("Set blocked to false in analytics.customers to accept them again; analytics.check_budget() tells a proxy before it calls the model.")));

	if (!budget->has_period_budget && !budget->has_total_budget)
		return;

	ident = CStringGetTextDatum(customer);
	SPI_connect();

	if (budget->has_period_budget)
	{
		text	   *timezone = budget_timezone();
		TimestampTz start;
		TimestampTz end;
		Numeric		spend;
		Numeric		before;

		budget_period_compute(budget->period_start, budget->duration,
							  created_at, timezone, &start, &end);
		spend = budget_counter_add(ident, start, end, cost, false);
		before = budget_billed(numeric_sub_opt_error(spend, cost, NULL),
							   budget->markup);
		if (reject && numeric_at_least(before, budget->period_budget))
			ereport(ERROR,
					(errcode(ERRCODE_ANALYTICS_PERIOD_BUDGET),
					 errmsg("customer \"%s\" is over its %s budget", customer,
							budget_duration_word(budget->duration)),
					 errdetail("Spent $%s of $%s in the period ending %s; the log was not recorded.",
							   budget_spend(before),
							   budget_amount(budget->period_budget, 2),
							   budget_format_time(end, timezone)),
					 errhint("Raise period_budget with analytics.upsert_customer(), or retry after the period ends; analytics.check_budget() tells a proxy before it calls the model.")));
	}

	if (budget->has_total_budget)
	{
		Numeric		spend;
		Numeric		before;

		spend = budget_counter_add(ident, DT_NOBEGIN, DT_NOEND, cost, true);
		before = budget_billed(numeric_sub_opt_error(spend, cost, NULL),
							   budget->markup);
		if (reject && numeric_at_least(before, budget->total_budget))
			ereport(ERROR,
					(errcode(ERRCODE_ANALYTICS_TOTAL_BUDGET),
					 errmsg("customer \"%s\" is over its total budget", customer),
					 errdetail("Spent $%s of its lifetime budget of $%s, which does not renew; the log was not recorded.",
							   budget_spend(before),
							   budget_amount(budget->total_budget, 2)),
					 errhint("Raise total_budget with analytics.upsert_customer(); analytics.check_budget() tells a proxy before it calls the model.")));
	}

	SPI_finish();
}

/* A column's value as text, or NULL. */
static char *
column_text(HeapTuple tuple, TupleDesc tupdesc, const char *name)
{
	int			attnum = SPI_fnumber(tupdesc, name);

	if (attnum <= 0)
		elog(ERROR, "analytics.customers has no column \"%s\"", name);
	return SPI_getvalue(tuple, tupdesc, attnum);
}

static bool
text_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL) != (b == NULL);
	return strcmp(a, b) != 0;
}

/*
 * budget_customers_changed_as_owner
 *		BEFORE UPDATE row trigger on analytics.customers.  Rejects a change
 *		of the identifier.  When a budget setting changes, call
 *		changes_begin(): it waits for the transactions writing this
 *		customer's logs and makes new writes of it wait until this
 *		transaction ends, so the change applies exactly from the next insert
 *		on.  Then delete the customer's counters when they may be
 *		stale (a budget newly set, or the periods moved).  Runs in the
 *		updating transaction; the table lock lasts until it ends.
 */
static Datum
budget_customers_changed_as_owner(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	HeapTuple	oldtup;
	HeapTuple	newtup;
	bool		changed = false;
	bool		reset;
	int			i;

	analytics_require_current("The budget trigger of analytics.customers");
	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		elog(ERROR, "budget_customers_changed must be a BEFORE UPDATE row trigger");

	tupdesc = RelationGetDescr(trigdata->tg_relation);
	oldtup = trigdata->tg_trigtuple;
	newtup = trigdata->tg_newtuple;

	if (text_differs(column_text(oldtup, tupdesc, "customer_identifier"),
					 column_text(newtup, tupdesc, "customer_identifier")))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("customer_identifier of analytics.customers cannot be changed"),
				 errdetail("Logs, rollups and budget counters refer to the customer by it."),
				 errhint("Create the customer under the new identifier instead.")));

	for (i = 0; i < lengthof(budget_columns); i++)
		if (text_differs(column_text(oldtup, tupdesc, budget_columns[i]),
						 column_text(newtup, tupdesc, budget_columns[i])))
			changed = true;
	if (!changed)
		return PointerGetDatum(newtup);

	reset = text_differs(column_text(oldtup, tupdesc, "period_start"),
						 column_text(newtup, tupdesc, "period_start")) ||
		text_differs(column_text(oldtup, tupdesc, "budget_duration"),
					 column_text(newtup, tupdesc, "budget_duration")) ||
		(column_text(oldtup, tupdesc, "period_budget") == NULL &&
		 column_text(newtup, tupdesc, "period_budget") != NULL) ||
		(column_text(oldtup, tupdesc, "total_budget") == NULL &&
		 column_text(newtup, tupdesc, "total_budget") != NULL);

	/* Wait for this customer's writers and hold off new ones: changes.c. */
	changes_begin(column_text(oldtup, tupdesc, "customer_identifier"));
	if (reset)
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];
		bool		isnull;
		SPIPlanPtr	plan;

		values[0] = heap_getattr(oldtup,
								 SPI_fnumber(tupdesc, "customer_identifier"),
								 tupdesc, &isnull);
		SPI_connect();
		plan = analytics_prepare(&counters_reset_plan,
							  "DELETE FROM analytics.budget_counters "
							  "WHERE customer_identifier OPERATOR(pg_catalog.=) $1",
							  1, argtypes);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not reset budget counters");
		SPI_finish();
	}

	return PointerGetDatum(newtup);
}

/*
 * budget_customers_changed
 *		BEFORE UPDATE row trigger on analytics.customers (see
 *		budget_customers_changed_as_owner).  Runs with the extension owner's
 *		rights: an admin may change budgets but not write budget_counters.
 */
Datum
budget_customers_changed(PG_FUNCTION_ARGS)
{
	return privs_call_as_owner(budget_customers_changed_as_owner, fcinfo);
}
