/*-------------------------------------------------------------------------
 *
 * ingest_provider.h
 *	  What the provider mappings of JSON ingest share: a function of
 *	  (request, response, latency), the model, an error response.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_INGEST_PROVIDER_H
#define ANALYTICS_INGEST_PROVIDER_H

#include "fmgr.h"

#include "ingest_json.h"
#include "ingest_payload.h"

extern void ingest_provider_request(IngestRow *row, IngestJsonDoc *docs,
									const char *user_path);
extern void ingest_provider_model(IngestRow *row, struct json_object *request,
								  struct json_object *response, bool response_first);
extern bool ingest_provider_error(IngestRow *row, struct json_object *request,
								  struct json_object *response);
extern Datum ingest_provider_call(FunctionCallInfo fcinfo, Oid type,
								  IngestJsonReader fill, const char *function);

#endif							/* ANALYTICS_INGEST_PROVIDER_H */
