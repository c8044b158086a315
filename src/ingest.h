/*-------------------------------------------------------------------------
 *
 * ingest.h
 *	  JSON ingest of logs (json-c glue): analytics.ingest(),
 *	  analytics.ingest_openai() and analytics.ingest_batch().
 *
 * The SQL-callable functions are declared by PG_FUNCTION_INFO_V1 in
 * ingest.c; nothing else of the module is used by the other modules.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_INGEST_H
#define ANALYTICS_INGEST_H

#include "fmgr.h"

extern Datum ingest_text(PG_FUNCTION_ARGS);
extern Datum ingest_json(PG_FUNCTION_ARGS);
extern Datum ingest_jsonb(PG_FUNCTION_ARGS);
extern Datum ingest_openai_text(PG_FUNCTION_ARGS);
extern Datum ingest_openai_json(PG_FUNCTION_ARGS);
extern Datum ingest_openai_jsonb(PG_FUNCTION_ARGS);
extern Datum ingest_batch(PG_FUNCTION_ARGS);
extern Datum ingest_batch_rows(PG_FUNCTION_ARGS);

#endif							/* ANALYTICS_INGEST_H */
