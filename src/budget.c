/*-------------------------------------------------------------------------
 *
 * budget.c
 *	  Budget enforcement in the write path of analytics.logs, and the
 *	  trigger that serializes budget changes with the inserts they govern.
 *
 * budget_check_log() runs inside the BEFORE INSERT trigger of analytics.logs
 * (logs.c) for every log of a customer that is blocked or has a
 * period_budget or a total_budget.  Customers with neither never get here.
 *
 * Counters.  analytics.budget_counters holds, per customer and budget
 * period, the RAW cost (before markup) of the customer's committed logs in
 * that period; the row with period ['-infinity', 'infinity') is the lifetime
 * counter.  Markup is applied when comparing (billed = raw * (1 + markup *
 * 0.01), budget_markup(), which is also SQL's analytics._budget_billed), so
 * a markup change re-prices the whole period consistently.  A counter row
 * is created lazily, the first time a log of its period needs it, from the
 * spend functions check_budget() reads when there is no counter
 * (analytics._budget_period_raw and _budget_total_raw, 30_budget.sql): the
 * period's logs, or for the lifetime analytics.usage_daily plus the logs
 * above the rollup watermark, so purged logs still count.
 *
 * Each log adds its cost with one UPDATE of its counter row, whose row lock
 * serializes the writers of one customer's period until they end; the spend
 * before the log is new - cost, and a log whose spend before it is at or
 * over the budget is rejected, rolling back its increment.  So accepted
 * spend never exceeds the budget by more than one crossing log.  The
 * settings used are those of the last committed change (customers.c,
 * changes.c); budget_customers_changed() deletes a customer's counters when
 * a budget is newly set or its periods move, after the change has waited
 * for that customer's writers.  Why this is exact under READ COMMITTED,
 * and the lock order, are in src/README.md.
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
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "alerts.h"
#include "analytics.h"
#include "budget.h"
#include "changes.h"
#include "customers.h"
#include "periods.h"
#include "privs.h"
#include "shards.h"

PG_FUNCTION_INFO_V1(budget_billed);
PG_FUNCTION_INFO_V1(budget_customers_changed);
PG_FUNCTION_INFO_V1(budget_customer_created_blocked);

/* Prepared plans, kept for the life of the backend. */
static SPIPlanPtr counter_add_plan = NULL;
static SPIPlanPtr counter_init_period_plan = NULL;
static SPIPlanPtr counter_init_lifetime_plan = NULL;
static SPIPlanPtr counter_held_plan = NULL;
static SPIPlanPtr counter_set_held_plan = NULL;
static SPIPlanPtr counters_reset_plan = NULL;
static SPIPlanPtr alerted_reset_plan = NULL;

/*
 * budget_counter_recompute
 *		Set the reserved amount of a locked counter (values: customer,
 *		start, end as budget_counter_update's parameters) to the estimates
 *		of the admissions open at `at`, and reserved_until to the first of
 *		their expiries; return the amount.  Inside SPI.
 */
static Numeric
budget_counter_recompute(Datum *values, Datum at)
{
	Datum		held_values[4] = {values[0], values[1], values[2], at};
	Datum		set_values[5] = {values[0], values[1], values[2]};
	char		set_nulls[5] = {' ', ' ', ' ', ' ', ' '};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Numeric		held;

	if (SPI_execute_plan(analytics_prepare(&counter_held_plan,
										   "SELECT held, held_until "
										   "FROM analytics._admissions_held($1, $2, $3, $4)",
										   4, (Oid[]) {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID}),
						 held_values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the estimates of open admissions");
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	held = DatumGetNumeric(SPI_getbinval(row, desc, 1, &isnull));
	set_values[3] = NumericGetDatum(held);
	set_values[4] = SPI_getbinval(row, desc, 2, &isnull);
	if (isnull)
		set_nulls[4] = 'n';
	if (SPI_execute_plan(analytics_prepare(&counter_set_held_plan,
										   "UPDATE analytics.budget_counters "
										   "SET reserved = $4, reserved_until = $5 "
										   "WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
										   "AND period_start OPERATOR(pg_catalog.=) $2 "
										   "AND period_end OPERATOR(pg_catalog.=) $3",
										   5, (Oid[]) {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, NUMERICOID, TIMESTAMPTZOID}),
						 set_values, set_nulls, false, 0) != SPI_OK_UPDATE ||
		SPI_processed != 1)
		elog(ERROR, "could not update the reserved amount of a budget counter");
	return held;
}

/*
 * budget_counter_update
 *		Add spend and held to the customer's counter of [start, end) and
 *		return its new raw spend and reserved amount (and its `alerted`
 *		thresholds, when alerted is not NULL), creating the counter first
 *		when it does not exist (with the thresholds already recorded under
 *		`budget`).  `until`, when not DT_NOEND, is the expiry of an
 *		admission whose estimate `held` adds; `released`, when not DT_NOEND,
 *		the expiry of a settled admission whose estimate `held` takes away.
 *		Must be called inside SPI.  Locks the counter row until the end of
 *		the transaction (see the file header).
 *
 * The reserved amount is the sum of the estimates of the customer's open
 * admissions that a log of the period may settle (made before its end,
 * expiring after its start), as of the counter's last check.  The caller
 * changes analytics.admissions first (an admission inserted, or marked
 * settled) and passes the change as `held`; when the counter is stale, or
 * was just built (built counters are born stale), reserved is recomputed
 * from analytics.admissions instead, which already shows the caller's
 * change and every committed one.  Stale means, at the clock read once the
 * row is locked: an admission the counter counts has expired
 * (reserved_until passed), or the settled admission has (an earlier
 * recompute may have dropped it already: the delta would take it away
 * twice).  Under the row lock the two agree: a change of another
 * transaction that this recompute cannot see yet is applied by that
 * transaction's own update of the row, after ours.
 */
static void
budget_counter_update(Datum ident, TimestampTz start, TimestampTz end,
					  bool lifetime, Numeric budget, Numeric spend_delta,
					  Numeric held, TimestampTz until, TimestampTz released,
					  Numeric *spend, Numeric *reserved, Datum *alerted)
{
	Oid			argtypes[6] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, NUMERICOID,
	NUMERICOID, TIMESTAMPTZOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Oid			init_argtypes[4] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, NUMERICOID};
	Datum		init_values[4];
	SPIPlanPtr	update;
	int			attempt;

	values[0] = ident;
	values[1] = TimestampTzGetDatum(start);
	values[2] = TimestampTzGetDatum(end);
	values[3] = NumericGetDatum(spend_delta);
	values[4] = NumericGetDatum(held);
	values[5] = TimestampTzGetDatum(until);
	if (until == DT_NOEND)
		nulls[5] = 'n';

	update = analytics_prepare(&counter_add_plan,
							"UPDATE analytics.budget_counters "
							"SET spend = spend OPERATOR(pg_catalog.+) $4, "
							"reserved = reserved OPERATOR(pg_catalog.+) $5, "
							"reserved_until = LEAST(reserved_until, $6) "
							"WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
							"AND period_start OPERATOR(pg_catalog.=) $2 "
							"AND period_end OPERATOR(pg_catalog.=) $3 "
							"RETURNING spend, reserved, reserved_until, alerted",
							6, argtypes);

	for (attempt = 0; attempt < 2; attempt++)
	{
		bool		isnull;
		SPIPlanPtr	init;

		if (SPI_execute_plan(update, values, nulls, false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not update budget counter");
		if (SPI_processed == 1)
		{
			HeapTuple	row = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;

			Datum		reserved_until;
			bool		until_null;
			TimestampTz now;

			*spend = DatumGetNumeric(SPI_getbinval(row, desc, 1, &isnull));
			*reserved = DatumGetNumeric(SPI_getbinval(row, desc, 2, &isnull));
			reserved_until = SPI_getbinval(row, desc, 3, &until_null);
			if (alerted)
				*alerted = SPI_getbinval(row, desc, 4, &isnull);

			/* The row is locked now: what has expired is read after the wait. */
			now = GetCurrentTimestamp();
			if ((until_null || DatumGetTimestampTz(reserved_until) > now) &&
				(released == DT_NOEND || released > now))
				return;

			/* Stale: recompute from the admissions open now. */
			*reserved = budget_counter_recompute(values, TimestampTzGetDatum(now));
			return;
		}

		/*
		 * No counter yet: build it from what is committed (plus this
		 * transaction's own logs), with the spend function check_budget()
		 * uses, in the INSERT's snapshot (the function is STABLE), with
		 * the thresholds already recorded for it under this budget
		 * (alerts.c; after a restore, events are kept, counters not).  It
		 * is born stale (reserved_until -infinity), so the UPDATE above
		 * then recomputes its reserved amount.  A concurrent builder makes
		 * us wait on the primary key and then do nothing; the UPDATE then
		 * sees its row.
		 */
		if (lifetime)
			init = analytics_prepare(&counter_init_lifetime_plan,
									 "INSERT INTO analytics.budget_counters "
									 "(customer_identifier, period_start, period_end, spend, reserved_until, alerted) "
									 "SELECT $1, $2, $3, analytics._budget_total_raw($1, false), '-infinity', "
									 "analytics._budget_alerted($1, $2, $3, $4) "
									 "ON CONFLICT DO NOTHING",
									 4, init_argtypes);
		else
			init = analytics_prepare(&counter_init_period_plan,
									 "INSERT INTO analytics.budget_counters "
									 "(customer_identifier, period_start, period_end, spend, reserved_until, alerted) "
									 "SELECT $1, $2, $3, analytics._budget_period_raw($1, $2, $3, false), '-infinity', "
									 "analytics._budget_alerted($1, $2, $3, $4) "
									 "ON CONFLICT DO NOTHING",
									 4, init_argtypes);
		init_values[0] = ident;
		init_values[1] = values[1];
		init_values[2] = values[2];
		init_values[3] = NumericGetDatum(budget);
		if (SPI_execute_plan(init, init_values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not create budget counter");
	}
	elog(ERROR, "budget counter of customer vanished while being created");
}

/*
 * budget_markup
 *		billed = raw * (1 + markup * 0.01), exact (numeric products are
 *		exact), trailing zeros trimmed.
 */
static Numeric
budget_markup(Numeric raw, Numeric markup)
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

/*
 * budget_billed
 *		SQL: analytics._budget_billed(raw numeric, markup numeric): the
 *		billed cost check_budget() and the views report, by the same
 *		budget_markup() the trigger compares with.  Strict, immutable.
 */
Datum
budget_billed(PG_FUNCTION_ARGS)
{
	PG_RETURN_NUMERIC(budget_markup(PG_GETARG_NUMERIC(0), PG_GETARG_NUMERIC(1)));
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

/* The rejections, for a log or for an admission (admit()). */
void
budget_reject_blocked(const char *customer, bool admission)
{
	ereport(ERROR,
			(errcode(ERRCODE_ANALYTICS_BLOCKED),
			 errmsg("customer \"%s\" is blocked", customer),
			 admission ?
			 errdetail("A blocked customer is not admitted.") :
			 errdetail("Logs of a blocked customer are rejected; the log was not recorded."),
			 errhint("Set blocked to false in analytics.customers to accept them again; analytics.check_budget() tells a proxy before it calls the model.")));
}

static void
budget_reject_period(const char *customer, const CustomerSettings *settings,
					 Numeric before, TimestampTz end, text *timezone,
					 bool admission)
{
	ereport(ERROR,
			(errcode(ERRCODE_ANALYTICS_PERIOD_BUDGET),
			 errmsg("customer \"%s\" is over its %s budget", customer,
					settings->duration->name),
			 admission ?
			 errdetail("Spent or held $%s of $%s in the period ending %s; not admitted.",
					   budget_spend(before),
					   budget_amount(settings->period_budget, 2),
					   budget_format_time(end, timezone)) :
			 errdetail("Spent $%s of $%s in the period ending %s; the log was not recorded.",
					   budget_spend(before),
					   budget_amount(settings->period_budget, 2),
					   budget_format_time(end, timezone)),
			 errhint("Raise period_budget with analytics.upsert_customer(), or retry after the period ends; analytics.check_budget() tells a proxy before it calls the model.")));
}

static void
budget_reject_total(const char *customer, const CustomerSettings *settings,
					Numeric before, bool admission)
{
	ereport(ERROR,
			(errcode(ERRCODE_ANALYTICS_TOTAL_BUDGET),
			 errmsg("customer \"%s\" is over its total budget", customer),
			 admission ?
			 errdetail("Spent or held $%s of its lifetime budget of $%s, which does not renew; not admitted.",
					   budget_spend(before),
					   budget_amount(settings->total_budget, 2)) :
			 errdetail("Spent $%s of its lifetime budget of $%s, which does not renew; the log was not recorded.",
					   budget_spend(before),
					   budget_amount(settings->total_budget, 2)),
			 errhint("Raise total_budget with analytics.upsert_customer(); analytics.check_budget() tells a proxy before it calls the model.")));
}

/* The billed spend before a log or admission: (spend + reserved - own) * markup. */
static Numeric
budget_before(Numeric spend, Numeric reserved, Numeric own, Numeric markup)
{
	return budget_markup(numeric_sub_opt_error(numeric_add_opt_error(spend, reserved, NULL),
											   own, NULL),
						 markup);
}

/*
 * At most this many budget periods hold one admission's estimate (the
 * periods from its creation to its expiry; analytics.admission_timeout is
 * at most a day, the shortest period a day).
 */
#define BUDGET_MAX_HELD_PERIODS 4

/*
 * budget_charge
 *		One counter's part of a check: add `cost` and `held` to the counter
 *		of [start, end) (the lifetime counter when lifetime; `until` and
 *		`released` as budget_counter_update's), and with `reject`, refuse
 *		the log or admission when the billed spend before it, with the
 *		estimates held, already reached the budget (`own` is what it added
 *		itself: its cost, or its estimate).  For a log (not an admission),
 *		record the alert thresholds it reaches (alerts.c).
 */
static void
budget_charge(Datum ident, const char *customer, const CustomerSettings *settings,
			  bool lifetime, TimestampTz start, TimestampTz end, Numeric cost,
			  Numeric held, TimestampTz until, TimestampTz released,
			  Numeric own, bool reject, bool admission)
{
	Numeric		budget = lifetime ? settings->total_budget : settings->period_budget;
	Numeric		spend;
	Numeric		reserved;
	Datum		alerted;

	budget_counter_update(ident, start, end, lifetime, budget, cost, held, until,
						  released, &spend, &reserved, &alerted);
	if (reject)
	{
		Numeric		before = budget_before(spend, reserved, own, settings->markup);

		if (numeric_at_least(before, budget))
		{
			if (lifetime)
				budget_reject_total(customer, settings, before, admission);
			budget_reject_period(customer, settings, before, end,
								 periods_timezone(), admission);
		}
	}
	if (!admission)
		alerts_spend_reached(ident, settings, lifetime, start, end,
							 budget_markup(spend, settings->markup), budget, alerted);
}

/*
 * budget_check_log
 *		Enforce the customer's budgets on one new log:
 *		blocked -> UA003; period spend before this log (with the estimates
 *		of the open admissions) already at or over period_budget -> UA001;
 *		total spend before it at or over total_budget -> UA002.  Otherwise
 *		the log's raw cost is added to its period's and the lifetime
 *		counter, and the alert thresholds it reaches are recorded
 *		(alerts.c).  With analytics.budget_enforcement = record the log is
 *		counted and never rejected.
 *
 * `held`, when not NULL, is the admission this log settles (admission.c
 * marked it settled): the log is never rejected, and the admission's
 * estimate stops being held, in every period counter that held it (those
 * from its creation to its expiry), in time order with the log's own.
 *
 * `settings` holds the settings of the last committed change (customers.c);
 * the caller runs inside the inserting transaction, READ COMMITTED
 * or stricter.  Locks the customer's counter rows until the transaction ends.
 */
void
budget_check_log(const char *customer, const CustomerSettings *settings,
				 TimestampTz created_at, Numeric cost, const BudgetHeld *held)
{
	bool		reject = analytics_budget_enforcement != BUDGET_ENFORCEMENT_RECORD &&
		held == NULL;
	Numeric		zero = int64_to_numeric(0);
	Numeric		release = held ? DatumGetNumeric(DirectFunctionCall1(numeric_uminus, NumericGetDatum(held->estimated_cost))) : zero;
	TimestampTz released = held ? held->expires_at : DT_NOEND;
	Numeric		spend;
	Numeric		reserved;
	Datum		ident;

	if (settings->blocked && reject)
		budget_reject_blocked(customer, false);

	if (!settings->has_period_budget && !settings->has_total_budget)
		return;

	ident = CStringGetTextDatum(customer);
	SPI_connect();

	if (settings->has_period_budget)
	{
		text	   *timezone = periods_timezone();
		TimestampTz start;
		TimestampTz end;
		bool		charged = false;

		periods_compute(settings->period_start, settings->duration,
						created_at, timezone, &start, &end);
		if (held)
		{
			TimestampTz at = held->created_at;

			for (int i = 0; i < BUDGET_MAX_HELD_PERIODS && at < held->expires_at; i++)
			{
				TimestampTz held_start;
				TimestampTz held_end;

				periods_compute(settings->period_start, settings->duration,
								at, timezone, &held_start, &held_end);
				if (!charged && start < held_start)
				{
					budget_charge(ident, customer, settings, false, start, end,
								  cost, zero, DT_NOEND, DT_NOEND, cost, reject, false);
					charged = true;
				}
				if (held_start == start)
				{
					budget_charge(ident, customer, settings, false, start, end,
								  cost, release, DT_NOEND, released, cost, reject, false);
					charged = true;
				}
				else
					budget_counter_update(ident, held_start, held_end, false,
										  settings->period_budget, zero, release,
										  DT_NOEND, released, &spend, &reserved, NULL);
				at = held_end;
			}
		}
		if (!charged)
			budget_charge(ident, customer, settings, false, start, end,
						  cost, zero, DT_NOEND, DT_NOEND, cost, reject, false);
	}

	if (settings->has_total_budget)
		budget_charge(ident, customer, settings, true, DT_NOBEGIN, DT_NOEND,
					  cost, release, DT_NOEND, released, cost, reject, false);

	SPI_finish();
}

/*
 * budget_admit
 *		Hold an admission's estimate against the customer's budgets, or
 *		refuse it (admission.c refused a blocked customer first, before the
 *		rate limits): billed spend plus the estimates already
 *		held at or over period_budget -> UA001, over total_budget -> UA002
 *		(the crossing admission is admitted, as the crossing log is
 *		recorded).  The estimate is held in the current period, where it is
 *		checked, and in the later ones its log could still land in, up to
 *		its expiry.  The caller (admission.c) inserted the admission made at
 *		`now` and expiring at `expires`; `settings` were read from the
 *		customer's row, locked.  analytics.budget_enforcement = record
 *		refuses nothing.  Locks the customer's counter rows.
 */
void
budget_admit(const char *customer, const CustomerSettings *settings,
			 TimestampTz now, TimestampTz expires, Numeric estimate)
{
	bool		reject = analytics_budget_enforcement != BUDGET_ENFORCEMENT_RECORD;
	Numeric		zero = int64_to_numeric(0);
	Numeric		spend;
	Numeric		reserved;
	Datum		ident;

	if (!settings->has_period_budget && !settings->has_total_budget)
		return;

	ident = CStringGetTextDatum(customer);
	SPI_connect();

	if (settings->has_period_budget)
	{
		text	   *timezone = periods_timezone();
		TimestampTz start;
		TimestampTz end;
		TimestampTz at;

		periods_compute(settings->period_start, settings->duration,
						now, timezone, &start, &end);
		budget_charge(ident, customer, settings, false, start, end, zero,
					  estimate, expires, DT_NOEND, estimate, reject, true);
		at = end;
		for (int i = 1; i < BUDGET_MAX_HELD_PERIODS && at < expires; i++)
		{
			periods_compute(settings->period_start, settings->duration,
							at, timezone, &start, &end);
			budget_counter_update(ident, start, end, false, settings->period_budget,
								  zero, estimate, expires, DT_NOEND, &spend, &reserved, NULL);
			at = end;
		}
	}

	if (settings->has_total_budget)
		budget_charge(ident, customer, settings, true, DT_NOBEGIN, DT_NOEND, zero,
					  estimate, expires, DT_NOEND, estimate, reject, true);

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

/* Whether two numerics given as text (or NULL) differ as numbers. */
static bool
numeric_text_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL) != (b == NULL);
	return !DatumGetBool(DirectFunctionCall2(numeric_eq,
											 DirectFunctionCall3(numeric_in, CStringGetDatum(a),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1)),
											 DirectFunctionCall3(numeric_in, CStringGetDatum(b),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1))));
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
 *		stale (a budget newly set, or the periods moved), else forget the
 *		alert thresholds recorded in the counters when a budget, the markup
 *		or the thresholds change; record a `blocked` event when blocked
 *		goes from false to true (alerts.c).  Runs in the
 *		updating transaction; what changes_begin() takes lasts until it ends.
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
	bool		realert_period;
	bool		realert_total;
	bool		blocking;
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

	for (i = 0; i < CUSTOMERS_SETTINGS; i++)
		if (text_differs(column_text(oldtup, tupdesc, customers_setting_columns[i]),
						 column_text(newtup, tupdesc, customers_setting_columns[i])))
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

	/*
	 * Thresholds fire again under a new budget (alerts.c): forget those
	 * recorded for the counters kept, of the period or the lifetime, when
	 * the amount changes (as a number: 10 and 10.0 are one budget).  A
	 * change of the thresholds or of the markup is no new budget: a
	 * threshold recorded stays recorded, a new one fires when reached.
	 */
	realert_period = numeric_text_differs(column_text(oldtup, tupdesc, "period_budget"),
										  column_text(newtup, tupdesc, "period_budget"));
	realert_total = numeric_text_differs(column_text(oldtup, tupdesc, "total_budget"),
										 column_text(newtup, tupdesc, "total_budget"));
	blocking = strcmp(column_text(oldtup, tupdesc, "blocked"), "f") == 0 &&
		strcmp(column_text(newtup, tupdesc, "blocked"), "t") == 0;

	/* Wait for this customer's writers and hold off new ones: changes.c. */
	shards_set_current(trigdata->tg_relation);
	changes_begin(column_text(oldtup, tupdesc, "customer_identifier"));
	shards_clear_current();
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
	else if (realert_period || realert_total)
	{
		Oid			argtypes[3] = {TEXTOID, BOOLOID, BOOLOID};
		Datum		values[3];
		bool		isnull;
		SPIPlanPtr	plan;

		values[0] = heap_getattr(oldtup,
								 SPI_fnumber(tupdesc, "customer_identifier"),
								 tupdesc, &isnull);
		values[1] = BoolGetDatum(realert_period);
		values[2] = BoolGetDatum(realert_total);
		SPI_connect();
		plan = analytics_prepare(&alerted_reset_plan,
								 "UPDATE analytics.budget_counters SET alerted = '{}' "
								 "WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
								 "AND pg_catalog.cardinality(alerted) OPERATOR(pg_catalog.>) 0 "
								 "AND CASE WHEN period_start OPERATOR(pg_catalog.=) '-infinity' "
								 "THEN $3 ELSE $2 END",
								 3, argtypes);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not reset alerted thresholds");
		SPI_finish();
	}
	if (blocking)
	{
		bool		isnull;

		alerts_customer_blocked(heap_getattr(oldtup,
											 SPI_fnumber(tupdesc, "customer_identifier"),
											 tupdesc, &isnull));
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

/*
 * budget_customer_created_blocked_as_owner
 *		AFTER INSERT row trigger on analytics.customers, only for rows
 *		inserted blocked (WHEN (NEW.blocked)): the customer became blocked
 *		as it was created, so record the `blocked` event (alerts.c).
 */
static Datum
budget_customer_created_blocked_as_owner(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	bool		isnull;

	analytics_require_current("The blocked-event trigger of analytics.customers");
	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		elog(ERROR, "budget_customer_created_blocked must be an AFTER INSERT row trigger");
	tupdesc = RelationGetDescr(trigdata->tg_relation);
	alerts_customer_blocked(heap_getattr(trigdata->tg_trigtuple,
										 SPI_fnumber(tupdesc, "customer_identifier"),
										 tupdesc, &isnull));
	return PointerGetDatum(NULL);
}

/*
 * budget_customer_created_blocked
 *		See budget_customer_created_blocked_as_owner; with the extension
 *		owner's rights (whoever creates the customer may not write
 *		budget_events).
 */
Datum
budget_customer_created_blocked(PG_FUNCTION_ARGS)
{
	return privs_call_as_owner(budget_customer_created_blocked_as_owner, fcinfo);
}
