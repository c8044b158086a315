/*-------------------------------------------------------------------------
 *
 * periods.h
 *	  Budget periods: the durations a customer may choose, the calendar
 *	  arithmetic of a period, and the time zone periods are computed in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_PERIODS_H
#define ANALYTICS_PERIODS_H

#include "datatype/timestamp.h"

/*
 * A budget duration: one row of the table in periods.c.  A period lasts
 * either a number of wall-clock days or a number of calendar months.
 */
typedef struct PeriodDuration
{
	const char *name;			/* as stored in customers.budget_duration */
	int			days;			/* length in days, or 0 */
	int			months;			/* length in months, or 0 */
} PeriodDuration;

extern const PeriodDuration *periods_duration(const char *name,
											  const char *field);
extern void periods_compute(TimestampTz anchor, const PeriodDuration *duration,
							TimestampTz at, text *timezone,
							TimestampTz *start, TimestampTz *end);
extern text *periods_timezone(void);

#endif							/* ANALYTICS_PERIODS_H */
