/*-------------------------------------------------------------------------
 *
 * customers.h
 *	  Customers as the write path sees them: their settings, from a
 *	  per-session cache kept right by the change protocol.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_CUSTOMERS_H
#define ANALYTICS_CUSTOMERS_H

#include "datatype/timestamp.h"
#include "utils/numeric.h"

#include "periods.h"

/*
 * A customer's settings, as the session's customer cache holds them: those
 * of the last committed change.  Numerics live in the cache's memory.
 */
typedef struct CustomerSettings
{
	bool		blocked;
	bool		has_period_budget;
	Numeric		period_budget;
	const PeriodDuration *duration; /* budget_duration */
	TimestampTz period_start;
	bool		has_total_budget;
	Numeric		total_budget;
	Numeric		markup;			/* markup_percentage */
	int			nthresholds;	/* alert_thresholds: distinct, ascending */
	Numeric    *thresholds;
} CustomerSettings;

/* The names of the settings columns (customers.c). */
#define CUSTOMERS_SETTINGS 7
extern const char *const customers_setting_columns[CUSTOMERS_SETTINGS];

extern void customers_init(void);
extern const CustomerSettings *customers_settings(const char *ident_str,
												  Datum ident, Oid customers);
extern void customers_changing(void);
extern void customers_relcache_invalidate(Oid relid);

#endif							/* ANALYTICS_CUSTOMERS_H */
