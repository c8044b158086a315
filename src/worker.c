/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The rollup background worker (not written yet: registration only).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "worker.h"

/*
 * worker_register_launcher
 *		Register the launcher that starts one rollup worker per database.
 */
void
worker_register_launcher(void)
{
}
