/*-------------------------------------------------------------------------
 *
 * views.h
 *	  C behind the views of analytics.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_VIEWS_H
#define ANALYTICS_VIEWS_H

/* The SQL-callable functions of views.c are reached through the fmgr. */

#endif							/* ANALYTICS_VIEWS_H */
