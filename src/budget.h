/*-------------------------------------------------------------------------
 *
 * budget.h
 *	  Budget enforcement in the write path of analytics.logs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_BUDGET_H
#define ANALYTICS_BUDGET_H

#include "datatype/timestamp.h"
#include "utils/numeric.h"

#include "customers.h"

/* SQLSTATEs of rejected logs (class UA: usage analytics). */
#define ERRCODE_ANALYTICS_PERIOD_BUDGET	MAKE_SQLSTATE('U', 'A', '0', '0', '1')
#define ERRCODE_ANALYTICS_TOTAL_BUDGET	MAKE_SQLSTATE('U', 'A', '0', '0', '2')
#define ERRCODE_ANALYTICS_BLOCKED		MAKE_SQLSTATE('U', 'A', '0', '0', '3')
#define ERRCODE_ANALYTICS_RATE_LIMIT	MAKE_SQLSTATE('U', 'A', '0', '0', '4')

/* The admission a log settles (admission.c): when it was made and expires, its estimate. */
typedef struct BudgetHeld
{
	TimestampTz created_at;
	TimestampTz expires_at;
	Numeric		estimated_cost;
} BudgetHeld;

/* True when inserting a log of this customer needs budget_check_log(). */
static inline bool
budget_applies(const CustomerSettings *settings)
{
	return settings->blocked || settings->has_period_budget ||
		settings->has_total_budget;
}

extern void budget_check_log(const char *customer,
							 const CustomerSettings *settings,
							 TimestampTz created_at, Numeric cost,
							 const BudgetHeld *held);
extern void budget_reject_blocked(const char *customer, bool admission) pg_attribute_noreturn();
extern void budget_admit(const char *customer, const CustomerSettings *settings,
						 TimestampTz now, TimestampTz expires, Numeric estimate);

#endif							/* ANALYTICS_BUDGET_H */
