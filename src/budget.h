/*-------------------------------------------------------------------------
 *
 * budget.h
 *	  Budget enforcement in the write path of analytics.logs, and the
 *	  calendar arithmetic of budget periods.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_BUDGET_H
#define ANALYTICS_BUDGET_H

#include "datatype/timestamp.h"
#include "utils/numeric.h"

/* SQLSTATEs of rejected logs (class UA: usage analytics). */
#define ERRCODE_ANALYTICS_PERIOD_BUDGET	MAKE_SQLSTATE('U', 'A', '0', '0', '1')
#define ERRCODE_ANALYTICS_TOTAL_BUDGET	MAKE_SQLSTATE('U', 'A', '0', '0', '2')
#define ERRCODE_ANALYTICS_BLOCKED		MAKE_SQLSTATE('U', 'A', '0', '0', '3')

/*
 * A customer's budget settings, as the insert trigger's customer cache holds
 * them (logs.c): those of the last committed change.  Numerics live in the
 * cache's memory.
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

extern char budget_duration_code(const char *duration, const char *field);
extern void budget_period_compute(TimestampTz anchor, char duration,
								  TimestampTz at, text *timezone,
								  TimestampTz *start, TimestampTz *end);

#endif							/* ANALYTICS_BUDGET_H */
