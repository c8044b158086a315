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

/* True when inserting a log of this customer needs budget_check_log(). */
static inline bool
budget_applies(const CustomerSettings *settings)
{
	return settings->blocked || settings->has_period_budget ||
		settings->has_total_budget;
}

extern void budget_check_log(const char *customer,
							 const CustomerSettings *settings,
							 TimestampTz created_at, Numeric cost);

#endif							/* ANALYTICS_BUDGET_H */
