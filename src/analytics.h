/*-------------------------------------------------------------------------
 *
 * analytics.h
 *	  Settings (GUCs) shared by the modules of the analytics extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_H
#define ANALYTICS_H

/* analytics.budget_enforcement */
typedef enum BudgetEnforcement
{
	BUDGET_ENFORCEMENT_REJECT,	/* reject logs over budget (default) */
	BUDGET_ENFORCEMENT_RECORD	/* accept and count, never reject */
} BudgetEnforcement;

extern int	analytics_budget_enforcement;

/* analytics.rollup_interval, in milliseconds */
extern int	analytics_rollup_interval;

/* analytics.worker_enabled: run the rollup worker on this node */
extern bool analytics_worker_enabled;

#endif							/* ANALYTICS_H */
