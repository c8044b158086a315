/*-------------------------------------------------------------------------
 *
 * rollup.c
 *	  The fold-in of analytics.logs into analytics.usage_daily and the
 *	  coarser usage_customer_day, usage_day and usage_customer.  The
 *	  functions that must serialize with it (purge_logs(), delete_customer(),
 *	  set_timezone()) are in rollup_admin.c.  On a Citus node the fold reads
 *	  the node's logs shards and writes their co-located rollup shards
 *	  (src/shards.c), with the node's own rollup_state and rollup_gaps.
 *
 * A log is folded in when its id is at most rollup_state.watermark and
 * outside every range of rollup_gaps: its counts are then in the rollups,
 * written by one statement (fold_sql below) in the transaction that moved
 * the watermark or shrank the gap.  The other half, the reader of the logs
 * not folded in yet, is sql/install/41_rollup_pending.sql; the rollup
 * columns of both are generated from sql/rollup_columns.tsv.
 *
 * The protocol (why each committed log is folded exactly once: read the
 * sequence's last value and the transactions writing logs, wait for none of
 * them, then under the rollup_state row lock fold what one snapshot sees and
 * record what it does not see as gaps) and the lock order of every function
 * here are in src/README.md, "How a log is counted exactly once".  Table
 * locks (or the customer's change lock) come before the row lock, except
 * where the lock-order table says.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/hsearch.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "analytics.h"
#include "changes.h"
#include "customers.h"
#include "privs.h"
#include "rollup.h"
#include "rollup_internal.h"
#include "shards.h"

PG_FUNCTION_INFO_V1(rollup_now);

/*
 * The fold statement, in named pieces: one INSERT ... SELECT whose
 * data-modifying CTEs all read the same snapshot (src/README.md, "Coarser
 * rollups").  Parameters: logs with id in ($1, $2], created at or after $4,
 * by calendar day in time zone $3; $5 true adds them to the coarser rollups
 * too; $6 true when rollup_set_aside is empty (the planner folds it into the
 * plan, so the usual fold has no anti-join); $7 which logs of the range
 * (RollupSource: all of them, those inside a recorded gap, read from the
 * gaps through the primary key, or those outside every gap; the planner
 * drops the branch not taken).  The column lists come from
 * sql/rollup_columns.tsv (scripts/rollup_columns.sh).
 */

/* The markers of the generated lists must stay on lines of their own. */
/* clang-format off */
/* src: the chunk's logs, grouped by customer, day and model. */
#define FOLD_SRC \
" src AS MATERIALIZED (" \
"  SELECT l.customer_identifier," \
"    pg_catalog.timezone($3, l.created_at)::pg_catalog.date AS day," \
"    l.model," \
/* rollup columns: log all last */ \
"    pg_catalog.count(*) AS requests," \
"    pg_catalog.count(*) FILTER (WHERE l.status_code OPERATOR(pg_catalog.>=) 400) AS errors," \
"    pg_catalog.sum(l.prompt_tokens) AS prompt_tokens," \
"    pg_catalog.sum(l.completion_tokens) AS completion_tokens," \
"    pg_catalog.sum(l.cost) AS cost," \
"    COALESCE(pg_catalog.sum(l.latency), 0) AS latency_sum," \
"    pg_catalog.count(l.latency) AS latency_count," \
"    COALESCE(pg_catalog.sum(l.time_to_first_token), 0) AS ttft_sum," \
"    pg_catalog.count(l.time_to_first_token) AS ttft_count," \
"    pg_catalog.min(l.created_at) AS first_seen," \
"    pg_catalog.max(l.created_at) AS last_seen," \
"    pg_catalog.sum(l.cached_tokens) AS cached_tokens" \
/* end rollup columns */ \
"    FROM (SELECT l.* FROM analytics.logs l" \
"           WHERE $7 OPERATOR(pg_catalog.<>) 1" \
"             AND l.id OPERATOR(pg_catalog.>) $1 AND l.id OPERATOR(pg_catalog.<=) $2" \
"             AND ($7 OPERATOR(pg_catalog.=) 0 OR NOT " ROLLUP_IN_GAP("l.id") ")" \
"          UNION ALL" \
"          SELECT x.* FROM analytics.rollup_gaps g CROSS JOIN LATERAL (" \
"              SELECT l.* FROM analytics.logs l" \
"               WHERE l.id OPERATOR(pg_catalog.>=) g.lo AND l.id OPERATOR(pg_catalog.<=) g.hi" \
"                 AND l.id OPERATOR(pg_catalog.>) $1 AND l.id OPERATOR(pg_catalog.<=) $2" \
"              OFFSET 0) x" \
"           WHERE $7 OPERATOR(pg_catalog.=) 1) l" \
"   WHERE l.created_at OPERATOR(pg_catalog.>=) $4" \
"     AND l.customer_identifier IS NOT NULL" \
"     AND l.customer_identifier OPERATOR(pg_catalog.<>) ''" \
"     AND ($6 OR NOT EXISTS (SELECT 1 FROM analytics.rollup_set_aside a" \
"                            WHERE a.log_id OPERATOR(pg_catalog.=) l.id))" \
"   GROUP BY 1, 2, 3)"

/* cust: a customer row removed by hand is created again, as the insert trigger would. */
#define FOLD_CUSTOMERS \
" cust AS (" \
"  INSERT INTO analytics.customers (customer_identifier)" \
"  SELECT DISTINCT src.customer_identifier FROM src" \
"  ON CONFLICT (customer_identifier) DO NOTHING)"

/* ins: src added to usage_daily. */
#define FOLD_DAILY \
" ins AS (" \
"  INSERT INTO analytics.usage_daily AS u (customer_identifier, day, model," \
/* rollup columns: list all - last */ \
"    requests," \
"    errors," \
"    prompt_tokens," \
"    completion_tokens," \
"    cost," \
"    latency_sum," \
"    latency_count," \
"    ttft_sum," \
"    ttft_count," \
"    first_seen," \
"    last_seen," \
"    cached_tokens" \
/* end rollup columns */ \
"  ) SELECT * FROM src" \
"  ON CONFLICT (customer_identifier, day, model) DO UPDATE SET" \
/* rollup columns: add all u EXCLUDED last */ \
"    requests = u.requests OPERATOR(pg_catalog.+) EXCLUDED.requests," \
"    errors = u.errors OPERATOR(pg_catalog.+) EXCLUDED.errors," \
"    prompt_tokens = u.prompt_tokens OPERATOR(pg_catalog.+) EXCLUDED.prompt_tokens," \
"    completion_tokens = u.completion_tokens OPERATOR(pg_catalog.+) EXCLUDED.completion_tokens," \
"    cost = u.cost OPERATOR(pg_catalog.+) EXCLUDED.cost," \
"    latency_sum = u.latency_sum OPERATOR(pg_catalog.+) EXCLUDED.latency_sum," \
"    latency_count = u.latency_count OPERATOR(pg_catalog.+) EXCLUDED.latency_count," \
"    ttft_sum = u.ttft_sum OPERATOR(pg_catalog.+) EXCLUDED.ttft_sum," \
"    ttft_count = u.ttft_count OPERATOR(pg_catalog.+) EXCLUDED.ttft_count," \
"    first_seen = LEAST(u.first_seen, EXCLUDED.first_seen)," \
"    last_seen = GREATEST(u.last_seen, EXCLUDED.last_seen)," \
"    cached_tokens = u.cached_tokens OPERATOR(pg_catalog.+) EXCLUDED.cached_tokens" \
/* end rollup columns */ \
"  )"

/*
 * cd: src per (customer, day), only when $5; new_day when usage_customer_day
 * has no row for the pair before the statement.
 */
#define FOLD_CUSTOMER_DAY_SRC \
" cd AS (" \
"  SELECT src.customer_identifier, src.day," \
/* rollup columns: merge all src */ \
"    pg_catalog.sum(src.requests)::pg_catalog.int8 AS requests," \
"    pg_catalog.sum(src.errors)::pg_catalog.int8 AS errors," \
"    pg_catalog.sum(src.prompt_tokens)::pg_catalog.int8 AS prompt_tokens," \
"    pg_catalog.sum(src.completion_tokens)::pg_catalog.int8 AS completion_tokens," \
"    pg_catalog.sum(src.cost) AS cost," \
"    pg_catalog.sum(src.latency_sum) AS latency_sum," \
"    pg_catalog.sum(src.latency_count)::pg_catalog.int8 AS latency_count," \
"    pg_catalog.sum(src.ttft_sum) AS ttft_sum," \
"    pg_catalog.sum(src.ttft_count)::pg_catalog.int8 AS ttft_count," \
"    pg_catalog.min(src.first_seen) AS first_seen," \
"    pg_catalog.max(src.last_seen) AS last_seen," \
"    pg_catalog.sum(src.cached_tokens)::pg_catalog.int8 AS cached_tokens," \
/* end rollup columns */ \
"    NOT EXISTS (SELECT 1 FROM analytics.usage_customer_day x" \
"                 WHERE x.customer_identifier OPERATOR(pg_catalog.=) src.customer_identifier" \
"                   AND x.day OPERATOR(pg_catalog.=) src.day) AS new_day" \
"    FROM src WHERE $5" \
"   GROUP BY 1, 2)"

/* ins_cd: cd added to usage_customer_day. */
#define FOLD_CUSTOMER_DAY \
" ins_cd AS (" \
"  INSERT INTO analytics.usage_customer_day AS u (customer_identifier, day," \
/* rollup columns: list per_day - last */ \
"    requests," \
"    errors," \
"    prompt_tokens," \
"    completion_tokens," \
"    cost" \
/* end rollup columns */ \
"  ) SELECT cd.customer_identifier, cd.day," \
/* rollup columns: list per_day cd last */ \
"    cd.requests," \
"    cd.errors," \
"    cd.prompt_tokens," \
"    cd.completion_tokens," \
"    cd.cost" \
/* end rollup columns */ \
"    FROM cd" \
"  ON CONFLICT (customer_identifier, day) DO UPDATE SET" \
/* rollup columns: add per_day u EXCLUDED last */ \
"    requests = u.requests OPERATOR(pg_catalog.+) EXCLUDED.requests," \
"    errors = u.errors OPERATOR(pg_catalog.+) EXCLUDED.errors," \
"    prompt_tokens = u.prompt_tokens OPERATOR(pg_catalog.+) EXCLUDED.prompt_tokens," \
"    completion_tokens = u.completion_tokens OPERATOR(pg_catalog.+) EXCLUDED.completion_tokens," \
"    cost = u.cost OPERATOR(pg_catalog.+) EXCLUDED.cost" \
/* end rollup columns */ \
"  )"

/* ins_day: cd per day added to usage_day, with its new active users. */
#define FOLD_DAY \
" ins_day AS (" \
"  INSERT INTO analytics.usage_day AS u (day, active_users," \
/* rollup columns: list per_day - last */ \
"    requests," \
"    errors," \
"    prompt_tokens," \
"    completion_tokens," \
"    cost" \
/* end rollup columns */ \
"  ) SELECT cd.day, pg_catalog.count(*) FILTER (WHERE cd.new_day)," \
/* rollup columns: merge per_day cd last */ \
"    pg_catalog.sum(cd.requests)::pg_catalog.int8 AS requests," \
"    pg_catalog.sum(cd.errors)::pg_catalog.int8 AS errors," \
"    pg_catalog.sum(cd.prompt_tokens)::pg_catalog.int8 AS prompt_tokens," \
"    pg_catalog.sum(cd.completion_tokens)::pg_catalog.int8 AS completion_tokens," \
"    pg_catalog.sum(cd.cost) AS cost" \
/* end rollup columns */ \
"    FROM cd GROUP BY cd.day" \
"  ON CONFLICT (day) DO UPDATE SET" \
"    active_users = u.active_users OPERATOR(pg_catalog.+) EXCLUDED.active_users," \
/* rollup columns: add per_day u EXCLUDED last */ \
"    requests = u.requests OPERATOR(pg_catalog.+) EXCLUDED.requests," \
"    errors = u.errors OPERATOR(pg_catalog.+) EXCLUDED.errors," \
"    prompt_tokens = u.prompt_tokens OPERATOR(pg_catalog.+) EXCLUDED.prompt_tokens," \
"    completion_tokens = u.completion_tokens OPERATOR(pg_catalog.+) EXCLUDED.completion_tokens," \
"    cost = u.cost OPERATOR(pg_catalog.+) EXCLUDED.cost" \
/* end rollup columns */ \
"  )"

/*
 * gap_new: the new (customer, day) pairs of cd, each with the customer's
 * greatest old day before it (p_old) and least old day after it (n_old),
 * read from usage_customer_day by its primary key (the snapshot before the
 * statement: none of the new pairs), and its previous new day (prev_new).
 */
#define FOLD_GAP_NEW \
" gap_new AS (" \
"  SELECT cd.customer_identifier, cd.day, p.day AS p_old, n.day AS n_old," \
"    pg_catalog.lag(cd.day) OVER (PARTITION BY cd.customer_identifier ORDER BY cd.day) AS prev_new" \
"    FROM cd" \
"    LEFT JOIN LATERAL (SELECT x.day FROM analytics.usage_customer_day x" \
"                        WHERE x.customer_identifier OPERATOR(pg_catalog.=) cd.customer_identifier" \
"                          AND x.day OPERATOR(pg_catalog.<) cd.day" \
"                        ORDER BY x.day DESC LIMIT 1) p ON true" \
"    LEFT JOIN LATERAL (SELECT x.day FROM analytics.usage_customer_day x" \
"                        WHERE x.customer_identifier OPERATOR(pg_catalog.=) cd.customer_identifier" \
"                          AND x.day OPERATOR(pg_catalog.>) cd.day" \
"                        ORDER BY x.day LIMIT 1) n ON true" \
"   WHERE cd.new_day)"

/*
 * ins_gaps: the changes of usage_day_gaps.  A new day d counts at (d, its
 * previous day: the greater of p_old and prev_new); the old day n_old
 * following new days of the customer moves from (n_old, p_old) to (n_old,
 * the greatest of those new days).  Counts that fall to 0 stay.
 */
#define FOLD_DAY_GAPS \
" ins_gaps AS (" \
"  INSERT INTO analytics.usage_day_gaps AS u (day, prev_day, customers)" \
"  SELECT c.day, c.prev_day, pg_catalog.sum(c.delta)" \
"    FROM (SELECT g.day," \
"                 COALESCE(GREATEST(g.p_old, g.prev_new), '-infinity'::pg_catalog.date) AS prev_day," \
"                 1 AS delta" \
"            FROM gap_new g" \
"          UNION ALL" \
"          SELECT g.n_old, m.prev_day, m.delta" \
"            FROM (SELECT g.n_old, g.p_old, pg_catalog.max(g.day) AS last_new FROM gap_new g" \
"                   WHERE g.n_old IS NOT NULL" \
"                   GROUP BY g.customer_identifier, g.n_old, g.p_old) g" \
"            CROSS JOIN LATERAL (VALUES (COALESCE(g.p_old, '-infinity'::pg_catalog.date), -1)," \
"                                       (g.last_new, 1)) m (prev_day, delta)) c" \
"   GROUP BY c.day, c.prev_day" \
"  HAVING pg_catalog.sum(c.delta) OPERATOR(pg_catalog.<>) 0" \
"  ON CONFLICT (day, prev_day) DO UPDATE SET" \
"    customers = u.customers OPERATOR(pg_catalog.+) EXCLUDED.customers)"

/* ins_c: cd per customer added to usage_customer, with its new active days. */
#define FOLD_CUSTOMER \
" ins_c AS (" \
"  INSERT INTO analytics.usage_customer AS u (customer_identifier," \
/* rollup columns: list all - */ \
"    requests," \
"    errors," \
"    prompt_tokens," \
"    completion_tokens," \
"    cost," \
"    latency_sum," \
"    latency_count," \
"    ttft_sum," \
"    ttft_count," \
"    first_seen," \
"    last_seen," \
"    cached_tokens," \
/* end rollup columns */ \
"    active_days" \
"  ) SELECT cd.customer_identifier," \
/* rollup columns: merge all cd */ \
"    pg_catalog.sum(cd.requests)::pg_catalog.int8 AS requests," \
"    pg_catalog.sum(cd.errors)::pg_catalog.int8 AS errors," \
"    pg_catalog.sum(cd.prompt_tokens)::pg_catalog.int8 AS prompt_tokens," \
"    pg_catalog.sum(cd.completion_tokens)::pg_catalog.int8 AS completion_tokens," \
"    pg_catalog.sum(cd.cost) AS cost," \
"    pg_catalog.sum(cd.latency_sum) AS latency_sum," \
"    pg_catalog.sum(cd.latency_count)::pg_catalog.int8 AS latency_count," \
"    pg_catalog.sum(cd.ttft_sum) AS ttft_sum," \
"    pg_catalog.sum(cd.ttft_count)::pg_catalog.int8 AS ttft_count," \
"    pg_catalog.min(cd.first_seen) AS first_seen," \
"    pg_catalog.max(cd.last_seen) AS last_seen," \
"    pg_catalog.sum(cd.cached_tokens)::pg_catalog.int8 AS cached_tokens," \
/* end rollup columns */ \
"    pg_catalog.count(*) FILTER (WHERE cd.new_day)" \
"    FROM cd GROUP BY cd.customer_identifier" \
"  ON CONFLICT (customer_identifier) DO UPDATE SET" \
/* rollup columns: add all u EXCLUDED */ \
"    requests = u.requests OPERATOR(pg_catalog.+) EXCLUDED.requests," \
"    errors = u.errors OPERATOR(pg_catalog.+) EXCLUDED.errors," \
"    prompt_tokens = u.prompt_tokens OPERATOR(pg_catalog.+) EXCLUDED.prompt_tokens," \
"    completion_tokens = u.completion_tokens OPERATOR(pg_catalog.+) EXCLUDED.completion_tokens," \
"    cost = u.cost OPERATOR(pg_catalog.+) EXCLUDED.cost," \
"    latency_sum = u.latency_sum OPERATOR(pg_catalog.+) EXCLUDED.latency_sum," \
"    latency_count = u.latency_count OPERATOR(pg_catalog.+) EXCLUDED.latency_count," \
"    ttft_sum = u.ttft_sum OPERATOR(pg_catalog.+) EXCLUDED.ttft_sum," \
"    ttft_count = u.ttft_count OPERATOR(pg_catalog.+) EXCLUDED.ttft_count," \
"    first_seen = LEAST(u.first_seen, EXCLUDED.first_seen)," \
"    last_seen = GREATEST(u.last_seen, EXCLUDED.last_seen)," \
"    cached_tokens = u.cached_tokens OPERATOR(pg_catalog.+) EXCLUDED.cached_tokens," \
/* end rollup columns */ \
"    active_days = u.active_days OPERATOR(pg_catalog.+) EXCLUDED.active_days)"

/*
 * Fold the chunk; return how many logs with a customer it folded.  Their
 * active-day counts grow by the (customer, day) pairs of the chunk that had
 * no usage_customer_day row before: every part of the statement reads the
 * same snapshot, so the NOT EXISTS of cd sees the table as it was before the
 * statement, whatever order the parts run in.
 */
static const char *fold_sql =
"WITH" FOLD_SRC "," FOLD_CUSTOMERS "," FOLD_DAILY ","
FOLD_CUSTOMER_DAY_SRC "," FOLD_CUSTOMER_DAY "," FOLD_DAY "," FOLD_GAP_NEW ","
FOLD_DAY_GAPS "," FOLD_CUSTOMER
" SELECT COALESCE(pg_catalog.sum(src.requests), 0)::pg_catalog.int8 FROM src";

/*
 * The same on a Citus node, for one logs shard and its co-located rollup
 * shards: usage_day and usage_day_gaps, which have no customer to shard
 * by, are not kept there (the views read usage_customer_day instead).
 */
static const char *fold_shard_sql =
"WITH" FOLD_SRC "," FOLD_CUSTOMERS "," FOLD_DAILY ","
FOLD_CUSTOMER_DAY_SRC "," FOLD_CUSTOMER_DAY "," FOLD_CUSTOMER
" SELECT COALESCE(pg_catalog.sum(src.requests), 0)::pg_catalog.int8 FROM src";
/* clang-format on */

/*
 * The gaps rewritten after a fold chunk, in the snapshot of its fold
 * statements.  $1: the lo of the settled gaps (every locker ended before
 * the snapshot was taken); $2: the id up to which the gap logs are folded
 * (below a log set aside, everything of the gaps); $3, $4: the range
 * (W, hi] the chunk folded; $5: the lockers of the pass; $6 true records
 * the range's unseen ids as new gaps; $7: the server's start time.
 * settled: dropped whole (their logs seen were folded just now, and what
 * is left unseen never commits).  old: the other gaps with a log folded
 * just now; ranges: those and the new range, each rewritten as the pieces
 * of it holding no log seen now (lag over the ids of the range, one index
 * range scan each).
 */
static const char *gaps_sql =
"WITH settled AS ("
"  DELETE FROM analytics.rollup_gaps g"
"   WHERE g.lo OPERATOR(pg_catalog.=) ANY ($1) AND g.hi OPERATOR(pg_catalog.<=) $2),"
" old AS ("
"  DELETE FROM analytics.rollup_gaps g"
"   WHERE g.lo OPERATOR(pg_catalog.<=) $2"
"     AND NOT (g.lo OPERATOR(pg_catalog.=) ANY ($1) AND g.hi OPERATOR(pg_catalog.<=) $2)"
"     AND EXISTS (SELECT 1 FROM analytics.logs l"
"                  WHERE l.id OPERATOR(pg_catalog.>=) g.lo"
"                    AND l.id OPERATOR(pg_catalog.<=) LEAST(g.hi, $2))"
"  RETURNING g.lo, g.hi, g.lockers, g.server_started),"
" ranges AS ("
"  SELECT o.lo, o.hi, LEAST(o.hi, $2) AS upto, o.lockers, o.server_started FROM old o"
"  UNION ALL"
"  SELECT $3 OPERATOR(pg_catalog.+) 1, $4, $4, $5, $7 WHERE $6)"
" INSERT INTO analytics.rollup_gaps (lo, hi, lockers, server_started)"
" SELECT u.lo, u.hi, r.lockers, r.server_started"
"   FROM ranges r CROSS JOIN LATERAL ("
"     SELECT COALESCE(pg_catalog.lag(l.id) OVER (ORDER BY l.id) OPERATOR(pg_catalog.+) 1, r.lo) AS lo,"
"            l.id OPERATOR(pg_catalog.-) 1 AS hi"
"       FROM analytics.logs l"
"      WHERE l.id OPERATOR(pg_catalog.>=) r.lo AND l.id OPERATOR(pg_catalog.<=) r.upto"
"     UNION ALL"
"     SELECT COALESCE(pg_catalog.max(l.id) OPERATOR(pg_catalog.+) 1, r.lo), r.hi"
"       FROM analytics.logs l"
"      WHERE l.id OPERATOR(pg_catalog.>=) r.lo AND l.id OPERATOR(pg_catalog.<=) r.upto) u"
"  WHERE u.lo OPERATOR(pg_catalog.<=) u.hi";

/* The recorded gaps, as a fold chunk found them under the row lock. */
typedef struct RollupGaps
{
	int64		count;
	int64		min_lo;
	int64		max_hi;
	Datum		settled;		/* int8[]: the lo of each settled gap */
} RollupGaps;

/*
 * spi_run_in
 *		Run one parameterized statement through SPI (connected by the
 *		caller) and check its result code.  With a snapshot, the statement
 *		reads that snapshot (its command id advanced, so it sees what the
 *		transaction wrote before it); without, one of its own.
 */
void
spi_run_in(Snapshot snapshot, const char *sql, int nargs, Oid *argtypes,
		   Datum *values, const char *nulls, int expected)
{
	int			rc;

	if (snapshot == InvalidSnapshot)
		rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	else
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes,
											  CURSOR_OPT_CUSTOM_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		rc = SPI_execute_snapshot(plan, values, nulls, snapshot,
								  InvalidSnapshot, false, true, 0);
		SPI_freeplan(plan);
	}
	if (rc != expected)
		elog(ERROR, "SPI statement returned %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
}

/*
 * spi_run
 *		spi_run_in() with a snapshot of the statement's own.
 */
void
spi_run(const char *sql, int nargs, Oid *argtypes, Datum *values,
		const char *nulls, int expected)
{
	spi_run_in(InvalidSnapshot, sql, nargs, argtypes, values, nulls, expected);
}

/*
 * rollup_logs_relid
 *		The oid of analytics.logs.
 */
Oid
rollup_logs_relid(void)
{
	return shards_table("logs");
}

/*
 * rollup_sql_for
 *		sql as it reads and writes the relations that go with the logs
 *		relation logs: unchanged for analytics.logs, and for a Citus shard of
 *		it, every extension table that has shards named by its co-located
 *		shard (src/shards.c).  rollup_state and rollup_gaps are the node's
 *		own.
 */
const char *
rollup_sql_for(const char *sql, Oid logs)
{
	static const char *const tables[] = {
		"logs", "customers", "budget_counters", "usage_daily",
		"usage_customer_day", "usage_customer", "rollup_set_aside",
		"admissions"
	};
	StringInfoData buf;
	const char *p = sql;

	if (logs == rollup_logs_relid())
		return sql;
	initStringInfo(&buf);
	while (*p)
	{
		const char *hit = strstr(p, "analytics.");
		bool		replaced = false;

		if (hit == NULL)
		{
			appendStringInfoString(&buf, p);
			break;
		}
		appendBinaryStringInfo(&buf, p, hit - p);
		p = hit + strlen("analytics.");
		for (int i = 0; i < lengthof(tables); i++)
		{
			size_t		len = strlen(tables[i]);

			if (strncmp(p, tables[i], len) == 0 &&
				!(isalnum((unsigned char) p[len]) || p[len] == '_'))
			{
				appendStringInfoString(&buf, shards_colocated_name_oid(logs, tables[i]));
				p += len;
				replaced = true;
				break;
			}
		}
		if (!replaced)
			appendStringInfoString(&buf, "analytics.");
	}
	return buf.data;
}

/*
 * rollup_replace
 *		sql with every from replaced by to.
 */
const char *
rollup_replace(const char *sql, const char *from, const char *to)
{
	StringInfoData buf;
	const char *p = sql;
	const char *hit;

	initStringInfo(&buf);
	while ((hit = strstr(p, from)) != NULL)
	{
		appendBinaryStringInfo(&buf, p, hit - p);
		appendStringInfoString(&buf, to);
		p = hit + strlen(from);
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

/*
 * rollup_require_read_committed
 *		Refuse to run the fold-in (or what must serialize with it) under a
 *		transaction snapshot: it must see the logs committed since the pass
 *		began.
 */
void
rollup_require_read_committed(const char *what)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("%s cannot run under REPEATABLE READ or SERIALIZABLE isolation", what),
				 errdetail("The rollup must see the logs committed after it read the transactions writing them."),
				 errhint("Call it in a READ COMMITTED transaction.")));
}

/*
 * rollup_lock_state
 *		Lock the rollup_state row FOR UPDATE and read it.  Inside SPI; the
 *		lock is held until the end of the transaction.
 */
void
rollup_lock_state(RollupState *state)
{
	HeapTuple	tuple;
	TupleDesc	tupdesc;
	bool		isnull;
	Datum		d;

	spi_run("SELECT watermark, timezone, retained_from FROM analytics.rollup_state FOR UPDATE",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("analytics.rollup_state must hold exactly one row"),
				 errdetail("It holds %llu rows.", (unsigned long long) SPI_processed),
				 errhint("Reinstall the extension.")));
	tuple = SPI_tuptable->vals[0];
	tupdesc = SPI_tuptable->tupdesc;
	state->watermark = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 1, &isnull));
	state->timezone = SPI_getvalue(tuple, tupdesc, 2);
	d = SPI_getbinval(tuple, tupdesc, 3, &state->retained_from_null);
	state->retained_from = state->retained_from_null ? 0 : DatumGetTimestampTz(d);
}

/*
 * rollup_fold_range
 *		Fold the logs of fold->source with id in (lo, hi] (see RollupFold);
 *		return the number of logs with a customer folded.  Inside SPI, with
 *		the rollup_state row locked.
 */
static int64
rollup_fold_range(int64 lo, int64 hi, const RollupFold *fold)
{
	Oid			argtypes[7] = {INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
	BOOLOID, INT4OID};
	Datum		values[7];
	bool		isnull;

	spi_run_in(fold->snapshot,
			   rollup_sql_for("SELECT NOT EXISTS (SELECT 1 FROM analytics.rollup_set_aside)",
							  fold->logs),
			   0, NULL, NULL, NULL, SPI_OK_SELECT);
	values[5] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	values[0] = Int64GetDatum(lo);
	values[1] = Int64GetDatum(hi);
	values[2] = CStringGetTextDatum(fold->tz);
	values[3] = TimestampTzGetDatum(fold->since);
	values[4] = BoolGetDatum(fold->summaries);
	values[6] = Int32GetDatum((int32) fold->source);
	spi_run_in(fold->snapshot,
			   rollup_sql_for(fold->logs == rollup_logs_relid() ? fold_sql : fold_shard_sql,
							  fold->logs),
			   7, argtypes, values, NULL, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * rollup_vxid_encode, rollup_vxid_decode
 *		A virtual transaction id as one bigint of rollup_gaps.lockers:
 *		(backend id << 32) | local transaction id.
 */
static int64
rollup_vxid_encode(VirtualTransactionId vxid)
{
	return (int64) (((uint64) (uint32) vxid.backendId << 32) |
					(uint64) vxid.localTransactionId);
}

static VirtualTransactionId
rollup_vxid_decode(int64 locker)
{
	VirtualTransactionId vxid;

	vxid.backendId = (BackendId) (int32) ((uint64) locker >> 32);
	vxid.localTransactionId = (LocalTransactionId) ((uint64) locker & 0xFFFFFFFF);
	return vxid;
}

/*
 * rollup_locks_logs_for_writing
 *		Whether this transaction holds a lock on analytics.logs (tag) that
 *		writing takes: RowExclusiveLock or a stronger one.
 */
static bool
rollup_locks_logs_for_writing(LOCKTAG tag)
{
	LOCKMODE	modes[] = {RowExclusiveLock, ShareRowExclusiveLock, ExclusiveLock,
	AccessExclusiveLock};

	for (int i = 0; i < lengthof(modes); i++)
		if (LockHeldByMe(&tag, modes[i]))
			return true;
	return false;
}

/*
 * rollup_settle
 *		Step 1 of a pass: read the last id handed out by the logs identity
 *		sequence (pass->target), then the transactions that hold a lock on
 *		analytics.logs conflicting with ShareLock - every transaction that
 *		may still commit an id up to it (pass->lockers, allocated in cxt,
 *		which must outlive the pass's transactions).  Waits for nobody.
 *		Inside SPI, in a READ COMMITTED transaction; locks nothing beyond the
 *		sequence's AccessShareLock.
 */
void
rollup_settle(RollupPass *pass, MemoryContext cxt)
{
	bool		isnull;
	Datum		d;
	LOCKTAG		tag;
	VirtualTransactionId *vxids;
	int			n;
	bool		distributed;
	List	   *logs;
	ListCell   *lc;
	const char *seq;
	bool		mine_added = false;

	pass->target = 0;
	pass->nlockers = 0;
	pass->lockers = NULL;
	pass->folded = 0;
	pass->first = true;
	pass->logs = NIL;

	/*
	 * On a Citus node the ids of its logs shards are drawn by the insert
	 * trigger from analytics.log_ids, below the node's group id
	 * (src/shards.c); there is nothing to fold on a node without shards.
	 */
	distributed = shards_logs_distributed();
	logs = shards_local_logs();
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		pass->logs = list_copy(logs);
		MemoryContextSwitchTo(old);
	}
	if (logs == NIL)
		return;
	seq = distributed ? "'analytics.log_ids'" : "'analytics.logs_id_seq'";
	spi_run(psprintf("SELECT pg_catalog.pg_sequence_last_value(%s::pg_catalog.regclass)", seq),
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;
	pass->target = DatumGetInt64(d) | (distributed ? shards_node_prefix() : 0);

	/* Ids are handed out in order only one at a time (CACHE 1). */
	spi_run(psprintf("SELECT s.seqcache FROM pg_catalog.pg_sequence s "
					 "WHERE s.seqrelid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass", seq),
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1 &&
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s must have CACHE 1", distributed ? "analytics.log_ids" : "analytics.logs_id_seq"),
				 errdetail("With a cache, sessions hand out ids out of order and the rollup could miss logs."),
				 errhint("Run ALTER SEQUENCE %s CACHE 1.", distributed ? "analytics.log_ids" : "analytics.logs_id_seq")));

	/* Every writer of any of the node's logs relations. */
	pass->lockers = MemoryContextAlloc(cxt, sizeof(int64) * (list_length(logs) + 1) * 8);
	foreach(lc, logs)
	{
		int			max = (list_length(logs) + 1) * 8;

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, lfirst_oid(lc));
		vxids = GetLockConflicts(&tag, ShareLock, &n);
		if (pass->nlockers + n + 1 > max)
			pass->lockers = repalloc(pass->lockers,
									 sizeof(int64) * (pass->nlockers + n + 1 + max));
		for (int i = 0; i < n; i++)
			pass->lockers[pass->nlockers++] = rollup_vxid_encode(vxids[i]);

		/*
		 * GetLockConflicts leaves out this transaction: when it writes logs
		 * too (a fold called from a statement that is inserting a log, or
		 * from a trigger), an id it drew may not be in the table yet, so it
		 * is a writer in progress like the others.
		 */
		if (!mine_added && rollup_locks_logs_for_writing(tag))
		{
			VirtualTransactionId mine;

			GET_VXID_FROM_PGPROC(mine, *MyProc);
			pass->lockers[pass->nlockers++] = rollup_vxid_encode(mine);
			mine_added = true;
		}
	}
}

/*
 * rollup_locker_ended
 *		Whether the transaction a gap recorded as a locker has ended, without
 *		waiting.  prepared_writer: a prepared transaction holds a lock on
 *		analytics.logs in this database.  A transaction prepared before a
 *		crash restart or a promotion comes back under another virtual id
 *		((InvalidBackendId, xid)), and pg_postmaster_start_time() need not
 *		change, so while such a transaction may be the owner of a gap no
 *		locker counts as ended: the gaps wait (their logs seen are still
 *		folded) until it commits or rolls back.
 */
static bool
rollup_locker_ended(int64 locker, bool prepared_writer)
{
	VirtualTransactionId vxid = rollup_vxid_decode(locker);

	if (prepared_writer)
		return false;
	if (!VirtualTransactionIdIsValid(vxid))
		return true;
	return VirtualXactLock(vxid, false);
}

/*
 * rollup_read_gaps
 *		Read the recorded gaps and find the settled ones: those whose every
 *		locker has ended (rollup_locker_ended).  Must run before the fold
 *		statements take their snapshot: a locker that ended before it is
 *		visible to it when it committed.  Inside SPI, with the rollup_state
 *		row locked (only its holder changes the gaps).
 */
static void
rollup_read_gaps(RollupGaps *gaps)
{
	SPITupleTable *rows;
	uint64		nrows;
	bool		prepared_writer;
	HTAB	   *ended;
	HASHCTL		ctl;
	Datum	   *settled;
	int			nsettled = 0;
	bool		isnull;

	gaps->count = 0;
	gaps->min_lo = PG_INT64_MAX;
	gaps->max_hi = 0;
	{
		List	   *logs = shards_local_logs();
		Datum	   *oids = palloc(sizeof(Datum) * Max(list_length(logs), 1));
		int			noids = 0;
		ListCell   *lc;
		Oid			argtypes[1] = {OIDARRAYOID};
		Datum		values[1];

		foreach(lc, logs)
			oids[noids++] = ObjectIdGetDatum(lfirst_oid(lc));
		values[0] = PointerGetDatum(construct_array(oids, noids, OIDOID, sizeof(Oid),
													true, TYPALIGN_INT));
		spi_run("SELECT lo, hi, lockers, server_started, "
				"EXISTS (SELECT 1 FROM pg_catalog.pg_locks k "
				"         WHERE k.locktype OPERATOR(pg_catalog.=) 'relation' "
				"           AND k.relation OPERATOR(pg_catalog.=) ANY ($1) "
				"           AND k.database OPERATOR(pg_catalog.=) "
				"               (SELECT d.oid FROM pg_catalog.pg_database d "
				"                 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) "
				"           AND k.pid IS NULL) "
				"FROM analytics.rollup_gaps",
				1, argtypes, values, NULL, SPI_OK_SELECT);
	}
	rows = SPI_tuptable;
	nrows = SPI_processed;
	settled = palloc(sizeof(Datum) * Max(nrows, 1));
	if (nrows > 0)
	{
		prepared_writer = DatumGetBool(SPI_getbinval(rows->vals[0], rows->tupdesc, 5, &isnull));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(int64) + sizeof(bool);
		ctl.hcxt = CurrentMemoryContext;
		ended = hash_create("analytics gap lockers", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tuple = rows->vals[r];
		int64		lo = DatumGetInt64(SPI_getbinval(tuple, rows->tupdesc, 1, &isnull));
		int64		hi = DatumGetInt64(SPI_getbinval(tuple, rows->tupdesc, 2, &isnull));
		ArrayType  *lockers = DatumGetArrayTypeP(SPI_getbinval(tuple, rows->tupdesc, 3, &isnull));
		Datum	   *elems;
		bool	   *nulls;
		int			nelems;
		bool		all_ended = true;

		gaps->count++;
		gaps->min_lo = Min(gaps->min_lo, lo);
		gaps->max_hi = Max(gaps->max_hi, hi);
		deconstruct_array(lockers, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, &nulls, &nelems);
		for (int i = 0; i < nelems && all_ended; i++)
		{
			int64		locker = nulls[i] ? 0 : DatumGetInt64(elems[i]);
			bool		found;
			char	   *entry = hash_search(ended, &locker, HASH_ENTER, &found);

			if (!found)
				entry[sizeof(int64)] = rollup_locker_ended(locker, prepared_writer);
			all_ended = entry[sizeof(int64)];
		}
		if (all_ended)
			settled[nsettled++] = Int64GetDatum(lo);
	}
	if (nrows > 0)
		hash_destroy(ended);
	gaps->settled = PointerGetDatum(construct_array(settled, nsettled, INT8OID,
													sizeof(int64), FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE));
}

/*
 * rollup_rewrite_gaps
 *		After a fold chunk, in its snapshot: drop the settled gaps, take the
 *		logs folded just now out of the others (those up to gaps_done), and
 *		record the unseen ids of the range (lo, hi] the chunk folded as new
 *		gaps with the pass's lockers (gaps_sql).  A pass that found no
 *		locker records none: every transaction that drew an id up to its
 *		target had ended before the snapshot, so an id it does not see
 *		never commits.  Inside SPI, with the rollup_state row locked.
 */
static void
rollup_rewrite_gaps(const RollupGaps *gaps, int64 gaps_done, int64 lo,
					int64 hi, const RollupPass *pass, Snapshot snapshot)
{
	Oid			argtypes[7] = {INT8ARRAYOID, INT8OID, INT8OID, INT8OID,
	INT8ARRAYOID, BOOLOID, TIMESTAMPTZOID};
	Datum		values[7];
	Datum	   *lockers;
	bool		record = pass->nlockers > 0 && hi > lo;

	if (gaps->count == 0 && !record)
		return;
	lockers = palloc(sizeof(Datum) * Max(pass->nlockers, 1));
	for (int i = 0; i < pass->nlockers; i++)
		lockers[i] = Int64GetDatum(pass->lockers[i]);
	values[0] = gaps->settled;
	values[1] = Int64GetDatum(gaps_done);
	values[2] = Int64GetDatum(lo);
	values[3] = Int64GetDatum(hi);
	values[4] = PointerGetDatum(construct_array(lockers, pass->nlockers, INT8OID,
												sizeof(int64), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[5] = BoolGetDatum(record);
	values[6] = TimestampTzGetDatum(PgStartTime);
	spi_run_in(snapshot, rollup_replace(gaps_sql, "analytics.logs l", shards_logs_sql(pass->logs)),
			   7, argtypes, values, NULL, SPI_OK_INSERT);
}

/*
 * rollup_error_is_data
 *		Whether an error of the fold statement comes from the logs it read,
 *		so that folding the same logs again would fail again: a sum that
 *		overflows (22003), a day out of range (22008), an index row too
 *		large (54000: a model name too long for the rollup's key).  Every
 *		other error - a lock, a cancel, resources, a time zone the system no
 *		longer knows - is the system's, and a later pass may not meet it.
 */
static bool
rollup_error_is_data(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE ||
		sqlerrcode == ERRCODE_DATETIME_VALUE_OUT_OF_RANGE ||
		sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED;
}

/*
 * rollup_try_fold
 *		rollup_fold_range(lo, hi, fold) in a subtransaction.  On success adds
 *		the logs folded to *folded and returns true.  When the statement
 *		fails for its data (rollup_error_is_data), undoes it and returns
 *		false with the error in *error; any other error is raised again
 *		after the subtransaction is rolled back.  Inside SPI, with the
 *		rollup_state row locked.
 */
static bool
rollup_try_fold(int64 lo, int64 hi, const RollupFold *fold, int64 *folded,
				ErrorData **error)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		*folded += rollup_fold_range(lo, hi, fold);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (!rollup_error_is_data(edata->sqlerrcode))
			ReThrowError(edata);
		*error = edata;
	}
	PG_END_TRY();
	return ok;
}

/*
 * rollup_set_aside
 *		Record that log id cannot be folded (error says why): it goes to
 *		analytics.rollup_set_aside, which the fold skips from then on, and a
 *		WARNING goes to the server log.  The log's customer is created if it
 *		is missing, as the fold would have.  Reads snapshot (see
 *		spi_run_in).  Inside SPI, with the rollup_state row locked.
 */
static void
rollup_set_aside(int64 id, ErrorData *error, Snapshot snapshot, Oid logs)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char	   *message = error->message ? error->message : "";

	/* The message may quote a value of the log: keep the first 1000 bytes. */
	message = pnstrdup(message, pg_mbcliplen(message, strlen(message), 1000));
	ereport(WARNING,
			(errcode(error->sqlerrcode),
			 errmsg("analytics rollup set aside log %lld, which cannot be folded",
					(long long) id),
			 errdetail("Folding it failed with SQLSTATE %s: %s",
					   unpack_sql_state(error->sqlerrcode), message),
			 errhint("The views do not count it; see analytics.rollup_set_aside.")));
	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(unpack_sql_state(error->sqlerrcode));
	values[2] = CStringGetTextDatum(message);
	spi_run_in(snapshot, rollup_sql_for("INSERT INTO analytics.customers (customer_identifier) "
										"SELECT l.customer_identifier FROM analytics.logs l "
										"WHERE l.id OPERATOR(pg_catalog.=) $1 "
										"ON CONFLICT (customer_identifier) DO NOTHING", logs),
			   1, argtypes, values, NULL, SPI_OK_INSERT);
	spi_run_in(snapshot, rollup_sql_for("INSERT INTO analytics.rollup_set_aside (log_id, customer_identifier, sqlstate, error) "
										"SELECT l.id, l.customer_identifier, $2, $3 FROM analytics.logs l "
										"WHERE l.id OPERATOR(pg_catalog.=) $1", logs),
			   3, argtypes, values, NULL, SPI_OK_INSERT);
}

/*
 * rollup_fold_guarded
 *		Fold the logs of fold->source with id in (lo, hi] so that no log can
 *		stop it: a fold statement that fails for its data is halved until a
 *		prefix folds (kept, and the rest is tried again) or a single log
 *		fails, which is set aside (rollup_set_aside).  At most one log is set
 *		aside per call, so a transaction holds a bounded number of
 *		subtransactions (about 2 log2(hi - lo)).  Returns the id up to which
 *		every log is folded or set aside: hi, or the id of the log set aside.
 *		Inside SPI, with the rollup_state row locked.
 */
int64
rollup_fold_guarded(int64 lo, int64 hi, const RollupFold *fold, int64 *folded)
{
	int64		end = hi;

	while (lo < hi)
	{
		ErrorData  *error = NULL;

		if (rollup_try_fold(lo, end, fold, folded, &error))
		{
			lo = end;
			end = hi;
			continue;
		}
		if (end == lo + 1)
		{
			rollup_set_aside(end, error, fold->snapshot, fold->logs);
			FreeErrorData(error);
			return end;
		}
		FreeErrorData(error);
		end = lo + (end - lo) / 2;
	}
	return hi;
}

/*
 * rollup_fold_through
 *		rollup_fold_guarded() until every log of (lo, hi] is folded or set
 *		aside.
 */
void
rollup_fold_through(int64 lo, int64 hi, const RollupFold *fold, int64 *folded)
{
	while (lo < hi)
		lo = rollup_fold_guarded(lo, hi, fold, folded);
}

/*
 * rollup_rebuild_summaries
 *		Rebuild the coarser rollups of the logs relation logs from its
 *		usage_daily: _rollup_rebuild_summaries(), or on a Citus node its
 *		statements, less those of usage_day and usage_day_gaps (not kept on
 *		a cluster), on the shards co-located with logs.  Inside SPI.
 */
void
rollup_rebuild_summaries(Oid logs)
{
	char	   *src;
	char	   *stmt;
	char	   *save;

	if (logs == rollup_logs_relid())
	{
		spi_run("SELECT analytics._rollup_rebuild_summaries()", 0, NULL, NULL,
				NULL, SPI_OK_SELECT);
		return;
	}

	spi_run("SELECT p.prosrc FROM pg_catalog.pg_proc p "
			"WHERE p.oid OPERATOR(pg_catalog.=) 'analytics._rollup_rebuild_summaries()'::pg_catalog.regprocedure",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	src = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	for (stmt = strtok_r(src, ";", &save); stmt != NULL; stmt = strtok_r(NULL, ";", &save))
	{
		const char *day = strstr(stmt, "analytics.usage_day");

		if ((day != NULL &&
			 ((!isalnum((unsigned char) day[19]) && day[19] != '_') ||
			  (strncmp(day + 19, "_gaps", 5) == 0 &&
			   !isalnum((unsigned char) day[24]) && day[24] != '_'))) ||
			strspn(stmt, " \t\n") == strlen(stmt))
			continue;
		spi_run(rollup_sql_for(stmt, logs), 0, NULL, NULL, NULL,
				strncmp(stmt + strspn(stmt, " \t\n"), "DELETE", 6) == 0 ? SPI_OK_DELETE : SPI_OK_INSERT);
	}
}

/*
 * rollup_refold
 *		Fold into usage_daily (not the coarser rollups: rebuild them after)
 *		every log of the logs relation logs created at or after since that
 *		this node's state counts as folded: ids up to watermark outside the
 *		gaps, and on a Citus node every id drawn on another node (a shard
 *		moved in, or logs distributed from a single node, all committed).
 *		Chunked over the ids present, so sparse ranges cost nothing.
 *		Inside SPI, with the rollup_state row locked.
 */
void
rollup_refold(Oid logs, int64 watermark, const char *tz, TimestampTz since, int64 *folded)
{
	RollupFold	fold;
	bool		isnull;
	int64		ranges[2][2];
	int			nranges = 1;

	spi_run("SELECT EXISTS (SELECT 1 FROM analytics.rollup_gaps)", 0, NULL,
			NULL, NULL, SPI_OK_SELECT);
	fold.tz = tz;
	fold.since = since;
	fold.summaries = false;
	fold.source = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull))
		? ROLLUP_SOURCE_OUTSIDE : ROLLUP_SOURCE_ALL;
	fold.snapshot = InvalidSnapshot;
	fold.logs = logs;
	ranges[0][0] = 0;
	ranges[0][1] = watermark;
	if (shards_logs_distributed())
	{
		/* Ids below the node's own were drawn on other nodes. */
		ranges[0][1] = Max(watermark, shards_node_prefix());
		ranges[1][0] = shards_id_last();
		ranges[1][1] = PG_INT64_MAX;
		nranges = 2;
	}
	for (int r = 0; r < nranges; r++)
	{
		int64		lo = ranges[r][0];
		int64		hi = ranges[r][1];

		while (lo < hi)
		{
			Oid			argtypes[2] = {INT8OID, INT8OID};
			Datum		values[2] = {Int64GetDatum(lo), Int64GetDatum(hi)};
			Datum		next;

			spi_run(rollup_sql_for("SELECT pg_catalog.min(l.id) FROM analytics.logs l "
								   "WHERE l.id OPERATOR(pg_catalog.>) $1 AND l.id OPERATOR(pg_catalog.<=) $2",
								   logs),
					2, argtypes, values, NULL, SPI_OK_SELECT);
			next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (isnull)
				break;
			lo = DatumGetInt64(next) - 1;
			lo = rollup_fold_guarded(lo, hi - lo > ROLLUP_CHUNK_IDS ? lo + ROLLUP_CHUNK_IDS : hi,
									 &fold, folded);
		}
	}
}

/*
 * rollup_take_over
 *		On a Citus node, before a pass folds: a logs shard this node has not
 *		folded before (rollup_node_shards) came with distribute() or a shard
 *		move, holding logs drawn on another node, folded or not by that
 *		node's state, which stayed there.  Rebuild its rollups from its raw
 *		logs (the days before retained_from keep their rows: their logs may
 *		be purged), as set_timezone() does, and record it.  Shards that left
 *		the node are forgotten, so one that comes back is taken over again.
 *		Inside SPI, with the rollup_state row locked.
 */
static void
rollup_take_over(const RollupState *state, List *logs)
{
	Datum	   *ids = palloc(sizeof(Datum) * Max(list_length(logs), 1));
	int			nids = 0;
	ListCell   *lc;
	Oid			argtypes[2] = {INT8ARRAYOID, OIDOID};
	Datum		values[2];

	foreach(lc, logs)
	{
		int64		shardid = shards_shard_id(lfirst_oid(lc));

		if (shardid == 0)
			elog(ERROR, "logs shard %u vanished during a pass", lfirst_oid(lc));
		ids[nids++] = Int64GetDatum(shardid);
	}
	values[0] = PointerGetDatum(construct_array(ids, nids, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	spi_run("DELETE FROM analytics.rollup_node_shards "
			"WHERE shardid OPERATOR(pg_catalog.<>) ALL ($1)",
			1, argtypes, values, NULL, SPI_OK_DELETE);
	for (int i = 0; i < nids; i++)
	{
		Oid			shard = list_nth_oid(logs, i);
		int64		refolded = 0;
		Oid			delargtypes[2] = {TEXTOID, TIMESTAMPTZOID};
		Datum		delvalues[2];
		char		delnulls[2] = {' ', state->retained_from_null ? 'n' : ' '};

		/*
		 * A shard that left and came back is a new relation: taken over
		 * again, though its shard id is listed.
		 */
		values[0] = ids[i];
		values[1] = ObjectIdGetDatum(shard);
		spi_run("SELECT 1 FROM analytics.rollup_node_shards "
				"WHERE shardid OPERATOR(pg_catalog.=) $1 AND relid OPERATOR(pg_catalog.=) $2",
				2, (Oid[]) {INT8OID, OIDOID}, values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			continue;
		delvalues[0] = CStringGetTextDatum(state->timezone);
		delvalues[1] = TimestampTzGetDatum(state->retained_from);
		spi_run(rollup_sql_for("DELETE FROM analytics.usage_daily "
							   "WHERE $2 IS NULL OR day OPERATOR(pg_catalog.>=) "
							   "pg_catalog.timezone($1, $2)::pg_catalog.date", shard),
				2, delargtypes, delvalues, delnulls, SPI_OK_DELETE);
		rollup_refold(shard, state->watermark, state->timezone,
					  state->retained_from_null ? DT_NOBEGIN : state->retained_from, &refolded);
		rollup_rebuild_summaries(shard);
		spi_run("INSERT INTO analytics.rollup_node_shards (shardid, relid) VALUES ($1, $2) "
				"ON CONFLICT (shardid) DO UPDATE SET relid = EXCLUDED.relid, taken_over = pg_catalog.now()",
				2, (Oid[]) {INT8OID, OIDOID}, values, NULL, SPI_OK_INSERT);
	}
}

/*
 * rollup_cluster_settings
 *		On a Citus node, before a take-over: whether this node folds with
 *		the cluster's time zone and retention boundary (rollup_settings, a
 *		reference table).  A node that has taken over no shard yet (new, or
 *		just distributed) adopts them; one that has and differs (a
 *		set_timezone() that did not reach it) takes over nothing until
 *		set_timezone() runs again, and says so.  Inside SPI, with the
 *		rollup_state row locked.
 */
static bool
rollup_cluster_settings(RollupState *state)
{
	char	   *tz;
	bool		from_null;
	TimestampTz from;
	bool		same;

	spi_run("SELECT timezone, retained_from FROM analytics.rollup_settings",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return true;
	tz = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	from = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											 2, &from_null));
	same = strcmp(tz, state->timezone) == 0 &&
		from_null == state->retained_from_null &&
		(from_null || from == state->retained_from);
	if (same)
		return true;
	spi_run("SELECT 1 FROM analytics.rollup_node_shards LIMIT 1",
			0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("analytics rollup of this node uses time zone %s, the cluster %s",
						state->timezone, tz),
				 errdetail("The node takes over no new shard until they agree."),
				 errhint("Run SELECT analytics.set_timezone('%s') on the coordinator again.", tz)));
		return false;
	}
	{
		Oid			argtypes[2] = {TEXTOID, TIMESTAMPTZOID};
		Datum		values[2] = {CStringGetTextDatum(tz), TimestampTzGetDatum(from)};
		char		nulls[2] = {' ', from_null ? 'n' : ' '};

		spi_run("UPDATE analytics.rollup_state SET timezone = $1, retained_from = $2",
				2, argtypes, values, nulls, SPI_OK_UPDATE);
	}
	state->timezone = tz;
	state->retained_from_null = from_null;
	state->retained_from = from;
	return true;
}

/*
 * rollup_record_pass
 *		Move the watermark to hi and record the pass (last_pass,
 *		last_pass_folded).  Inside SPI, with the rollup_state row locked.
 */
static void
rollup_record_pass(int64 hi, int64 folded)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(hi);
	values[1] = Int64GetDatum(folded);
	spi_run("UPDATE analytics.rollup_state SET watermark = $1, "
			"last_pass = pg_catalog.now(), last_pass_folded = $2",
			2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * rollup_fold_chunk
 *		Step 2 of a pass, for one chunk (src/README.md, "How a log is counted
 *		exactly once"): lock the rollup_state row, find the settled gaps,
 *		then in one fresh snapshot fold the logs seen inside the recorded
 *		gaps and those with id in (watermark, min(watermark +
 *		ROLLUP_CHUNK_IDS, target)] (rollup_fold_guarded: a log that cannot
 *		be folded is set aside and ends the chunk), rewrite the gaps and
 *		move the watermark as far as that went, adding the number of logs
 *		folded to pass->folded (recorded as last_pass_folded).  pass comes
 *		from rollup_settle() in this transaction or an earlier one; another
 *		fold may have gone past its target meanwhile, and the watermark never
 *		moves back.  The first chunk of a pass records the pass even when
 *		there is nothing to fold.  Returns whether more remains.  Inside SPI;
 *		the row lock is held until the end of the transaction.
 */
bool
rollup_fold_chunk(RollupPass *pass)
{
	RollupState state;
	RollupGaps	gaps;
	RollupFold	fold;
	int64		start;
	int64		hi;
	int			guc_level;
	ListCell   *lc;

	rollup_lock_state(&state);
	if (shards_logs_distributed() && rollup_cluster_settings(&state))
		rollup_take_over(&state, pass->logs);
	if (state.watermark >= pass->target && !pass->first)
		return false;
	pass->first = false;
	if (pass->target == 0)
	{
		/*
		 * No id was ever handed out: a fresh install, or a restore that has
		 * not set the sequence yet (its gaps and rollups may be half loaded).
		 * Record the pass, touch nothing else.
		 */
		rollup_record_pass(state.watermark, pass->folded);
		return false;
	}

	/*
	 * Planned from tables that are rarely analyzed (the gaps), the fold may
	 * look costly enough to be JIT-compiled on every pass: never worth it.
	 */
	guc_level = NewGUCNestLevel();
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	rollup_read_gaps(&gaps);

	/* A Citus node's ids start at its group id (src/shards.c). */
	start = Max(state.watermark,
				shards_logs_distributed() ? shards_node_prefix() : 0);
	fold.tz = state.timezone;
	fold.since = DT_NOBEGIN;
	fold.summaries = true;
	fold.snapshot = RegisterSnapshot(GetLatestSnapshot());
	hi = Min(start + ROLLUP_CHUNK_IDS, pass->target);
	foreach(lc, pass->logs)
	{
		fold.logs = lfirst_oid(lc);
		fold.source = ROLLUP_SOURCE_GAPS;
		if (gaps.count > 0)
			rollup_fold_through(gaps.min_lo - 1, gaps.max_hi, &fold, &pass->folded);
		fold.source = ROLLUP_SOURCE_ALL;
		if (start < hi)
			rollup_fold_through(start, hi, &fold, &pass->folded);
	}
	hi = Max(hi, start);
	rollup_rewrite_gaps(&gaps, gaps.max_hi, start, hi, pass, fold.snapshot);
	UnregisterSnapshot(fold.snapshot);
	AtEOXact_GUC(true, guc_level);

	rollup_record_pass(hi, pass->folded);
	return hi < pass->target;
}

/*
 * rollup_fold_all
 *		One whole pass in the current transaction; returns the number of
 *		logs folded.  Inside SPI, READ COMMITTED; leaves the rollup_state
 *		row locked.
 */
int64
rollup_fold_all(void)
{
	RollupPass	pass;

	rollup_settle(&pass, CurrentMemoryContext);
	while (rollup_fold_chunk(&pass))
		;
	return pass.folded;
}

/*
 * rollup_now
 *		SQL: analytics.rollup_now() returns bigint.  One pass in the caller's
 *		transaction (READ COMMITTED); returns the number of logs folded.
 */
static Datum
rollup_now_as_owner(PG_FUNCTION_ARGS)
{
	int64		folded;

	rollup_require_read_committed("analytics.rollup_now()");
	SPI_connect();
	folded = rollup_fold_all();
	SPI_finish();
	PG_RETURN_INT64(folded);
}

/*
 * The SQL entry point of rollup_now().  It first checks that the
 * caller is a member of analytics_admin, before any lock (a lock taken
 * first would hold up every log writer until the refusal), then does its
 * work with the extension owner's rights (privs.c): admins do not write
 * the rollups, budget_counters or rollup_state themselves.
 */
Datum
rollup_now(PG_FUNCTION_ARGS)
{
	analytics_require_current("analytics.rollup_now()");
	privs_require_admin("analytics.rollup_now()");
	return privs_call_as_owner(rollup_now_as_owner, fcinfo);
}
