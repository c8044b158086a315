/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The rollup background workers: a launcher and a bounded pool of
 *	  workers that go where there are logs to fold.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_WORKER_H
#define ANALYTICS_WORKER_H

#include "utils/guc.h"

extern void worker_init(void);
extern void worker_register_launcher(void);
extern void worker_note_log_written(void);
extern bool worker_check_databases(char **newval, void **extra, GucSource source);

#endif							/* ANALYTICS_WORKER_H */
