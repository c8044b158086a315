/*-------------------------------------------------------------------------
 *
 * changes.h
 *	  The per-customer change protocol: changes of one customer wait only
 *	  for, and hold up only, writers of that customer (see changes.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_CHANGES_H
#define ANALYTICS_CHANGES_H

extern void changes_init(void);
extern bool changes_per_customer(void);
extern void changes_cover(const char *ident);
extern void changes_begin(const char *ident);

#endif							/* ANALYTICS_CHANGES_H */
