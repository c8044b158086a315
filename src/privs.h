/*-------------------------------------------------------------------------
 *
 * privs.h
 *	  Roles and privileges: whose rights the extension's own work runs with.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_PRIVS_H
#define ANALYTICS_PRIVS_H

#include "fmgr.h"

/* The group role whose members may administer customers and the rollups. */
#define PRIVS_ADMIN_ROLE "analytics_admin"

extern Oid	privs_extension_owner(void);
extern void privs_require_admin(const char *function);
extern Datum privs_call_as_owner(PGFunction fn, FunctionCallInfo fcinfo);

#endif							/* ANALYTICS_PRIVS_H */
