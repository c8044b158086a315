/*-------------------------------------------------------------------------
 *
 * analytics.c
 *	  Entry point of the analytics extension: _PG_init defines the
 *	  analytics.* settings and, when the library is preloaded, registers the
 *	  rollup worker.  Everything else works without preloading.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "analytics.h"
#include "logs.h"
#include "worker.h"

PG_MODULE_MAGIC;

int			analytics_budget_enforcement = BUDGET_ENFORCEMENT_REJECT;
int			analytics_rollup_interval = 500;
bool		analytics_worker_enabled = true;
int			analytics_max_clock_skew = 300;

static const struct config_enum_entry budget_enforcement_options[] = {
	{"reject", BUDGET_ENFORCEMENT_REJECT, false},
	{"record", BUDGET_ENFORCEMENT_RECORD, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/*
 * _PG_init
 *		Define the settings; register the worker only at preload time.
 */
void
_PG_init(void)
{
	DefineCustomEnumVariable("analytics.budget_enforcement",
							 "Whether logs over a customer's budget are rejected or only recorded.",
							 "reject (the default) rejects them with SQLSTATE UA001-UA003; "
							 "record accepts and counts every log, for importing history.",
							 &analytics_budget_enforcement,
							 BUDGET_ENFORCEMENT_REJECT,
							 budget_enforcement_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("analytics.rollup_interval",
							"Time between the starts of two passes of the rollup worker.",
							NULL,
							&analytics_rollup_interval,
							500,
							10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("analytics.max_clock_skew",
							"How far past the current time a log's created_at may be.",
							"Logs created later than now() plus this are rejected (SQLSTATE 22023).",
							&analytics_max_clock_skew,
							300,
							0, 365 * 24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("analytics.worker_enabled",
							 "Whether the rollup worker runs on this server.",
							 "Turn it off on every node but one when the data is sharded.",
							 &analytics_worker_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("analytics");

	logs_init();

	if (process_shared_preload_libraries_in_progress)
		worker_register_launcher();
}

/*
 * analytics_prepare
 *		Prepare a parameterized statement once per backend (SPI_prepare +
 *		SPI_keepplan) and remember it in *slot.  Must be called inside SPI.
 *		The plan cache replans it when the objects it uses change.
 */
SPIPlanPtr
analytics_prepare(SPIPlanPtr *slot, const char *sql, int nargs,
				  const Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}
