/*-------------------------------------------------------------------------
 *
 * shards.c
 *	  The extension's tables as one trigger invocation sees them.
 *
 * On a single node a trigger of analytics.logs reads and writes the
 * extension's own tables.  After analytics.distribute() the triggers run
 * on the Citus shards (citus.enable_unsafe_triggers), on the node that
 * holds the shard, inside the transaction writing it: there the node's
 * analytics.customers is an empty shell, and the customer's row lives in
 * the customers shard co-located with the logs shard being written.  This
 * file maps a shard (named <table>_<shardid>) to the co-located shard of
 * another of the extension's tables through Citus' pg_dist_shard (same
 * hash range), caches the answer per backend, and draws the ids of logs
 * written on a cluster (src/README.md "Scale-out").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "optimizer/planner.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "analytics.h"
#include "shards.h"

/* The tables a trigger invocation may reach, and so may map. */
static const char *const shard_tables[] = {
	"logs", "customers", "budget_counters", "usage_daily",
	"usage_customer_day", "usage_customer", "rollup_set_aside", "admissions"
};
#define SHARD_TABLES lengthof(shard_tables)

/* One shard written by a trigger, with its co-located shards. */
typedef struct ShardEntry
{
	Oid			relid;			/* key: the shard written */
	Oid			colocated[SHARD_TABLES];	/* InvalidOid: not looked up */
	char	   *names[SHARD_TABLES];	/* qualified, quoted names */
} ShardEntry;

static HTAB *shard_map = NULL;

/* The logs relations of this node (shards_local_logs); NIL: not known. */
static List *local_logs = NIL;
static bool local_logs_known = false;

/*
 * Both caches live in this context.  An invalidation only marks them stale
 * (shards_relcache_invalidate): they are dropped at the next use, when no
 * caller holds a pointer into them.
 */
static MemoryContext shards_context = NULL;
static bool shards_stale = false;
static bool logs_distributed = false;

/* The relation whose trigger is running (shards_set_current). */
static Oid	current_relid = InvalidOid;

/* This node's Citus group id, shifted into an id's top bits; -1: unknown. */
static int64 node_prefix = -1;

static planner_hook_type prev_planner_hook = NULL;

/* Bits of an id drawn from a node's analytics.log_ids. */
#define LOG_ID_BITS 48

static int
shard_table_index(const char *table)
{
	for (int i = 0; i < (int) SHARD_TABLES; i++)
		if (strcmp(shard_tables[i], table) == 0)
			return i;
	elog(ERROR, "analytics.%s is not a table shards.c maps", table);
	return -1;					/* keep compiler quiet */
}

/*
 * shards_table
 *		The oid of analytics.<table> (not a shard of it); an error when
 *		missing.
 */
Oid
shards_table(const char *table)
{
	Oid			relid = get_relname_relid(table, get_namespace_oid("analytics", false));

	if (!OidIsValid(relid))
		elog(ERROR, "relation analytics.%s does not exist", table);
	return relid;
}

/*
 * The shard id of a relation named <table>_<shardid> whose <table> is one
 * of the extension's tables, or 0 when relid is not such a shard.
 */
static int64
shard_id_of_name(const char *relname)
{
	const char *sep = strrchr(relname, '_');
	const char *end;

	if (sep == NULL || sep[1] == '\0')
		return 0;
	for (end = sep + 1; *end; end++)
		if (!isdigit((unsigned char) *end))
			return 0;
	for (int i = 0; i < (int) SHARD_TABLES; i++)
		if (strlen(shard_tables[i]) == (size_t) (sep - relname) &&
			strncmp(shard_tables[i], relname, sep - relname) == 0)
			return strtoi64(sep + 1, NULL, 10);
	return 0;
}

/*
 * shards_shard_id
 *		The Citus shard id of relid when it is a shard of one of the
 *		extension's tables (named <table>_<shardid>), else 0.
 */
int64
shards_shard_id(Oid relid)
{
	char	   *name = get_rel_name(relid);

	return name == NULL ? 0 : shard_id_of_name(name);
}

/*
 * shards_relcache_invalidate
 *		From the library's relcache callback (analytics.c).
 */
void
shards_relcache_invalidate(Oid relid)
{
	/* Shards come and go with moves; start afresh on any change. */
	shards_stale = true;
}

static void
shards_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		current_relid = InvalidOid;
}

/*
 * The customer of a log without one, after distribute(): Citus refuses a
 * NULL in the distribution column before any trigger runs, so an INSERT
 * into the distributed analytics.logs stores such a log under the empty
 * identifier, which no customer can have (logs_check_customer_identifier)
 * and which the insert trigger, the fold and the views read as "no
 * customer".
 */
static Expr *
shards_no_customer(Expr *expr)
{
	CoalesceExpr *c = makeNode(CoalesceExpr);

	c->coalescetype = TEXTOID;
	c->coalescecollid = DEFAULT_COLLATION_OID;
	c->args = list_make2(expr, makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
										 CStringGetTextDatum(""), false, false));
	c->location = -1;
	return (Expr *) c;
}

/*
 * shards_planner
 *		planner_hook: after distribute(), an INSERT into analytics.logs
 *		stores a log without a customer under '' (shards_no_customer).  Runs
 *		before Citus' planner (analytics is preloaded after citus).
 */
static PlannedStmt *
shards_planner(Query *parse, const char *query_string, int cursorOptions,
			   ParamListInfo boundParams)
{
	if (parse->commandType == CMD_INSERT && parse->resultRelation > 0 &&
		IsTransactionState())
	{
		RangeTblEntry *target = rt_fetch(parse->resultRelation, parse->rtable);
		Oid			nsp = get_namespace_oid("analytics", true);

		if (OidIsValid(nsp) && target->relid == get_relname_relid("logs", nsp) &&
			shards_logs_distributed())
		{
			AttrNumber	attnum = get_attnum(target->relid, "customer_identifier");
			ListCell   *lc;
			bool		found = false;
			int			pos = 0;

			foreach(lc, parse->targetList)
			{
				TargetEntry *te = lfirst(lc);

				if (te->resno < attnum)
					pos++;
				if (te->resno != attnum)
					continue;
				found = true;
				if (IsA(te->expr, Var) &&
					rt_fetch(((Var *) te->expr)->varno, parse->rtable)->rtekind == RTE_VALUES)
				{
					/* Multi-row VALUES: each row's value. */
					RangeTblEntry *values = rt_fetch(((Var *) te->expr)->varno, parse->rtable);
					int			col = ((Var *) te->expr)->varattno - 1;
					ListCell   *row;

					foreach(row, values->values_lists)
					{
						List	   *exprs = lfirst(row);
						ListCell   *cell = list_nth_cell(exprs, col);

						lfirst(cell) = shards_no_customer(lfirst(cell));
					}
				}
				else if (IsA(te->expr, Var) &&
						 rt_fetch(((Var *) te->expr)->varno, parse->rtable)->rtekind == RTE_SUBQUERY &&
						 rt_fetch(((Var *) te->expr)->varno, parse->rtable)->subquery->setOperations == NULL)
				{
					/* INSERT ... SELECT: in the SELECT, which Citus plans on its own. */
					Query	   *select = rt_fetch(((Var *) te->expr)->varno, parse->rtable)->subquery;
					TargetEntry *ste = list_nth(select->targetList, ((Var *) te->expr)->varattno - 1);

					ste->expr = shards_no_customer(ste->expr);
				}
				else
					te->expr = shards_no_customer(te->expr);
			}
			if (!found)
				parse->targetList = list_insert_nth(parse->targetList, pos,
													makeTargetEntry(shards_no_customer((Expr *) makeNullConst(TEXTOID, -1, DEFAULT_COLLATION_OID)),
																	attnum, pstrdup("customer_identifier"), false));
		}
	}
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursorOptions, boundParams);
	return standard_planner(parse, query_string, cursorOptions, boundParams);
}

/*
 * shards_cache_context
 *		The caches' memory, emptied first when an invalidation made them
 *		stale.  Call only where no pointer into the caches is held.
 */
static MemoryContext
shards_cache_context(void)
{
	if (shards_context == NULL)
		shards_context = AllocSetContextCreate(TopMemoryContext, "analytics shards",
											   ALLOCSET_SMALL_SIZES);
	else if (shards_stale)
	{
		MemoryContextReset(shards_context);
		shard_map = NULL;
		local_logs = NIL;
		local_logs_known = false;
	}
	shards_stale = false;
	return shards_context;
}

/*
 * shards_init
 *		Register the cache's invalidation; from _PG_init.
 */
void
shards_init(void)
{
	RegisterXactCallback(shards_xact_callback, NULL);
	prev_planner_hook = planner_hook;
	planner_hook = shards_planner;
}

/*
 * shards_is_shard
 *		Whether rel is a Citus shard of one of the extension's tables
 *		rather than the table itself.
 */
bool
shards_is_shard(Relation rel)
{
	return shard_id_of_name(RelationGetRelationName(rel)) != 0;
}

/*
 * Look up, through pg_dist_shard, the shard of analytics.<table> whose
 * hash range is that of shard shardid.
 */
static void
shard_lookup(ShardEntry *entry, int64 shardid, int i)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char	   *name;
	bool		isnull;
	int64		colocated;
	MemoryContext old;

	values[0] = Int64GetDatum(shardid);
	values[1] = CStringGetTextDatum(psprintf("analytics.%s", shard_tables[i]));
	SPI_connect();
	if (SPI_execute_with_args("SELECT t.shardid FROM pg_catalog.pg_dist_shard s "
							  "JOIN pg_catalog.pg_dist_shard t "
							  "ON t.shardminvalue OPERATOR(pg_catalog.=) s.shardminvalue "
							  "WHERE s.shardid OPERATOR(pg_catalog.=) $1 "
							  "AND t.logicalrelid OPERATOR(pg_catalog.=) $2::pg_catalog.regclass",
							  2, argtypes, values, NULL, true, 2) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "no shard of analytics.%s is co-located with shard " INT64_FORMAT,
			 shard_tables[i], shardid);
	colocated = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();

	name = psprintf("%s_" INT64_FORMAT, shard_tables[i], colocated);
	entry->colocated[i] = shards_table(name);
	old = MemoryContextSwitchTo(shards_context);
	entry->names[i] = psprintf("analytics.%s", quote_identifier(name));
	MemoryContextSwitchTo(old);
}

static ShardEntry *
shard_entry(Oid relid, const char *table)
{
	int			i = shard_table_index(table);
	int64		shardid = shards_shard_id(relid);
	ShardEntry *entry;
	bool		found;

	if (shardid == 0)
		return NULL;
	(void) shards_cache_context();
	if (shard_map == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ShardEntry);
		ctl.hcxt = shards_context;
		shard_map = hash_create("analytics shards", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(shard_map, &relid, HASH_ENTER, &found);
	if (!found)
	{
		memset(entry->colocated, 0, sizeof(entry->colocated));
		memset(entry->names, 0, sizeof(entry->names));
	}
	if (!OidIsValid(entry->colocated[i]))
		shard_lookup(entry, shardid, i);
	return entry;
}

static Oid
colocated_oid(Oid relid, const char *table)
{
	ShardEntry *entry = OidIsValid(relid) ? shard_entry(relid, table) : NULL;

	if (entry == NULL)
		return shards_table(table);
	return entry->colocated[shard_table_index(table)];
}

/*
 * shards_colocated_relid
 *		The relation of analytics.<table> that goes with rel: the table
 *		itself, or the shard co-located with the shard rel.
 */
Oid
shards_colocated_relid(Relation rel, const char *table)
{
	return colocated_oid(RelationGetRelid(rel), table);
}

/*
 * shards_colocated_oid
 *		The same for a relation given by its oid.
 */
Oid
shards_colocated_oid(Oid relid, const char *table)
{
	return colocated_oid(relid, table);
}

/*
 * shards_colocated_name_oid
 *		The qualified name, for SQL, of analytics.<table> as it goes with
 *		the relation relid (shards_colocated_relid).  Valid until the next
 *		call into this file.
 */
char *
shards_colocated_name_oid(Oid relid, const char *table)
{
	ShardEntry *entry = shard_entry(relid, table);

	if (entry == NULL)
		return psprintf("analytics.%s", table);
	return entry->names[shard_table_index(table)];
}

/*
 * shards_set_current, shards_clear_current
 *		Record the relation whose trigger runs, for code reached through
 *		callbacks that do not carry it (the change protocol's global
 *		fallback).
 */
void
shards_set_current(Relation rel)
{
	current_relid = RelationGetRelid(rel);
}

void
shards_set_current_oid(Oid relid)
{
	current_relid = relid;
}

void
shards_clear_current(void)
{
	current_relid = InvalidOid;
}

/*
 * shards_current
 *		analytics.<table> as the running trigger sees it.
 */
Oid
shards_current(const char *table)
{
	return colocated_oid(current_relid, table);
}

/*
 * shards_has_current
 *		Whether a trigger (or a function acting for one customer) has set
 *		the relation it works on.
 */
bool
shards_has_current(void)
{
	return OidIsValid(current_relid);
}

/*
 * shards_is_known
 *		Whether relid is analytics.<table> or a shard of it this backend
 *		has mapped.
 */
bool
shards_is_known(Oid relid, const char *table)
{
	HASH_SEQ_STATUS status;
	ShardEntry *entry;
	int			i = shard_table_index(table);
	bool		known = false;

	if (shard_map == NULL)
		return false;
	hash_seq_init(&status, shard_map);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (entry->colocated[i] == relid)
			known = true;
	return known;
}

/*
 * shards_next_id
 *		An id drawn on a Citus node from the extension's sequence `sequence`:
 *		this node's Citus group id plus one in the top bits, the sequence's
 *		next value below, so that ids drawn on different nodes never meet.
 */
int64
shards_next_id(const char *sequence)
{
	int64		local;

	(void) shards_node_prefix();
	local = nextval_internal(shards_table(sequence), true);
	if (local >= ((int64) 1 << LOG_ID_BITS))
		ereport(ERROR,
				(errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
				 errmsg("analytics.%s reached its maximum on this node", sequence)));
	return node_prefix | local;
}

/*
 * shards_next_log_id
 *		The id of a log written to a shard (shards_next_id of
 *		analytics.log_ids).  Drawn in the insert trigger on the node holding
 *		the shard, while the writer holds its lock on the shard: the fold's
 *		argument (src/README.md) then holds per node.
 */
int64
shards_next_log_id(void)
{
	return shards_next_id("log_ids");
}

/*
 * shards_node_prefix
 *		This node's Citus group id shifted into the top bits of a log id.
 */
int64
shards_node_prefix(void)
{
	if (node_prefix < 0)
	{
		bool		isnull;
		int32		group;

		SPI_connect();
		if (SPI_execute("SELECT groupid FROM pg_catalog.pg_dist_local_group", true, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "this node has no Citus group id");
		group = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		/*
		 * group + 1: the ids below 2^48 are those drawn before distribute(),
		 * by the identity of a single node (group 0 would draw them again).
		 */
		if (group < 0 || group + 1 >= (1 << (63 - LOG_ID_BITS)))
			elog(ERROR, "Citus group id %d is out of the range of log ids", group);
		node_prefix = (int64) (group + 1) << LOG_ID_BITS;
	}
	return node_prefix;
}

/*
 * shards_is_coordinator
 *		Whether this node is the coordinator (Citus group 0) of a cluster
 *		where analytics.logs is distributed.  Inside a transaction.
 */
bool
shards_is_coordinator(void)
{
	return shards_logs_distributed() &&
		shards_node_prefix() == ((int64) 1 << LOG_ID_BITS);
}

/*
 * shards_logs_shard
 *		The relation of logs shard shardid on this node, or InvalidOid when
 *		the node has none (placed elsewhere, or not created yet).
 */
Oid
shards_logs_shard(int64 shardid)
{
	return get_relname_relid(psprintf("logs_" INT64_FORMAT, shardid),
							 get_namespace_oid("analytics", false));
}

/*
 * shards_logs_sql
 *		The logs relations logs as one relation of ids for SQL, aliased l:
 *		analytics.logs itself, or the union of the shards.
 */
char *
shards_logs_sql(List *logs)
{
	StringInfoData buf;
	ListCell   *lc;

	if (list_length(logs) == 1 && linitial_oid(logs) == shards_table("logs"))
		return "analytics.logs l";
	initStringInfo(&buf);
	appendStringInfoString(&buf, "(SELECT NULL::pg_catalog.int8 AS id WHERE false");
	foreach(lc, logs)
		appendStringInfo(&buf, " UNION ALL SELECT id FROM %s",
						 quote_qualified_identifier("analytics", get_rel_name(lfirst_oid(lc))));
	appendStringInfoString(&buf, ") l");
	return buf.data;
}

/*
 * Find this node's logs relations: analytics.logs itself when it is not
 * distributed, else the shards of it whose placement is on this node.
 */
static void
shards_find_local_logs(void)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext old;
	List	   *found = NIL;
	bool		distributed = false;
	bool		isnull;

	SPI_connect();
	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_extension "
					"WHERE extname OPERATOR(pg_catalog.=) 'citus')", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_extension");
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition "
						"WHERE logicalrelid OPERATOR(pg_catalog.=) 'analytics.logs'::pg_catalog.regclass)",
						true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read pg_dist_partition");
		distributed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (distributed)
	{
		/*
		 * Not through pg_class: Citus hides shards from catalog queries of
		 * ordinary sessions (citus.override_table_visibility).
		 */
		if (SPI_execute("SELECT s.shardid FROM pg_catalog.pg_dist_shard s "
						"JOIN pg_catalog.pg_dist_placement p "
						"  ON p.shardid OPERATOR(pg_catalog.=) s.shardid "
						"WHERE s.logicalrelid OPERATOR(pg_catalog.=) 'analytics.logs'::pg_catalog.regclass "
						"  AND p.groupid OPERATOR(pg_catalog.=) "
						"      (SELECT groupid FROM pg_catalog.pg_dist_local_group) "
						"ORDER BY s.shardid", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read pg_dist_shard");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			int64		shardid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
															  SPI_tuptable->tupdesc,
															  1, &isnull));
			Oid			relid = shards_logs_shard(shardid);

			if (!OidIsValid(relid))
				continue;		/* placed here, not created yet */
			old = MemoryContextSwitchTo(outer);
			found = lappend_oid(found, relid);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	if (!distributed)
		found = list_make1_oid(shards_table("logs"));
	/* After the SPI calls, which may have made the caches stale. */
	old = MemoryContextSwitchTo(shards_cache_context());
	local_logs = list_copy(found);
	MemoryContextSwitchTo(old);
	logs_distributed = distributed;
	local_logs_known = true;
}

/*
 * shards_local_logs
 *		The logs relations this node folds: analytics.logs on a single node,
 *		the shards of it placed on this node after distribute() (none on a
 *		coordinator without shards).  Cached until the next relcache
 *		invalidation (Citus sends one when shards move).
 */
List *
shards_local_logs(void)
{
	(void) shards_cache_context();
	if (!local_logs_known)
		shards_find_local_logs();
	return list_copy(local_logs);
}

/*
 * shards_logs_distributed
 *		Whether analytics.logs is distributed (analytics.distribute()).
 */
bool
shards_logs_distributed(void)
{
	(void) shards_cache_context();
	if (!local_logs_known)
		shards_find_local_logs();
	return logs_distributed;
}

/*
 * shards_id_last
 *		The greatest id of a log drawn on this node: on a Citus node the
 *		end of its group's range, else the greatest bigint.
 */
int64
shards_id_last(void)
{
	if (!shards_logs_distributed())
		return PG_INT64_MAX;
	(void) shards_node_prefix();
	return node_prefix + (((int64) 1 << LOG_ID_BITS) - 1);
}
