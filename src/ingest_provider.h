/*-------------------------------------------------------------------------
 *
 * ingest_provider.h
 *	  What the provider mappings of JSON ingest share: a function of
 *	  (request, response, latency), the request, the model, an error response.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_INGEST_PROVIDER_H
#define ANALYTICS_INGEST_PROVIDER_H

#include "fmgr.h"

#include "ingest_json.h"
#include "ingest_payload.h"

extern bool ingest_provider_begin(IngestRow *row, IngestJsonDoc *docs,
								  const char *user_path);
extern Datum ingest_provider_call(FunctionCallInfo fcinfo, Oid type,
								  IngestJsonReader fill, const char *function);

#endif							/* ANALYTICS_INGEST_PROVIDER_H */
