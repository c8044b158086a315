/*-------------------------------------------------------------------------
 *
 * analytics.h
 *	  Settings (GUCs) and helpers shared by the modules of the analytics
 *	  extension.
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

/* analytics.max_clock_skew, in seconds: how far ahead created_at may be */
extern int	analytics_max_clock_skew;

/* analytics.admission_timeout, in seconds: how long an admission is held */
extern int	analytics_admission_timeout;

/* analytics.worker_enabled: run the rollup worker on this node */
extern bool analytics_worker_enabled;

/* analytics.max_workers: rollup workers running at once, for all databases */
extern int	analytics_max_workers;

/* analytics.databases: the databases served (empty: all with the extension) */
extern char *analytics_databases;

/*
 * Set (inside PG_TRY, reset in PG_FINALLY and at transaction end) by the
 * functions that may remove logs or customers: purge_logs() and
 * delete_customer().  The guard triggers reject DELETE and TRUNCATE of
 * analytics.logs and analytics.customers while it is false; nothing
 * reachable from SQL sets it.
 */
extern bool analytics_delete_allowed;

/* A hash table keyed by C strings (the entry's first field); see analytics.c. */
struct HTAB;
extern struct HTAB *analytics_string_cache_create(const char *name,
												  Size entrysize,
												  MemoryContext context);

/* Prepare a plan once per backend and keep it; see analytics.c. */
struct _SPI_plan;
extern struct _SPI_plan *analytics_prepare(struct _SPI_plan **slot,
										   const char *sql, int nargs,
										   const Oid *argtypes);

/*
 * The version gate: the extension's version in this database's catalog, and
 * a check that it equals the library's (ANALYTICS_VERSION); see analytics.c.
 */
extern char *analytics_installed_version(void);
extern void analytics_require_current(const char *what);

#endif							/* ANALYTICS_H */
