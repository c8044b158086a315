/*-------------------------------------------------------------------------
 *
 * periods.c
 *	  Budget periods: the one table of durations, the calendar arithmetic
 *	  that places an instant in its period, the SQL functions that expose
 *	  it, and the time zone the periods are computed in.
 *
 * A customer's budget periods are [anchor + k * d, anchor + (k + 1) * d),
 * anchor being customers.period_start and d its budget_duration, computed
 * on wall-clock time in the extension's time zone (rollup_state.timezone).
 * The budget trigger (budget.c), check_budget() and the views all place an
 * instant in its period with periods_compute().  Nothing here takes a lock
 * beyond the snapshot read of the time zone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "periods.h"

PG_FUNCTION_INFO_V1(budget_period_bounds);
PG_FUNCTION_INFO_V1(views_period_bounds);

/*
 * The durations, in the order the hint of a bad one lists them.  The CHECK
 * constraint budget_duration_known of analytics.customers lists the same
 * names.
 */
static const PeriodDuration periods_durations[] = {
	{"daily", 1, 0},
	{"weekly", 7, 0},
	{"monthly", 0, 1},
	{"yearly", 0, 12},
};

static SPIPlanPtr timezone_plan = NULL;

/* The extension time zone, read once per transaction. */
static LocalTransactionId timezone_lxid = InvalidLocalTransactionId;
static text *timezone_name = NULL;

/*
 * periods_duration
 *		The duration called `name`; 22023 naming `field` when there is none.
 */
const PeriodDuration *
periods_duration(const char *name, const char *field)
{
	StringInfoData hint;
	int			i;

	for (i = 0; i < lengthof(periods_durations); i++)
		if (strcmp(name, periods_durations[i].name) == 0)
			return &periods_durations[i];

	/* "Use daily, weekly, monthly or yearly." */
	initStringInfo(&hint);
	appendStringInfoString(&hint, "Use ");
	for (i = 0; i < lengthof(periods_durations); i++)
		appendStringInfo(&hint, "%s%s",
						 i == 0 ? "" : i == lengthof(periods_durations) - 1 ? " or " : ", ",
						 periods_durations[i].name);
	appendStringInfoChar(&hint, '.');
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"%s\": \"%s\"", field, name),
			 errhint("%s", hint.data)));
	return NULL;				/* keep compiler quiet */
}

/*
 * periods_add_months
 *		Calendar arithmetic on a timestamp without time zone: ts + n months,
 *		the day of month clamped to the length of the target month (as
 *		timestamp + interval does).
 */
static Timestamp
periods_add_months(Timestamp ts, int64 n)
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
periods_floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	if (a % b != 0 && a < 0)
		q--;
	return q;
}

/*
 * periods_compute
 *		The budget period [start, end) that contains `at`: the period k with
 *		anchor + k * d <= at < anchor + (k + 1) * d.  The arithmetic is done
 *		on wall-clock time in `timezone` (timestamp without time zone), and
 *		each bound is computed as anchor + k * d rather than step by step,
 *		so an anchor on January 31 gives period starts on February 28 (or
 *		29), March 31, April 30, and so on.  Pure computation: no locks, no
 *		catalog access beyond the time zone lookup.
 */
void
periods_compute(TimestampTz anchor, const PeriodDuration *duration,
				TimestampTz at, text *timezone,
				TimestampTz *start, TimestampTz *end)
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

	if (duration->months == 0)
	{
		/* Wall-clock days have 24 hours: no DST in timestamp arithmetic. */
		int64		step = duration->days * USECS_PER_DAY;
		int64		k = periods_floor_div(local_at - local_anchor, step);

		s = local_anchor + k * step;
		e = s + step;
	}
	else
	{
		int			months = duration->months;
		struct pg_tm tm_anchor;
		struct pg_tm tm_at;
		fsec_t		fsec;
		int64		k;

		if (timestamp2tm(local_anchor, NULL, &tm_anchor, &fsec, NULL, NULL) != 0 ||
			timestamp2tm(local_at, NULL, &tm_at, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		k = periods_floor_div((int64) (tm_at.tm_year - tm_anchor.tm_year) * 12 +
							  (tm_at.tm_mon - tm_anchor.tm_mon), months);
		/* The estimate is off by at most one period either way. */
		s = periods_add_months(local_anchor, k * months);
		if (s > local_at)
		{
			k--;
			s = periods_add_months(local_anchor, k * months);
		}
		e = periods_add_months(local_anchor, (k + 1) * months);
		if (e <= local_at)
		{
			k++;
			s = e;
			e = periods_add_months(local_anchor, (k + 1) * months);
		}
	}

	*start = DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone,
													 PointerGetDatum(timezone),
													 TimestampGetDatum(s)));
	*end = DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone,
												   PointerGetDatum(timezone),
												   TimestampGetDatum(e)));
}

/*
 * periods_timezone
 *		analytics.rollup_state.timezone, read once per transaction.  Must be
 *		called inside SPI.  Takes no lock beyond the snapshot read.
 */
text *
periods_timezone(void)
{
	if (timezone_name == NULL || timezone_lxid != MyProc->lxid)
	{
		SPIPlanPtr	plan;
		bool		isnull = true;
		Datum		d = (Datum) 0;

		plan = analytics_prepare(&timezone_plan,
								 "SELECT timezone FROM analytics.rollup_state", 0, NULL);
		/* Not read-only: a fresh snapshot, see customers_settings(). */
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
 * budget_period_bounds
 *		SQL: analytics.budget_period_bounds(anchor, duration, at, timezone)
 *		returns (period_start, period_end): the public face of
 *		periods_compute.  Immutable; no locks.
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

	periods_compute(anchor, periods_duration(duration, "budget_duration"), at,
					timezone, &start, &end);
	values[0] = TimestampTzGetDatum(start);
	values[1] = TimestampTzGetDatum(end);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

/*
 * views_period_bounds
 *		SQL: analytics._period_bounds(anchor timestamptz, duration text,
 *		as_of timestamptz, zone text) returns timestamptz[]: {start, end} of
 *		the budget period containing as_of.  analytics.users calls it for
 *		every row it returns (an array is cheaper to build and take apart
 *		than budget_period_bounds' record); the caller passes the time zone,
 *		read once per statement.  Strict; reads nothing, locks nothing.
 */
Datum
views_period_bounds(PG_FUNCTION_ARGS)
{
	TimestampTz anchor = PG_GETARG_TIMESTAMPTZ(0);
	char	   *duration = text_to_cstring(PG_GETARG_TEXT_PP(1));
	TimestampTz as_of = PG_GETARG_TIMESTAMPTZ(2);
	text	   *zone = PG_GETARG_TEXT_PP(3);
	Datum		bounds[2];
	TimestampTz start;
	TimestampTz end;

	if (TIMESTAMP_NOT_FINITE(anchor) || TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for argument \"%s\"",
						TIMESTAMP_NOT_FINITE(anchor) ? "anchor" : "as_of"),
				 errdetail("Budget periods need finite timestamps.")));
	periods_compute(anchor, periods_duration(duration, "duration"), as_of,
					zone, &start, &end);
	bounds[0] = TimestampTzGetDatum(start);
	bounds[1] = TimestampTzGetDatum(end);
	PG_RETURN_ARRAYTYPE_P(construct_array(bounds, 2, TIMESTAMPTZOID,
										  sizeof(TimestampTz), FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
}
