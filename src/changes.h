/*-------------------------------------------------------------------------
 *
 * changes.h
 *	  The per-customer change protocol: changes of one customer wait only
 *	  for, and hold up only, writers of that customer (see changes.c and
 *	  src/README.md).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_CHANGES_H
#define ANALYTICS_CHANGES_H

/* What the protocol asks of the holder of the settings cache (customers.c). */
typedef void (*ChangesCallback) (void);

extern void changes_init(void);
extern void changes_set_callbacks(ChangesCallback forget_settings,
								  ChangesCallback change_all);
extern bool changes_per_customer(void);
extern void changes_cover(const char *ident);
extern void changes_begin(const char *ident);

#endif							/* ANALYTICS_CHANGES_H */
