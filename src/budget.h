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

/*
 * A customer's budget settings, as read (under a FOR KEY SHARE lock on the
 * customer's row) by the insert trigger.  Numerics live in the memory of the
 * transaction's customer cache.
 */
typedef struct CustomerBudget
{
	bool		blocked;
	bool		has_period_budget;
	Numeric		period_budget;
	char		duration;		/* 'd'aily, 'w'eekly, 'm'onthly, 'y'early */
	TimestampTz period_start;
	bool		has_total_budget;
	Numeric		total_budget;
	Numeric		markup;			/* markup_percentage */
} CustomerBudget;

/* True when inserting a log of this customer needs budget_check_log(). */
static inline bool
budget_applies(const CustomerBudget *budget)
{
	return budget->blocked || budget->has_period_budget ||
		budget->has_total_budget;
}

extern void budget_check_log(const char *customer,
							 const CustomerBudget *budget,
							 TimestampTz created_at, Numeric cost);

#endif							/* ANALYTICS_BUDGET_H */
