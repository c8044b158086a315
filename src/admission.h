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

/* What admission_settle() found. */
typedef enum AdmissionSettlement
{
	ADMISSION_SETTLED,			/* open: settled by this log */
	ADMISSION_EXPIRED,			/* expired: the log is checked like one without */
	ADMISSION_TAKEN,			/* settled by another log */
	ADMISSION_UNKNOWN			/* none of this customer */
} AdmissionSettlement;

extern AdmissionSettlement admission_settle(Datum ident, int64 admission_id,
											int64 log_id, BudgetHeld *held);
extern void admission_taken_error(Datum ident, int64 admission_id) pg_attribute_noreturn();
extern void admission_unknown_error(Datum ident, int64 admission_id) pg_attribute_noreturn();

#endif							/* ANALYTICS_ADMISSION_H */
