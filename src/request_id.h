/*-------------------------------------------------------------------------
 *
 * request_id.h
 *	  Idempotent logging: the log of a (customer, request_id), found by the
 *	  insert trigger and handed to the ingest functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_REQUEST_ID_H
#define ANALYTICS_REQUEST_ID_H

#include "utils/relcache.h"

/* The insert trigger: is there a log of this request in heap already? */
extern bool request_id_find(Relation heap, Datum customer, bool customer_null,
							Datum request_id, int64 *id);

/* What the trigger found, for the ingest function that ran the INSERT. */
extern void request_id_forget(void);
extern void request_id_remember(int64 id);
extern bool request_id_recall(int64 *id);

/* The ingest functions on a Citus coordinator (inside SPI). */
extern bool request_id_lookup(Datum customer, bool customer_null, Datum request_id,
							  int64 *id);

#endif							/* ANALYTICS_REQUEST_ID_H */
