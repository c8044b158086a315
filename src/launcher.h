/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher of the rollup workers; see launcher.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_LAUNCHER_H
#define ANALYTICS_LAUNCHER_H

#include "utils/guc.h"

extern void launcher_register(void);
extern bool launcher_check_databases(char **newval, void **extra, GucSource source);

#endif							/* ANALYTICS_LAUNCHER_H */
