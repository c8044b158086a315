/*-------------------------------------------------------------------------
 *
 * request_id.c
 *	  Idempotent logging (SPEC section 10): finding the log of a
 *	  (customer, request_id) before a new one is written, and handing its
 *	  id to the ingest function that asked.
 *
 * The unique index on analytics.logs (customer_identifier, request_id)
 * NULLS NOT DISTINCT WHERE request_id IS NOT NULL holds at most one log per
 * request.  The insert trigger (logs.c) probes it for every log that
 * carries a request_id, after the field checks and before anything with
 * side effects (the customer, budget counters, the id on a Citus node):
 * request_id_find() scans it with a dirty snapshot, which sees the
 * transaction's own rows (even those of the same statement) and the rows of
 * transactions in progress.  A row of another transaction in progress
 * (being inserted, or deleted by purge_logs/delete_customer) is waited for
 * with XactLockTableWait and the probe starts again; a row found then is
 * the request's log, and the trigger skips the new one.
 *
 * Two inserters that both probe before either has inserted both go on;
 * the index settles them: the second waits in the index for the first and
 * gets 23505 when it commits (its trigger's budget charge rolls back with
 * the statement).  The ingest functions turn that into "return the
 * existing id" (ingest_payload.c).  Under REPEATABLE READ or SERIALIZABLE a
 * log that committed after the transaction's snapshot was taken raises
 * 40001, as INSERT ... ON CONFLICT DO NOTHING does.
 *
 * The trigger remembers the id it found (request_id_remember) for the
 * ingest function whose INSERT it skipped; on a Citus coordinator the
 * trigger ran on the shard's node, and the function reads the id with
 * request_id_lookup() instead.
 *
 * Locking: the probe takes no lock of its own (the index is opened under
 * the INSERT's RowExclusiveLock); the wait is on the other transaction's
 * xid (src/README.md, lock order).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "analytics.h"
#include "privs.h"
#include "request_id.h"

/* The id found by the last probe of this backend's insert trigger. */
static bool request_id_found = false;
static int64 request_id_found_id;

static SPIPlanPtr request_id_lookup_plan = NULL;

/*
 * request_id_index
 *		The unique index of heap (analytics.logs, or on a Citus node its
 *		shard) on (customer_identifier, request_id), found by its columns:
 *		on a shard it has another name.  Sets the column numbers of the
 *		customer and of id.
 */
static Oid
request_id_index(Relation heap, AttrNumber *id_attnum)
{
	TupleDesc	tupdesc = RelationGetDescr(heap);
	AttrNumber	customer_attnum = SPI_fnumber(tupdesc, "customer_identifier");
	AttrNumber	request_attnum = SPI_fnumber(tupdesc, "request_id");
	List	   *indexes = RelationGetIndexList(heap);
	ListCell   *lc;
	Oid			found = InvalidOid;

	*id_attnum = SPI_fnumber(tupdesc, "id");
	if (customer_attnum <= 0 || request_attnum <= 0 || *id_attnum <= 0)
		elog(ERROR, "\"%s\" is not a logs table", RelationGetRelationName(heap));
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (form->indisunique && form->indisvalid && form->indnkeyatts == 2 &&
			form->indkey.values[0] == customer_attnum &&
			form->indkey.values[1] == request_attnum)
			found = RelationGetRelid(index);
		index_close(index, AccessShareLock);
		if (OidIsValid(found))
			break;
	}
	list_free(indexes);
	if (!OidIsValid(found))
		elog(ERROR, "\"%s\" has no unique index on (customer_identifier, request_id)",
			 RelationGetRelationName(heap));
	return found;
}

/*
 * request_id_find
 *		Whether heap holds the log of (customer, request_id) that this
 *		transaction may count as recorded: its own, or a committed one.
 *		Waits for a transaction in progress that inserts or deletes such a
 *		log, then looks again.  Sets *id to the log's id when found.  Under
 *		REPEATABLE READ a log committed after the snapshot raises 40001.
 */
bool
request_id_find(Relation heap, Datum customer, bool customer_null,
				Datum request_id, int64 *id)
{
	AttrNumber	id_attnum;
	Oid			indexoid = request_id_index(heap, &id_attnum);
	Relation	index = index_open(indexoid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	SnapshotData dirty;
	ScanKeyData keys[2];
	IndexScanDesc scan;
	bool		found = false;

	InitDirtySnapshot(dirty);
	if (customer_null)
		ScanKeyEntryInitialize(&keys[0], SK_ISNULL | SK_SEARCHNULL, 1,
							   InvalidStrategy, InvalidOid, InvalidOid,
							   InvalidOid, (Datum) 0);
	else
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], F_TEXTEQ, customer);
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[1], F_TEXTEQ, request_id);

	for (;;)
	{
		TransactionId xwait = InvalidTransactionId;
		ItemPointerData tid;

		scan = index_beginscan(heap, index, &dirty, 2, 0);
		index_rescan(scan, keys, 2, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
			if (TransactionIdIsValid(xwait))
			{
				tid = slot->tts_tid;
				break;
			}
			found = true;
			break;
		}
		index_endscan(scan);
		if (!TransactionIdIsValid(xwait))
			break;
		/* Being inserted or deleted: its fate decides. */
		XactLockTableWait(xwait, heap, &tid, XLTW_InsertIndexUnique);
	}

	if (found)
	{
		bool		isnull;

		if (IsolationUsesXactSnapshot() &&
			!table_tuple_satisfies_snapshot(heap, slot, GetActiveSnapshot()))
		{
			TransactionId xmin = DatumGetTransactionId(
				slot_getsysattr(slot, MinTransactionIdAttributeNumber, &isnull));

			if (!TransactionIdIsCurrentTransactionId(xmin))
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update"),
						 errdetail("The log of this request_id was recorded by a transaction that committed after this one began."),
						 errhint("Retry the transaction: it will find the log recorded.")));
		}
		*id = DatumGetInt64(slot_getattr(slot, id_attnum, &isnull));
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	return found;
}

/*
 * request_id_forget, request_id_remember, request_id_recall
 *		The id of the log the insert trigger found for the row it skipped:
 *		forgotten before an ingest function's INSERT, remembered by the
 *		trigger, recalled by the function when its INSERT inserted nothing.
 */
void
request_id_forget(void)
{
	request_id_found = false;
}

void
request_id_remember(int64 id)
{
	request_id_found = true;
	request_id_found_id = id;
}

bool
request_id_recall(int64 *id)
{
	if (request_id_found)
		*id = request_id_found_id;
	return request_id_found;
}

#define REQUEST_ID_LOOKUP_SQL \
	"SELECT id FROM analytics.logs" \
	" WHERE customer_identifier OPERATOR(pg_catalog.=) $1" \
	" AND request_id OPERATOR(pg_catalog.=) $2"

/*
 * request_id_lookup_as_owner
 *		request_id_lookup's query, with the owner's rights (a writer may
 *		read only the id of logs).
 */
static Datum
request_id_lookup_as_owner(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)};
	SPIPlanPtr	plan;
	bool		isnull;
	Datum		id;

	plan = analytics_prepare(&request_id_lookup_plan, REQUEST_ID_LOOKUP_SQL, 2, argtypes);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up the log of a request_id");
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		PG_RETURN_NULL();
	}
	id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	PG_RETURN_INT64(DatumGetInt64(id));
}

/*
 * request_id_lookup
 *		The id of the log of (customer, request_id), read through
 *		analytics.logs: what an ingest function on a Citus coordinator
 *		does when the trigger skipped its row on the shard's node (the
 *		read goes to that node in the same transaction, which waited for
 *		the log's transaction).  A log without a customer is '' there.
 *		Must be called inside SPI.
 */
bool
request_id_lookup(Datum customer, bool customer_null, Datum request_id, int64 *id)
{
	LOCAL_FCINFO(fcinfo, 2);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = customer_null ? CStringGetTextDatum("") : customer;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = request_id;
	fcinfo->args[1].isnull = false;
	result = privs_call_as_owner(request_id_lookup_as_owner, fcinfo);
	if (fcinfo->isnull)
		return false;
	*id = DatumGetInt64(result);
	return true;
}
