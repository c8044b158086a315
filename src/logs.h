/*-------------------------------------------------------------------------
 *
 * logs.h
 *	  The triggers of analytics.logs: the insert trigger (field checks and
 *	  the write path) and the guard that keeps logs facts.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_LOGS_H
#define ANALYTICS_LOGS_H

/* 22023 unless the text Datum is 1 to 255 characters long. */
extern void logs_check_customer_identifier(Datum ident);

#endif							/* ANALYTICS_LOGS_H */
