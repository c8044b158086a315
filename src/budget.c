/*-------------------------------------------------------------------------
 *
 * budget.c
 *	  Budget enforcement for new logs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "analytics.h"
#include "budget.h"

/*
 * budget_check_log
 *		Reject the log of a blocked customer (SQLSTATE UA003).
 *
 * The caller holds a FOR KEY SHARE lock on the customer's row.
 */
void
budget_check_log(const char *customer, const CustomerBudget *budget,
				 TimestampTz created_at, Numeric cost)
{
	if (analytics_budget_enforcement == BUDGET_ENFORCEMENT_RECORD)
		return;

	if (budget->blocked)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('U', 'A', '0', '0', '3')),
				 errmsg("customer \"%s\" is blocked", customer),
				 errdetail("Logs of a blocked customer are rejected."),
				 errhint("Set analytics.customers.blocked to false to accept them again.")));
}
