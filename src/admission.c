/*-------------------------------------------------------------------------
 *
 * admission.c
 *	  Admissions (SPEC section 10): analytics.admit(), which a proxy calls
 *	  before it calls the model, and the settlement of an admission by the
 *	  log that carries its id.
 *
 * admit() serializes the admissions of one customer on the customer's row
 * (SELECT ... FOR NO KEY UPDATE: the row lock of an UPDATE of the customer,
 * which is also what a change of its budget or limits takes first, so an
 * admission reads the settings of the last committed change).  Under that
 * lock it reads the clock, so every admission committed before it has an
 * earlier created_at, and checks, in order:
 *   - blocked (UA003);
 *   - the rate limits: at most rate_limit admissions, and token_rate_limit
 *     estimated tokens, in the 60 seconds up to now (UA004, whose DETAIL
 *     says when to retry); an estimate above token_rate_limit could never
 *     pass and is refused as bad input (22023);
 *   - then it records the admission and holds its estimate against the
 *     budgets, in the customer's budget counters (budget_admit(): billed
 *     spend plus the estimates already held at or over a budget is UA001 or
 *     UA002, which rolls the admission back).
 * Every error writes nothing.  A customer unknown so far is created, as a
 * log naming it would.
 *
 * Settlement (admission_settle(), called by the insert trigger of logs): the
 * log's admission_id names an admission of the log's customer, open (not
 * settled, not expired): it is marked settled by the log, in the log's
 * transaction, under the admission's row lock, so of two logs naming it one
 * settles it and the other finds it settled (22023).  An expired admission
 * leaves the log to be checked like one without.  The estimate stops being
 * held in budget_check_log().
 *
 * Admissions are forgotten by admit(), for its customer: settled ones once
 * they leave the rate window; open ones stay until purge_logs() removes
 * them with the logs of their time.
 *
 * Locks, in the lock order of src/README.md: the customer's row (2) and its
 * counter rows (8) for admit(); the admission's row before the counter rows
 * for a settling log.  Only rows of one customer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "admission.h"
#include "analytics.h"
#include "budget.h"
#include "logs.h"
#include "periods.h"
#include "privs.h"
#include "shards.h"

PG_FUNCTION_INFO_V1(admission_admit);

/* An estimate is bounded like a log's cost (SPEC section 14). */
#define ADMISSION_MAX_COST		1000000
/* Settled admissions are kept for the rate window. */
#define ADMISSION_WINDOW		"60 seconds"

static SPIPlanPtr customer_lock_plan = NULL;
static SPIPlanPtr customer_create_plan = NULL;
static SPIPlanPtr rate_plan = NULL;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr forget_plan = NULL;
static SPIPlanPtr settle_plan = NULL;
static SPIPlanPtr settle_why_plan = NULL;

static void
admission_bad_argument(const char *field, const char *problem, const char *got)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"%s\": %s", field, problem),
			 errdetail("Got %s. Nothing was admitted.", got)));
}

/*
 * admission_check_estimate
 *		estimated_cost: 0 to 1,000,000 USD, finite; estimated_tokens >= 0.
 */
static void
admission_check_estimate(Numeric cost, bool cost_null, int32 tokens, bool tokens_null)
{
	if (cost_null)
		admission_bad_argument("estimated_cost", "must be a number from 0 to 1000000", "null");
	if (numeric_is_nan(cost) || numeric_is_inf(cost) ||
		DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(cost),
										 NumericGetDatum(int64_to_numeric(0)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_gt, NumericGetDatum(cost),
										 NumericGetDatum(int64_to_numeric(ADMISSION_MAX_COST)))))
		admission_bad_argument("estimated_cost", "must be a number from 0 to 1000000",
							   pnstrdup(DatumGetCString(DirectFunctionCall1(numeric_out,
																			NumericGetDatum(cost))),
										100));
	if (tokens_null)
		admission_bad_argument("estimated_tokens", "must be an integer of at least 0", "null");
	if (tokens < 0)
		admission_bad_argument("estimated_tokens", "must be an integer of at least 0",
							   psprintf("%d", tokens));
}

/*
 * admission_lock_customer
 *		Lock the customer's row (creating the customer when unknown) and
 *		read its settings into *settings and its limits; false limits are
 *		returned as 0.  Inside SPI.
 */
static void
admission_lock_customer(Datum ident, CustomerSettings *settings,
						int32 *rate_limit, int32 *token_rate_limit)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {ident};
	SPIPlanPtr	lock = analytics_prepare(&customer_lock_plan,
										 "SELECT blocked, period_budget, budget_duration, period_start, "
										 "total_budget, markup_percentage, rate_limit, token_rate_limit "
										 "FROM analytics.customers "
										 "WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
										 "FOR NO KEY UPDATE",
										 1, argtypes);
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (SPI_execute_plan(lock, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the customer");
	if (SPI_processed == 0)
	{
		if (SPI_execute_plan(analytics_prepare(&customer_create_plan,
											   "INSERT INTO analytics.customers (customer_identifier) "
											   "VALUES ($1) ON CONFLICT (customer_identifier) DO NOTHING",
											   1, argtypes),
							 values, NULL, false, 0) != SPI_OK_INSERT ||
			SPI_execute_plan(lock, values, NULL, false, 0) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not create the customer");
	}
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	d = SPI_getbinval(row, desc, 1, &isnull);
	settings->blocked = !isnull && DatumGetBool(d);
	d = SPI_getbinval(row, desc, 2, &isnull);
	settings->has_period_budget = !isnull;
	settings->period_budget = isnull ? NULL : DatumGetNumeric(d);
	d = SPI_getbinval(row, desc, 3, &isnull);
	settings->duration = periods_duration(isnull ? "monthly" : TextDatumGetCString(d),
										  "budget_duration");
	d = SPI_getbinval(row, desc, 4, &isnull);
	settings->period_start = isnull ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(row, desc, 5, &isnull);
	settings->has_total_budget = !isnull;
	settings->total_budget = isnull ? NULL : DatumGetNumeric(d);
	d = SPI_getbinval(row, desc, 6, &isnull);
	settings->markup = isnull ? int64_to_numeric(0) : DatumGetNumeric(d);
	d = SPI_getbinval(row, desc, 7, &isnull);
	*rate_limit = isnull ? 0 : DatumGetInt32(d);
	d = SPI_getbinval(row, desc, 8, &isnull);
	*token_rate_limit = isnull ? 0 : DatumGetInt32(d);
}

/*
 * admission_check_rate
 *		UA004 when one more admission of `tokens` estimated tokens would go
 *		past the customer's rate_limit or token_rate_limit (0: none) in the
 *		60 seconds up to now.  Inside SPI, under the customer's row lock.
 */
static void
admission_check_rate(const char *customer, Datum ident, int32 rate_limit,
					 int32 token_rate_limit, int32 tokens, TimestampTz now)
{
	Oid			argtypes[5] = {TEXTOID, INT4OID, INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	int64		requests;
	int64		window_tokens;
	TimestampTz retry_at;
	long		secs;
	int			usecs;
	bool		by_requests;

	if (rate_limit == 0 && token_rate_limit == 0)
		return;
	if (token_rate_limit != 0 && tokens > token_rate_limit)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for \"estimated_tokens\": more than the token_rate_limit of customer \"%s\"",
						customer),
				 errdetail("Got %d; its token_rate_limit is %d tokens per minute, so it could never be admitted. Nothing was admitted.",
						   tokens, token_rate_limit)));

	values[0] = ident;
	values[1] = Int32GetDatum(rate_limit);
	values[2] = Int32GetDatum(token_rate_limit);
	values[3] = TimestampTzGetDatum(now);
	values[4] = Int32GetDatum(tokens);
	if (rate_limit == 0)
		nulls[1] = 'n';
	if (token_rate_limit == 0)
		nulls[2] = 'n';
	if (SPI_execute_plan(analytics_prepare(&rate_plan,
										   "SELECT requests, tokens, retry_at "
										   "FROM analytics._admission_rate($1, $2, $3, $4, $5)",
										   5, argtypes),
						 values, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the rate state of the customer");
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	retry_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
	if (isnull)
		return;
	requests = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	window_tokens = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	by_requests = rate_limit != 0 && requests >= rate_limit;
	TimestampDifference(now, retry_at, &secs, &usecs);
	ereport(ERROR,
			(errcode(ERRCODE_ANALYTICS_RATE_LIMIT),
			 by_requests ?
			 errmsg("customer \"%s\" is over its rate_limit of %d requests per minute",
					customer, rate_limit) :
			 errmsg("customer \"%s\" is over its token_rate_limit of %d tokens per minute",
					customer, token_rate_limit),
			 errdetail("Retry after %ld.%03d s (at %s): %lld admissions and %lld estimated tokens in the last 60 seconds. Nothing was admitted.",
					   secs, usecs / 1000, timestamptz_to_str(retry_at),
					   (long long) requests, (long long) window_tokens),
			 errhint("Wait until then, or raise rate_limit or token_rate_limit with analytics.upsert_customer().")));
}

/*
 * admission_admit_as_owner
 *		analytics.admit(customer_identifier, estimated_cost, estimated_tokens)
 *		with the extension owner's rights: see the file header.
 */
static Datum
admission_admit_as_owner(PG_FUNCTION_ARGS)
{
	Datum		ident;
	char	   *customer;
	Numeric		estimate;
	int32		tokens;
	CustomerSettings settings;
	int32		rate_limit;
	int32		token_rate_limit;
	TimestampTz now;
	TimestampTz expires;
	int64		id;
	bool		isnull;
	Oid			argtypes[6] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, NUMERICOID, INT4OID, INT8OID};
	Datum		values[6];

	analytics_require_current("analytics.admit()");
	if (PG_ARGISNULL(0))
		admission_bad_argument("customer_identifier", "must be 1 to 255 characters long", "null");
	ident = PG_GETARG_DATUM(0);
	logs_check_customer_identifier(ident);
	admission_check_estimate(PG_ARGISNULL(1) ? NULL : PG_GETARG_NUMERIC(1), PG_ARGISNULL(1),
							 PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2), PG_ARGISNULL(2));
	estimate = PG_GETARG_NUMERIC(1);
	tokens = PG_GETARG_INT32(2);
	customer = TextDatumGetCString(ident);

	/*
	 * The window and the counters are read under the customer's row lock
	 * with the statement's fresh snapshot; a transaction snapshot would miss
	 * the admissions committed while it waited.
	 */
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("analytics.admit() runs only at the READ COMMITTED isolation level"),
				 errhint("Call it in its own transaction, or in one at READ COMMITTED.")));

	SPI_connect();
	admission_lock_customer(ident, &settings, &rate_limit, &token_rate_limit);
	now = GetCurrentTimestamp();
	expires = now + (int64) analytics_admission_timeout * USECS_PER_SEC;

	if (settings.blocked && analytics_budget_enforcement != BUDGET_ENFORCEMENT_RECORD)
		budget_reject_blocked(customer, true);
	admission_check_rate(customer, ident, rate_limit, token_rate_limit, tokens, now);

	/*
	 * On a Citus cluster the id carries the node it was drawn on: each
	 * node's sequence counts on its own (src/shards.c).
	 */
	values[0] = ident;
	values[1] = TimestampTzGetDatum(now);
	values[2] = TimestampTzGetDatum(expires);
	values[3] = NumericGetDatum(estimate);
	values[4] = Int32GetDatum(tokens);
	values[5] = Int64GetDatum(shards_logs_distributed() ?
							  shards_next_id("admission_ids") :
							  nextval_internal(shards_table("admission_ids"), true));
	if (SPI_execute_plan(analytics_prepare(&insert_plan,
										   "INSERT INTO analytics.admissions "
										   "(customer_identifier, created_at, expires_at, estimated_cost, estimated_tokens, id) "
										   "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
										   6, argtypes),
						 values, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not record the admission");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	budget_admit(customer, &settings, now, expires, estimate);

	/*
	 * Forget the settled admissions the rate window no longer counts (a log
	 * naming one is refused as unknown instead of as settled: 22023 both).
	 * Open ones stay, however old, so that a late log naming one is checked
	 * like a log without one; purge_logs() removes them with the logs.
	 */
	if (SPI_execute_plan(analytics_prepare(&forget_plan,
										   "DELETE FROM analytics.admissions "
										   "WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
										   "AND settled_by IS NOT NULL AND created_at OPERATOR(pg_catalog.<=) "
										   "($2 OPERATOR(pg_catalog.-) interval '" ADMISSION_WINDOW "')",
										   2, argtypes),
						 values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget old admissions");

	SPI_finish();
	PG_RETURN_INT64(id);
}

/*
 * admission_admit
 *		SQL: analytics.admit(customer_identifier text, estimated_cost
 *		numeric DEFAULT 0, estimated_tokens integer DEFAULT 0) RETURNS
 *		bigint.  Its work runs with the extension owner's rights (a writer
 *		may call it but not write admissions or counters).
 */
Datum
admission_admit(PG_FUNCTION_ARGS)
{
	return privs_call_as_owner(admission_admit_as_owner, fcinfo);
}

/*
 * admission_settle
 *		Settle admission `admission_id` of the customer by the log `log_id`:
 *		ADMISSION_SETTLED, with the admission's time, expiry and estimate in
 *		*held, when it was open; ADMISSION_EXPIRED when it has expired (the
 *		log is then checked like one without); ADMISSION_TAKEN when another
 *		log settled it (the caller raises admission_taken_error(), unless
 *		that log is this one's request recorded meanwhile);
 *		ADMISSION_UNKNOWN when there is no such admission of the customer
 *		(admission_unknown_error()).  Runs inside the insert trigger, as the
 *		owner.
 */
AdmissionSettlement
admission_settle(Datum ident, int64 admission_id, int64 log_id, BudgetHeld *held)
{
	Oid			argtypes[4] = {TEXTOID, INT8OID, INT8OID, TIMESTAMPTZOID};
	Datum		values[4];
	TimestampTz now = GetCurrentTimestamp();
	bool		isnull;
	bool		settled;

	values[0] = ident;
	values[1] = Int64GetDatum(admission_id);
	values[2] = Int64GetDatum(log_id);
	values[3] = TimestampTzGetDatum(now);

	SPI_connect();
	if (SPI_execute_plan(analytics_prepare(&settle_plan,
										   "UPDATE analytics.admissions "
										   "SET settled_by = $3, settled_at = $4 "
										   "WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
										   "AND id OPERATOR(pg_catalog.=) $2 "
										   "AND settled_by IS NULL "
										   "AND expires_at OPERATOR(pg_catalog.>) $4 "
										   "RETURNING created_at, estimated_cost, expires_at",
										   4, argtypes),
						 values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not settle the admission");
	if (SPI_processed == 1)
	{
		held->created_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc, 1, &isnull));
		held->expires_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc, 3, &isnull));
		held->estimated_cost = DatumGetNumeric(SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
																			   SPI_tuptable->tupdesc, 2,
																			   &isnull),
																 false, -1));
		SPI_finish();
		return ADMISSION_SETTLED;
	}

	/* Not open: say why. */
	if (SPI_execute_plan(analytics_prepare(&settle_why_plan,
										   "SELECT settled_by IS NOT NULL FROM analytics.admissions "
										   "WHERE customer_identifier OPERATOR(pg_catalog.=) $1 "
										   "AND id OPERATOR(pg_catalog.=) $2",
										   2, argtypes),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the admission");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return ADMISSION_UNKNOWN;
	}
	settled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return settled ? ADMISSION_TAKEN : ADMISSION_EXPIRED;
}

/*
 * admission_unknown_error
 *		22023: the admission a log names is unknown, or another customer's.
 */
void
admission_unknown_error(Datum ident, int64 admission_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"admission_id\": no admission %lld of customer \"%s\"",
					(long long) admission_id, TextDatumGetCString(ident)),
			 errdetail("An admission is settled by a log of the customer it was made for, once. The log was not recorded."),
			 errhint("Pass the id analytics.admit() returned for this customer, or leave admission_id out.")));
}

/*
 * admission_taken_error
 *		22023: the admission a log names was settled by another log.
 */
void
admission_taken_error(Datum ident, int64 admission_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for \"admission_id\": admission %lld of customer \"%s\" is already settled",
					(long long) admission_id, TextDatumGetCString(ident)),
			 errdetail("An admission is settled by one log. The log was not recorded."),
			 errhint("Give each request its own admission; retry an ingest with the same request_id instead.")));
}
