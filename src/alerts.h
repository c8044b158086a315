/*-------------------------------------------------------------------------
 *
 * alerts.h
 *	  Budget alerts: the events of analytics.budget_events and their
 *	  NOTIFY analytics_budget.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_ALERTS_H
#define ANALYTICS_ALERTS_H

#include "datatype/timestamp.h"
#include "utils/numeric.h"

#include "customers.h"

/* The channel every budget event is sent on. */
#define ALERTS_CHANNEL "analytics_budget"

extern void alerts_spend_reached(Datum ident, const CustomerSettings *settings,
								 bool lifetime, TimestampTz start,
								 TimestampTz end, Numeric billed,
								 Numeric budget, Datum alerted);
extern void alerts_customer_blocked(Datum ident);
extern int	alerts_forward(void);

#endif							/* ANALYTICS_ALERTS_H */
