/*-------------------------------------------------------------------------
 *
 * privs.c
 *	  Roles and privileges (SPEC section 13): whose rights the extension's
 *	  own work runs with, and who may call the administrative functions.
 *
 * The group roles analytics_reader, analytics_writer and analytics_admin
 * hold grants on the tables, views and functions (sql/install/95_roles.sql).
 * A writer may INSERT logs but not touch budget_counters, the rollups or the
 * customers' budget columns.  What the insert trigger does on its behalf
 * (creating an unknown customer, keeping the budget counters, reading model
 * prices) therefore runs with the rights of the extension's owner:
 * privs_call_as_owner() switches the current user to pg_extension.extowner
 * for the duration of one C function, the way a SECURITY DEFINER function
 * does, and switches back on return and on error.  (A transaction or
 * subtransaction abort would also restore the user it started with; the
 * switch back on error keeps a caller that catches the error without a
 * subtransaction right too.)
 *
 * The administrative functions (set_timezone, purge_logs, delete_customer,
 * rollup_now) are SECURITY INVOKER: they first check that the caller is a
 * member of analytics_admin (privs_require_admin), before they take any
 * lock a writer could wait on, and only then run as the owner.
 *
 * Locks: none of its own.  The owner's OID is read from pg_extension once
 * per transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"

#include "privs.h"

static Oid	owner_cached = InvalidOid;
static LocalTransactionId owner_cached_lxid = InvalidLocalTransactionId;

/*
 * privs_extension_owner
 *		The OID of the role that owns the extension (pg_extension.extowner),
 *		read once per transaction.
 */
Oid
privs_extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	if (OidIsValid(owner_cached) && owner_cached_lxid == MyProc->lxid)
		return owner_cached;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("analytics"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"analytics\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION analytics.")));
	owner_cached = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	owner_cached_lxid = MyProc->lxid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner_cached;
}

/*
 * privs_require_admin
 *		Raise 42501 unless the current user has the privileges of
 *		analytics_admin (superusers do).  Call it first, before any lock.
 */
void
privs_require_admin(const char *function)
{
	Oid			admin = get_role_oid(PRIVS_ADMIN_ROLE, true);

	if (superuser())
		return;
	if (OidIsValid(admin) && has_privs_of_role(GetUserId(), admin))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for function %s", function),
			 errdetail("Only members of %s and superusers may call it.",
					   PRIVS_ADMIN_ROLE),
			 errhint("GRANT %s TO the role that administers analytics.",
					 PRIVS_ADMIN_ROLE)));
}

/*
 * privs_call_as_owner
 *		Call fn(fcinfo) with the extension owner as the current user, as a
 *		SECURITY DEFINER function would, and restore the caller's user and
 *		security context afterwards, also on error.
 */
Datum
privs_call_as_owner(PGFunction fn, FunctionCallInfo fcinfo)
{
	Oid			save_userid;
	int			save_sec_context;
	Oid			owner = privs_extension_owner();
	Datum		result;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	if (save_userid == owner)
		return fn(fcinfo);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		result = fn(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	return result;
}
