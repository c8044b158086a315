/*-------------------------------------------------------------------------
 *
 * views.h
 *	  C behind the views of analytics: budget period arithmetic.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_VIEWS_H
#define ANALYTICS_VIEWS_H

#include "datatype/timestamp.h"

extern void views_current_period(TimestampTz anchor, const char *duration,
								 TimestampTz as_of, const char *zone,
								 TimestampTz *start, TimestampTz *end);

#endif							/* ANALYTICS_VIEWS_H */
