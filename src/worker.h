/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The rollup background worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_WORKER_H
#define ANALYTICS_WORKER_H

extern void worker_register_launcher(void);

#endif							/* ANALYTICS_WORKER_H */
