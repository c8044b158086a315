/*-------------------------------------------------------------------------
 *
 * admission.h
 *	  Admissions: analytics.admit() and the settlement of an admission by
 *	  its log.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_ADMISSION_H
#define ANALYTICS_ADMISSION_H

#include "budget.h"

extern bool admission_settle(Datum ident, int64 admission_id, int64 log_id,
							 BudgetHeld *held);

#endif							/* ANALYTICS_ADMISSION_H */
