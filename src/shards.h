/*-------------------------------------------------------------------------
 *
 * shards.h
 *	  The extension's tables as one trigger invocation sees them: the
 *	  tables themselves on a single node, or, on a Citus node, the shards
 *	  co-located with the shard being written.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ANALYTICS_SHARDS_H
#define ANALYTICS_SHARDS_H

#include "nodes/pg_list.h"
#include "utils/relcache.h"

extern void shards_init(void);
extern Oid	shards_table(const char *table);
extern int64 shards_shard_id(Oid relid);
extern Oid	shards_logs_shard(int64 shardid);
extern char *shards_logs_sql(List *logs);
extern void shards_relcache_invalidate(Oid relid);
extern bool shards_is_shard(Relation rel);
extern Oid	shards_colocated_relid(Relation rel, const char *table);
extern Oid	shards_colocated_oid(Oid relid, const char *table);
extern char *shards_colocated_name_oid(Oid relid, const char *table);
extern void shards_set_current(Relation rel);
extern void shards_set_current_oid(Oid relid);
extern void shards_clear_current(void);
extern bool shards_has_current(void);
extern Oid	shards_current(const char *table);
extern bool shards_is_known(Oid relid, const char *table);
extern int64 shards_next_id(const char *sequence);
extern int64 shards_next_log_id(void);
extern int64 shards_node_prefix(void);
extern List *shards_local_logs(void);
extern bool shards_logs_distributed(void);
extern bool shards_is_coordinator(void);
extern int64 shards_id_last(void);

#endif							/* ANALYTICS_SHARDS_H */
