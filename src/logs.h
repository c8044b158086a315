/*-------------------------------------------------------------------------
 *
 * logs.h
 *	  The write path of analytics.logs: validation, cost, customers, guards.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_LOGS_H
#define ANALYTICS_LOGS_H

/*
 * Set (inside PG_TRY, reset in PG_FINALLY) by the functions that may remove
 * logs or customers: purge_logs() and delete_customer().  The guard
 * triggers reject DELETE and TRUNCATE of analytics.logs and
 * analytics.customers while it is false.
 */
extern bool logs_delete_allowed;

extern void logs_init(void);
extern void logs_forget_customers(void);
extern void logs_customers_changing(void);

#endif							/* ANALYTICS_LOGS_H */
