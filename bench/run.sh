#!/bin/bash
# The benchmark suite of SPEC §8: bench/run.sh [--scale F] [--reps N]
#
# Sets up (packages, build, install: scripts/setup.sh), starts a throwaway
# cluster in a temporary directory as the unprivileged user, generates the
# reference data, measures every figure of §8 against its baseline in the
# same run, prints one table and writes it to bench/results-<F>.md.  A
# figure whose extension object does not exist yet is reported as n/a.
#
#   --scale F   1 (default): 100k customers, 5M logs, 200k-row bulk loads;
#               F scales customers and logs (0.02: 2k customers, 100k logs)
#   --reps N    runs of each side of each figure (default 3); the median
#               is reported
#   --sync-commit on|off
#               synchronous_commit of the single-row runs (default on: each
#               insert waits for its WAL flush; off shows the CPU cost alone)
#   --extra-sql FILE
#               SQL run in both databases right after CREATE EXTENSION, to
#               try an object (a view, a function) before it is merged
#   --tail N    logs not folded yet while the views are timed (default
#               2000: one rollup_interval, 0.5 s, of the single-row rate,
#               about 4,000 logs/s here; the Users page is also timed with
#               4 times as many, 2 s of that rate, SPEC 8's upper bound)
#   --wide      the views only, at a tenth of 1M customers and 10M logs
#               (times F) and then at all of them, with each view's growth
#   --citus     instead of the figures above: the dashboard reads and bulk
#               ingest on a single node and on a Citus cluster (a coordinator
#               and 2 workers on this machine) with the same data, side by
#               side; written to bench/results-citus-<F>.md (bench/citus.sh)
#
# It takes the install lock of scripts/test.sh (scripts/lock.sh) for its whole run: the
# library is installed system-wide and nobody may reinstall it under us.
# Not a test: CI never runs it.
set -euo pipefail
shopt -s inherit_errexit

SCALE=1
REPS=3
EXTRA_SQL=""
SYNC=on
CITUS=""
WIDE=""
TAIL=2000
while [ $# -gt 0 ]; do
	case "$1" in
		--scale) SCALE="$2"; shift 2 ;;
		--scale=*) SCALE="${1#--scale=}"; shift ;;
		--reps) REPS="$2"; shift 2 ;;
		--reps=*) REPS="${1#--reps=}"; shift ;;
		--extra-sql) EXTRA_SQL="$(realpath "$2")"; shift 2 ;;
		--sync-commit) SYNC="$2"; shift 2 ;;
		--citus) CITUS=1; shift ;;
		--wide) WIDE=1; shift ;;
		--tail) TAIL="$2"; shift 2 ;;
		-h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
		*) echo "bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
if ! awk -v s="$SCALE" 'BEGIN { exit !(s + 0 > 0 && s + 0 <= 4) }'; then
	echo "bench: --scale must be a number in (0, 4]" >&2
	exit 2
fi
SCALE="$(awk -v s="$SCALE" 'BEGIN { printf "%g", s }')"
case "$REPS" in ''|*[!0-9]*|0) echo "bench: --reps is a positive integer" >&2; exit 2 ;; esac
case "$TAIL" in ''|*[!0-9]*) echo "bench: --tail is a number of logs" >&2; exit 2 ;; esac
case "$SYNC" in on|off) ;; *) echo "bench: --sync-commit is on or off" >&2; exit 2 ;; esac

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
START=$(date +%s)

source "$BENCH_DIR/../scripts/lock.sh"
LOCKED=$(date +%s)
source "$BENCH_DIR/../scripts/setup.sh"
if [ -n "$CITUS" ] && [ ! -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
	echo "bench: --citus needs Citus, and there is no citus.so in $("$PG_CONFIG" --pkglibdir)" \
		"(Citus 13.2 for PostgreSQL 15: bash ../shared/citus/install.sh builds and installs it)" >&2
	exit 1
fi

# Sizes.  Bulk loads are 200k logs at full scale, never fewer than 50k.
NCUST=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 100000 * s }')
NLOGS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 5000000 * s }')
NBULK=$(awk -v s="$SCALE" 'BEGIN { n = 200000 * s; printf "%d", (n < 50000 ? 50000 : n) }')
PGBENCH_T=$(awk -v s="$SCALE" 'BEGIN { t = int(20 * s + 0.5); printf "%d", (t < 5 ? 5 : t) }')

# What is installed now; checked again at the end (see the lock above).
installed_sum() {
	cat "$("$PG_CONFIG" --pkglibdir)/analytics.so" "$("$PG_CONFIG" --sharedir)"/extension/analytics* | md5sum
}
INSTALLED_SUM="$(installed_sum)"

TMP="$(mktemp -d /tmp/analytics-bench.XXXXXX)"
PORT=54329
OUT="$BENCH_DIR/results-$SCALE.md"
if [ "$SYNC" = off ]; then
	OUT="$BENCH_DIR/results-$SCALE-async.md"
fi
if [ -n "$CITUS" ]; then
	OUT="$BENCH_DIR/results-citus-$SCALE.md"
fi
if [ -n "$WIDE" ]; then
	OUT="$BENCH_DIR/results-wide-$SCALE.md"
fi
ROWS="$TMP/rows.tsv"
NOTES="$TMP/notes.txt"
if [ "$(id -u)" -eq 0 ]; then
	chown "$RUN_AS" "$TMP"
fi
chmod 755 "$TMP"

# Every server of the run has its data directory in $TMP.
cleanup() {
	local pid
	for pid in "$TMP"/*/postmaster.pid; do
		[ -f "$pid" ] || continue
		run_as "$PGBIN/pg_ctl" -D "${pid%/*}" -m fast -w stop >/dev/null 2>&1 ||
			run_as "$PGBIN/pg_ctl" -D "${pid%/*}" -m immediate -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== [$(( $(date +%s) - START ))s] $*"; }

# qp PORT DB ARGS...: psql as the cluster user on the server of PORT, tuples
# only, stop at the first error.  q DB ARGS...: the same on the single node.
qp() {
	local port="$1" db="$2"
	shift 2
	run_as "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$TMP" -p "$port" -d "$db" "$@"
}
q() {
	qp "$PORT" "$@"
}

# row FIGURE OURS BASELINE RATIO TARGET MET NOTE: one line of the results table.
row() {
	local IFS=$'\t'
	echo "$*" >>"$ROWS"
}

# na FIGURE TARGET OBJECT: the figure cannot be measured yet.
na() {
	row "$1" "n/a (missing: $3)" "" "" "$2" "n/a" ""
}

# step NAME FUNCTION: run one measurement; a failure is reported in the
# table and the bench goes on with the next one.
step() {
	local name="$1" rc t0
	shift
	log "$name"
	t0=$(date +%s)
	set +e
	(set -e; "$@")
	rc=$?
	set -e
	echo "$name $(( $(date +%s) - t0 )) s" >>"$TMP/steps.txt"
	if [ "$rc" -ne 0 ]; then
		row "$name" "error (exit $rc, see the log above)" "" "" "" "no" ""
	fi
}

# ---------------------------------------------------------------- cluster

# start_server DIR PORT CONF: initdb DIR and start it on PORT (Unix socket
# in $TMP) with the settings every server of the run shares and CONF (the
# libraries, memory and anything the server's role needs).
start_server() {
	local dir="$1" port="$2" conf="$3"
	run_as "$PGBIN/initdb" -D "$dir" -A trust -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 ||
		{ cat "$dir.initdb.log"; return 1; }
	cat >>"$dir/postgresql.conf" <<EOF
# analytics benchmark on a 24 GiB / 2-core machine
unix_socket_directories = '$TMP'
port = $port
synchronous_commit = on
random_page_cost = 1.1
jit = off
timezone = 'UTC'
log_min_messages = warning
checkpoint_timeout = 30min
analytics.rollup_interval = '1s'
$conf
EOF
	# The server must not inherit the lock's descriptor: it would hold the lock.
	run_as "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w start >/dev/null 9>&- ||
		{ cat "$dir.log"; return 1; }
}

# The single node's libraries and memory (24 GiB, 2 cores, one server).
SINGLE_CONF="shared_preload_libraries = 'analytics'
listen_addresses = ''
max_connections = 50
max_worker_processes = 16
shared_buffers = 2GB
effective_cache_size = 16GB
work_mem = 64MB
maintenance_work_mem = 1GB
max_wal_size = 20GB
min_wal_size = 2GB
wal_buffers = 64MB"

log "cluster in $TMP (scale $SCALE: $NCUST customers, $NLOGS logs, bulk $NBULK, pgbench ${PGBENCH_T}s, $REPS reps)"
start_server "$TMP/data" "$PORT" "$SINGLE_CONF"

# newdb DB [PORT [PREPARE]]: a database with the extension and the harness,
# on the single node or the server of PORT; the command PREPARE runs after
# CREATE DATABASE, before CREATE EXTENSION analytics.
newdb() {
	local db="$1" port="${2:-$PORT}" prepare="${3:-}"
	run_as "$PGBIN/createdb" -h "$TMP" -p "$port" "$db"
	if [ -n "$prepare" ]; then
		"$prepare"
	fi
	qp "$port" "$db" -c "CREATE EXTENSION analytics"
	if [ -n "$EXTRA_SQL" ]; then
		qp "$port" "$db" <"$EXTRA_SQL"
	fi
	qp "$port" "$db" <"$BENCH_DIR/sql/harness.sql"
}

# has DB OBJECT: whether analytics has it (relation, or function "name(").
has() {
	[ "$(q "$1" -c "SELECT bench.object_exists('$2')")" = t ]
}

# checkpoint and fold in, so that each timed run starts from the same state
settle() {
	q "$1" -c "SELECT bench.settle()" >/dev/null
	q "$1" -c "CHECKPOINT"
}

# sample DB FIGURE SIDE REP VALUE
sample() {
	q "$1" -c "INSERT INTO bench.samples VALUES ('$2', '$3', $4, $5)"
}

# fig DB KEY LABEL KIND TARGET TARGET_TEXT [NOTE [MET]]: the medians of the
# samples of KEY as a table row.  KIND rate: rows/s, ratio ours/baseline;
# time: ms, ratio baseline/ours; met when ratio >= TARGET (NULL: no target),
# unless MET is given.
fig() {
	local db="$1" key="$2" label="$3" kind="$4" target="$5" ttext="$6" note="${7:-}" met="${8:-}"
	q "$db" -F $'\t' -c "
		WITH m AS (SELECT ours AS o, baseline AS b FROM bench.medians(\$f\$$key\$f\$)),
		r AS (SELECT o, b, CASE '$kind' WHEN 'rate' THEN o / b ELSE b / o END AS ratio FROM m)
		SELECT \$l\$$label\$l\$, bench.fmt(o, '$kind'), bench.fmt(b, '$kind'),
		       round(ratio::numeric, 2) || '×', \$t\$$ttext\$t\$,
		       coalesce(nullif(\$m\$$met\$m\$, ''),
		                CASE WHEN $target::float8 IS NULL THEN '—' WHEN ratio >= $target THEN 'yes' ELSE 'NO' END),
		       \$n\$$note\$n\$
		FROM r" >>"$ROWS"
}

# ------------------------------------------------- write path (bench_write)
# Both sides start from the same state: the reference customers, empty
# logs tables (analytics.logs, bench.plain_logs, bench.peer_logs), and
# each timed run is preceded by a fold-in and a checkpoint.

W=bench_write

write_setup() {
	newdb $W
	q $W <"$BENCH_DIR/sql/peer.sql"
	q $W -c "SELECT bench.gen_customers($NCUST)"
	q $W -c "CREATE TABLE bench.src_logs AS $(q $W -c "SELECT bench.gen_logs_sql($NBULK, $NCUST, true)")"
	q $W -c "COPY bench.src_logs TO '$TMP/src.csv' WITH (FORMAT csv)"
	q $W -c "VACUUM ANALYZE"
}

# bulk_run KIND REP: one timed bulk load of the sample into each table,
# the order rotating with REP; KIND insert or copy.
bulk_run() {
	local kind="$1" rep="$2" tables=(analytics.logs bench.plain_logs bench.peer_logs) i t ms
	local cols
	cols="$(q $W -c "SELECT bench.log_columns()")"
	for i in 0 1 2; do
		t="${tables[$(( (i + rep) % 3 ))]}"
		settle $W
		if [ "$kind" = insert ]; then
			ms="$(q $W -c "SELECT bench.time_exec('INSERT INTO $t ($cols) SELECT $cols FROM bench.src_logs')")"
		else
			ms="$(q $W -c "SELECT bench.time_exec('COPY $t ($cols) FROM ''$TMP/src.csv'' WITH (FORMAT csv)')")"
		fi
		rate="$(awk -v n="$NBULK" -v ms="$ms" 'BEGIN { printf "%.1f", n / ms * 1000 }')"
		case "$t" in
			analytics.logs)
				sample $W "bulk $kind vs plain" ours "$rep" "$rate"
				sample $W "bulk $kind vs peer" ours "$rep" "$rate" ;;
			bench.plain_logs) sample $W "bulk $kind vs plain" baseline "$rep" "$rate" ;;
			bench.peer_logs) sample $W "bulk $kind vs peer" baseline "$rep" "$rate" ;;
		esac
	done
}

bulk() {
	local kind="$1" label rep
	for rep in $(seq 1 "$REPS"); do
		bulk_run "$kind" "$rep"
	done
	if [ "$kind" = insert ]; then label="INSERT … SELECT"; else label="COPY (CSV)"; fi
	# The peer must have done its job: its rollup counts every log it got.
	if [ "$(q $W -c "SELECT (SELECT sum(requests) FROM bench.peer_daily) = (SELECT count(*) FROM bench.peer_logs)
	                   AND (SELECT sum(total_spend) FROM bench.peer_spend) = (SELECT sum(cost) FROM bench.peer_logs)")" != t ]; then
		echo "bench: the peer's rollup does not match bench.peer_logs" >&2
		return 1
	fi
	fig $W "bulk $kind vs plain" "bulk ingest, $label, vs plain table" rate 0.8 "≥ 0.8×" \
		"$NBULK logs in one statement"
	fig $W "bulk $kind vs peer" "bulk ingest, $label, vs PL/pgSQL peer trigger" rate 1 "≥ 1× (not in §8)" \
		"$NBULK logs in one statement; the peer upserts a daily rollup and a spend counter per row"
}

# batch_payloads PORT DB: bench.batch_payloads, the rows of bench.src_logs as
# NDJSON, in calls of 1000 lines.
batch_payloads() {
	qp "$1" "$2" -c "CREATE TABLE bench.batch_payloads AS
		SELECT string_agg(jsonb_strip_nulls(jsonb_build_object(
		           'timestamp', created_at, 'customer_identifier', customer_identifier,
		           'model', model, 'prompt_tokens', prompt_tokens,
		           'completion_tokens', completion_tokens, 'cost', cost, 'latency', latency,
		           'time_to_first_token', time_to_first_token, 'status_code', status_code,
		           'error_message', error_message))::text, E'\n') AS t
		FROM (SELECT *, (row_number() OVER () - 1) / 1000 AS chunk FROM bench.src_logs) s
		GROUP BY chunk"
}

ingest_batch() {
	local figure="analytics.ingest_batch vs COPY (CSV) into analytics.logs" rep order ms before after
	if ! has $W 'analytics.ingest_batch('; then
		na "$figure" "≥ 0.5×" analytics.ingest_batch
		return
	fi
	local cols
	cols="$(q $W -c "SELECT bench.log_columns()")"
	batch_payloads "$PORT" $W
	for rep in $(seq 1 "$REPS"); do
		for order in $(( rep % 2 )) $(( (rep + 1) % 2 )); do
			settle $W
			if [ "$order" = 0 ]; then
				before="$(q $W -c "SELECT count(*) FROM analytics.logs")"
				ms="$(q $W -c "SELECT bench.time_exec('SELECT sum(analytics.ingest_batch(t)) FROM bench.batch_payloads')")"
				after="$(q $W -c "SELECT count(*) FROM analytics.logs")"
				if [ $(( after - before )) -ne "$NBULK" ]; then
					echo "bench: ingest_batch recorded $(( after - before )) logs, expected $NBULK" >&2
					return 1
				fi
				sample $W batch ours "$rep" "$(awk -v n="$NBULK" -v ms="$ms" 'BEGIN { printf "%.1f", n / ms * 1000 }')"
			else
				ms="$(q $W -c "SELECT bench.time_exec('COPY analytics.logs ($cols) FROM ''$TMP/src.csv'' WITH (FORMAT csv)')")"
				sample $W batch baseline "$rep" "$(awk -v n="$NBULK" -v ms="$ms" 'BEGIN { printf "%.1f", n / ms * 1000 }')"
			fi
		done
	done
	fig $W batch "$figure" rate 0.5 "≥ 0.5×" "$NBULK logs as NDJSON, 1000 per call, one transaction"
}

# pgbench_run TABLE [PORT DB]: transactions per second of single-row INSERTs
# from 2 clients for PGBENCH_T seconds, each a random customer's log (on the
# single node's bench_write unless PORT and DB say otherwise).
pgbench_run() {
	local table="$1" port="${2:-$PORT}" db="${3:-$W}"
	cat >"$TMP/pgbench-$table.sql" <<EOF
\\set c random(1, $NCUST)
\\set p random(50, 2000)
\\set k random(10, 800)
INSERT INTO $table (customer_identifier, model, prompt_tokens, completion_tokens, cost, latency, time_to_first_token, status_code)
VALUES ('cust-' || :c, 'gpt-4o-mini', :p, :k, (:p * 0.15 + :k * 0.6) / 1000000.0, 1.25, 0.2, 200);
EOF
	run_as env PGOPTIONS="-c synchronous_commit=$SYNC" "$PGBIN/pgbench" -n -M prepared -c 2 -j 2 -T "$PGBENCH_T" -h "$TMP" -p "$port" \
		-f "$TMP/pgbench-$table.sql" "$db" >"$TMP/pgbench.out" 2>&1 ||
		{ cat "$TMP/pgbench.out" >&2; return 1; }
	sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$TMP/pgbench.out"
}

# Sample analytics.status.logs_pending every 0.5 s into FILE until killed.
pending_sampler() {
	while sleep 0.5; do
		q $W -c "SELECT logs_pending FROM analytics.status" 2>/dev/null || true
	done >"$1"
}

single_row() {
	local rep tps sampler lag_status="" max_lag=0 lag_tps=0 maxp
	# Workers come when logs are committed and leave when idle: whether one
	# served the database is read after the runs (last_served).
	if has $W analytics.status; then
		lag_status=measured
	fi
	# Each rep: plain, ours, ours with every customer under a budget.
	for rep in $(seq 1 "$REPS"); do
		settle $W
		tps="$(pgbench_run bench.plain_logs)"
		sample $W "single" baseline "$rep" "$tps"
		sample $W "single budget" baseline "$rep" "$tps"
		settle $W
		if [ -n "$lag_status" ]; then
			pending_sampler "$TMP/pending-$rep.txt" &
			sampler=$!
		fi
		tps="$(pgbench_run analytics.logs)"
		if [ -n "$lag_status" ]; then
			kill "$sampler" 2>/dev/null || true
			wait "$sampler" 2>/dev/null || true
			maxp="$(sort -n "$TMP/pending-$rep.txt" | tail -1)"
			maxp="${maxp:-0}"
			# keep the worst run: the most seconds of ingest pending
			if awk -v p="$maxp" -v t="$tps" -v m="$max_lag" 'BEGIN { exit !(p / t >= m) }'; then
				max_lag="$(awk -v p="$maxp" -v t="$tps" 'BEGIN { printf "%.2f", p / t }')"
				lag_tps="$tps"
				lag_pending="$maxp"
			fi
		fi
		sample $W "single" ours "$rep" "$tps"
		q $W -c "UPDATE analytics.customers SET period_budget = 1e9"
		settle $W
		tps="$(pgbench_run analytics.logs)"
		sample $W "single budget" ours "$rep" "$tps"
		q $W -c "UPDATE analytics.customers SET period_budget = NULL"
	done
	fig $W single "single-row INSERT, 2 pgbench clients, vs plain table" rate 0.9 "≥ 0.9×" \
		"$PGBENCH_T s runs, 1 log per transaction, random customer, synchronous_commit $SYNC"
	fig $W "single budget" "single-row INSERT, every customer under a budget, vs plain table" rate 0.75 \
		"≥ 0.75×" "every customer has period_budget = 1e9 (none rejected); baseline: the same plain runs"

	local figure="worker lag at the full single-row rate"
	if [ -z "$lag_status" ]; then
		na "$figure" "≤ 2 s of ingest" analytics.status
	else
		local met
		met="$(awk -v l="$max_lag" 'BEGIN { print (l <= 2 ? "yes" : "NO") }')"
		lag_status="$(q $W -c "SELECT last_served > now() - interval '1 minute' FROM analytics.status")"
		if [ "$lag_status" != t ]; then
			met="NO"
		fi
		row "$figure" "$max_lag s" "" "" "≤ 2 s of ingest" "$met" \
			"max logs_pending ${lag_pending:-0} at $(printf '%.0f' "$lag_tps") logs/s, sampled every 0.5 s; served by a worker in the last minute = $lag_status"
	fi
}

# ------------------------------------------------- no global stall (§8)
# While another session bulk-loads NSTALL logs (3M at scale 1, never fewer
# than 1M) naming the reference customers in one INSERT … SELECT, 2 pgbench
# clients insert single logs of 1,000 other customers at -R 200 (-P 1), and
# 2 s into the load, in sessions of their own, each timed from launch to
# return: a budget change (upsert_customer), a block (UPDATE … blocked), a
# delete_customer and purge_logs.  Figures: each change's time (< 1 s) and
# the least pgbench second while the load and the changes run (partial
# first and last seconds left out) over the offered rate (≥ 0.5×).
# test/t/030_stall.pl asserts the same scenario, scaled down.

NSTALL=$(awk -v s="$SCALE" 'BEGIN { n = 3000000 * s; printf "%d", (n < 1000000 ? 1000000 : n) }')

# stall_session NAME SQL: SQL in a session of its own, in the background;
# $TMP/stall-NAME.time gets "launch return exit-status".
stall_session() {
	local name="$1" sql="$2"
	(
		set +e
		t0="$(date +%s.%N)"
		run_as env PGOPTIONS="-c statement_timeout=120s" "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
			-h "$TMP" -p "$PORT" -d $W -c "$sql" >"$TMP/stall-$name.out" 2>&1
		rc=$?
		echo "$t0 $(date +%s.%N) $rc" >"$TMP/stall-$name.time"
	) &
}

stall() {
	local pgb t_pg bulk_pid c secs min k launch ret rc cols sql
	q $W -c "INSERT INTO analytics.customers (customer_identifier, period_budget)
		SELECT 'stall-' || g, CASE WHEN g % 2 = 0 THEN 1e9 END FROM generate_series(1, 1000) g
		UNION ALL VALUES ('stall-budget', 10), ('stall-block', NULL), ('stall-delete', NULL)
		ON CONFLICT DO NOTHING"
	q $W -c "INSERT INTO analytics.logs (customer_identifier, model, cost)
		VALUES ('stall-budget', 'gpt-4o-mini', 1), ('stall-block', 'gpt-4o-mini', 1), ('stall-delete', 'gpt-4o-mini', 1)"
	cols="$(q $W -c "SELECT bench.log_columns()")"
	sql="INSERT INTO analytics.logs ($cols) $(q $W -c "SELECT bench.gen_logs_sql($NSTALL, $NCUST, true)")"
	settle $W
	printf '%s\n' '\set c random(1, 1000)' \
		"INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost) VALUES ('stall-' || :c, 'gpt-4o-mini', 100, 20, 0.0001);" \
		>"$TMP/pgbench-stall.sql"
	t_pg="$(date +%s.%N)"
	run_as env PGOPTIONS="-c synchronous_commit=$SYNC" "$PGBIN/pgbench" -n -c 2 -j 2 -R 200 -T 600 -P 1 \
		-h "$TMP" -p "$PORT" -f "$TMP/pgbench-stall.sql" $W >"$TMP/pgbench-stall.out" 2>&1 &
	pgb=$!
	sleep 1
	stall_session bulk "$sql"
	bulk_pid=$!
	sleep 2
	stall_session budget "SELECT (analytics.upsert_customer('{\"customer_identifier\": \"stall-budget\", \"period_budget\": 20}')).period_budget"
	stall_session block "UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'stall-block'"
	stall_session delete "SELECT analytics.delete_customer('stall-delete')"
	stall_session purge "SELECT analytics.purge_logs(now() - interval '400 days')"
	wait "$bulk_pid" || true
	while [ "$(ls "$TMP"/stall-*.time 2>/dev/null | wc -l)" -lt 5 ]; do sleep 0.2; done
	sleep 1
	# runuser passes SIGTERM on to pgbench.
	kill -TERM "$pgb" 2>/dev/null || true
	wait "$pgb" 2>/dev/null || true
	read -r launch ret rc <"$TMP/stall-bulk.time"
	if [ "$rc" != 0 ]; then
		cat "$TMP/stall-bulk.out" >&2
		return 1
	fi
	for c in budget block delete; do
		read -r launch ret rc <"$TMP/stall-$c.time"
		row "no global stall: $c during a bulk load of other customers" \
			"$(awk -v a="$launch" -v b="$ret" 'BEGIN { printf "%.3f s", b - a }')$([ "$rc" = 0 ] || echo ", error: $(head -c 100 "$TMP/stall-$c.out")")" \
			"" "" "< 1 s" "$(awk -v a="$launch" -v b="$ret" -v rc="$rc" 'BEGIN { print (rc == 0 && b - a < 1 ? "yes" : "NO") }')" \
			"launched 2 s into the load of $NSTALL logs ($(awk '{ printf "%.1f s", $2 - $1 }' "$TMP/stall-bulk.time"))"
	done
	read -r launch ret rc <"$TMP/stall-purge.time"
	row "no global stall: purge_logs during the bulk load (info)" \
		"$(awk -v a="$launch" -v b="$ret" 'BEGIN { printf "%.3f s", b - a }')$([ "$rc" = 0 ] || echo ", error")" "" "" "—" "—" \
		"folds first (the load's uncommitted logs become gaps, not waited for); it must not stall writers (next row)"
	# The seconds wholly inside [load launch + 0.2 s, last return - 0.2 s].
	ret="$(cat "$TMP"/stall-*.time | awk '$2 > m { m = $2 } END { printf "%.3f", m }')"
	read -r launch _ _ <"$TMP/stall-bulk.time"
	IFS='|' read -r k min secs < <(awk -v t0="$t_pg" -v from="$launch" -v to="$ret" '
		/^progress: / { n = $2 + 0; tps = $4 + 0
			if (t0 + n - 1 >= from + 0.2 && t0 + n <= to - 0.2) {
				k++; if (min == "" || tps < min) min = tps; secs = secs " " tps } }
		END { printf "%d|%s|%s\n", k, min, secs }' "$TMP/pgbench-stall.out")
	if [ "${k:-0}" -eq 0 ]; then
		echo "bench: no whole pgbench second inside the bulk load" >&2
		return 1
	fi
	row "no global stall: least single-row rate in any second of the load" "$min tps" "200 tps offered" \
		"$(awk -v m="$min" 'BEGIN { printf "%.2f×", m / 200 }')" "≥ 0.5×" \
		"$(awk -v m="$min" 'BEGIN { print (m / 200 >= 0.5 ? "yes" : "NO") }')" \
		"pgbench -R 200 -P 1, 2 clients, 1,000 other customers; tps of the $k whole seconds:$secs; $(grep -c 'out of shared memory' "$TMP/stall-bulk.out" || true) lock table errors in the load"
}

# ------------------------------------------------ views (bench_ref)

R=bench_ref

ref_setup() {
	newdb $R
	q $R <"$BENCH_DIR/sql/views.sql"
	q $R -c "SELECT bench.gen_customers($NCUST)"
}

# ref_load N LABEL: add N reference logs through the trigger (budgets only
# recorded), fold them in and vacuum; informational rows with the times.
ref_load() {
	local n="$1" label="$2" ms fold_ms
	ms="$(q $R -c "SET analytics.budget_enforcement = 'record'" \
		-c "SELECT bench.time_exec(format('INSERT INTO analytics.logs (%s) %s', bench.log_columns(), bench.gen_logs_sql($n, $NCUST, false)))")"
	row "load $label reference logs through the trigger (info)" \
		"$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%d rows/s", n / ms * 1000 }')" "" "" "" "—" \
		"$(awk -v ms="$ms" 'BEGIN { printf "%.1f s, one INSERT … SELECT, generation included", ms / 1000 }')"
	if has $R 'analytics.rollup_now('; then
		fold_ms="$(q $R -c "SELECT bench.time_exec('SELECT bench.settle()')")"
		row "fold-in after the $label load (info)" "$(awk -v ms="$fold_ms" 'BEGIN { printf "%.1f s", ms / 1000 }')" \
			"" "" "" "—" "analytics.rollup_now() until nothing is pending (the worker may have folded part already)"
	else
		na "fold-in after the $label load (info)" "" "analytics.rollup_now"
	fi
	q $R -c "VACUUM ANALYZE"
}

# view_case AT ORD NAME TARGET: one view timed against its raw query, the
# results compared.
view_case() {
	local at="$1" ord="$2" name="$3" target="$4" rep diff ndiff nrows note met=""
	# The comparison runs both queries once, which also warms the cache.
	diff="$(q $R -F ' ' -c "SELECT d.diff, d.rows_a FROM bench.view_cases, bench.result_diff(ours, raw) d WHERE ord = $ord")"
	for rep in $(seq 1 "$REPS"); do
		q $R -c "INSERT INTO bench.samples
			SELECT 'view $ord @ $at', 'ours', $rep, bench.time_query(ours) FROM bench.view_cases WHERE ord = $ord;
			INSERT INTO bench.samples
			SELECT 'view $ord @ $at', 'baseline', $rep, bench.time_query(raw) FROM bench.view_cases WHERE ord = $ord"
	done
	ndiff="${diff%% *}"
	nrows="${diff##* }"
	if [ "$ndiff" = 0 ]; then
		note="same result as the raw query ($nrows rows)"
	else
		note="RESULTS DIFFER: $ndiff rows differ ($nrows rows from ours)"
		met="NO (differs)"
	fi
	if [ -n "$target" ]; then
		fig $R "view $ord @ $at" "view: $name @ $at" time "$target" "≥ ${target%.*}×" "$note" "$met"
	else
		fig $R "view $ord @ $at" "view: $name @ $at" time NULL "— (baseline is the same index scan)" "$note" "$met"
	fi
}

# tail_add N: N logs created in the last 2 s, of customers drawn like the
# reference logs', inserted in record mode, then ANALYZE.
tail_add() {
	local gen
	gen="$(q $R -c "SELECT bench.gen_logs_sql($1, $NCUST, false)")"
	q $R -c "SET analytics.budget_enforcement = 'record'" -c "INSERT INTO analytics.logs ($(q $R -c "SELECT bench.log_columns()"))
		SELECT now() - random() * interval '2 seconds', g.customer_identifier, g.model, g.prompt_tokens,
		       g.completion_tokens, g.cost, g.latency, g.time_to_first_token, g.status_code, g.error_message
		FROM ($gen) g" >/dev/null
	q $R -c "ANALYZE analytics.logs" >/dev/null
}
# page_info WHAT AT: an info row, the median of 3 warm runs of the Users
# page's first page by cost DESC (view case 20), ours only, as it stands.
page_info() {
	local ms
	q $R -c "SELECT bench.time_query(ours) FROM bench.view_cases WHERE ord = 20" >/dev/null
	ms="$(q $R -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t)
	               FROM (SELECT bench.time_query(ours) AS t FROM bench.view_cases, generate_series(1, 3) WHERE ord = 20) s")"
	row "view: users: first page by cost DESC with $1 @ $2 (info)" \
		"$(awk -v ms="$ms" 'BEGIN { printf "%.2f ms", ms }')" "" "" "< 20 ms" "—" \
		"median of 3 warm runs, ours only; $(q $R -c "SELECT logs_pending FROM analytics.status") logs pending"
}
# tail_start AT: the realistic tail of SPEC 8 for the view measurements:
# with the worker off and everything folded, TAIL logs of the last 2 s
# (customers drawn like the reference logs') that stay pending while the
# views are timed; ours and the raw queries both see them.  tail_end: the
# worker on again, and the logs still pending reported.
tail_start() {
	q $R -c "ALTER SYSTEM SET analytics.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	settle $R
	[ "$TAIL" -gt 0 ] || return 0
	tail_add "$TAIL"
}
tail_end() {
	local pending
	pending="$(q $R -c "SELECT logs_pending FROM analytics.status")"
	if [ "$TAIL" -gt 0 ] && has $R 'analytics.users'; then
		# The same page with the tail grown to 4 times as many logs, and
		# with every log folded: what the page costs without a tail.
		tail_add "$(( TAIL * 3 ))"
		page_info "$(( TAIL * 4 )) logs not folded" "$1"
		settle $R
		page_info "no log pending" "$1"
	fi
	q $R -c "ALTER SYSTEM RESET analytics.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
	row "logs not folded while the views @ $1 were timed (info)" "$pending logs" "" "" "" "—" \
		"a tail of $TAIL logs created in the last 2 s, inserted with the worker off after everything was folded (SPEC 8: up to 2 s of ingest)"
}

# views AT: every view case that can run, each on its own (an error in one
# is reported in its row).
views() {
	local at="$1" ord name requires target rc
	q $R -c "SELECT count(*) FROM bench.view_cases" >/dev/null
	tail_start "$at"
	while IFS=$'\t' read -r ord name requires target <&3; do
		if ! has $R "$requires"; then
			na "view: $name @ $at" "${target:+≥ ${target%.*}×}" "${requires%(}"
			continue
		fi
		set +e
		(set -e; view_case "$at" "$ord" "$name" "$target")
		rc=$?
		set -e
		if [ "$rc" -ne 0 ]; then
			row "view: $name @ $at" "error (see the log)" "" "" "${target:+≥ ${target%.*}×}" "NO" ""
		fi
	done 3< <(q $R -F $'\t' -c "SELECT ord, name, requires, min_speedup FROM bench.view_cases ORDER BY ord")
	tail_end "$at"
}

# growth [LABEL]: each view's time at AT2 over its time at AT1 (twice the
# logs; with --wide ten times the customers).
growth() {
	local ord name requires label="${1:-×2 logs}"
	while IFS=$'\t' read -r ord name requires <&3; do
		if ! has $R "$requires"; then
			na "view growth $label: $name" "≤ 1.2×" "${requires%(}"
			continue
		fi
		q $R -F $'\t' -c "
			WITH m AS (
				SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FILTER (WHERE figure = 'view $ord @ $AT2') AS o,
				       percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FILTER (WHERE figure = 'view $ord @ $AT1') AS b
				FROM bench.samples WHERE side = 'ours')
			SELECT \$n\$view growth $label: $name\$n\$, round(o::numeric, 2) || ' ms @ $AT2',
			       round(b::numeric, 2) || ' ms @ $AT1', round((o / b)::numeric, 2) || '×', '≤ 1.2×',
			       CASE WHEN o IS NULL OR b IS NULL THEN 'n/a' WHEN o / b <= 1.2 THEN 'yes' ELSE 'NO' END, ''
			FROM m" >>"$ROWS"
	done 3< <(q $R -F $'\t' -c "SELECT ord, name, requires FROM bench.view_cases ORDER BY ord")
}

data_check() {
	q $R -c "
		SELECT format('%s logs, %s customers; active per day (median of full days): %s%%; top 1%% of customers: %s%% of logs; errors: %s%%; models: %s',
			(SELECT count(*) FROM analytics.logs), $NCUST,
			(SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY n) / $NCUST * 100)::numeric, 1)
			 FROM (SELECT count(DISTINCT customer_identifier) AS n FROM analytics.logs
			       WHERE created_at < date_trunc('day', now()) GROUP BY (created_at AT TIME ZONE 'UTC')::date) d),
			(SELECT round(100.0 * sum(n) FILTER (WHERE rk <= greatest($NCUST / 100, 1)) / sum(n), 1)
			 FROM (SELECT count(*) AS n, row_number() OVER (ORDER BY count(*) DESC) AS rk
			       FROM analytics.logs GROUP BY customer_identifier) c),
			(SELECT round(100.0 * count(*) FILTER (WHERE status_code >= 400) / count(*), 2) FROM analytics.logs),
			(SELECT count(DISTINCT model) FROM analytics.logs))" >>"$NOTES"
}

# ------------------------------------------------------------------- run

: >"$ROWS"
: >"$NOTES"
: >"$TMP/steps.txt"
if [ -n "$CITUS" ]; then
	source "$BENCH_DIR/citus.sh"
	citus_run
elif [ -n "$WIDE" ]; then
	# The wide variant (SPEC 8): the views at a tenth of the customers and
	# of the logs, then at all of them (1M customers, 10M logs at scale 1),
	# the same logs per customer on average; their growth, and the Users
	# page's absolute time.
	NBIG=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 1000000 * s }')
	NCUST=$(( NBIG / 10 ))
	NLOGS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 10000000 * s }')
	AT1="$(awk -v n="$NCUST" 'BEGIN { printf "%gk customers", n / 1e3 }')"
	AT2="$(awk -v n="$NBIG" 'BEGIN { printf "%gk customers", n / 1e3 }')"
	step "reference data: setup" ref_setup
	step "reference data: load $AT1" ref_load "$(( NLOGS / 10 ))" "$AT1"
	step "reference data: check" data_check
	step "views @ $AT1" views "$AT1"
	q $R -c "SELECT bench.gen_customers($NBIG)"
	NCUST=$NBIG
	step "reference data: load to $AT2" ref_load "$(( NLOGS - NLOGS / 10 ))" "+$(( NLOGS - NLOGS / 10 )) logs (to $AT2)"
	step "reference data: check" data_check
	step "views @ $AT2" views "$AT2"
	step "view growth" growth "×10 customers"
else
	step "write path: setup" write_setup
	step "bulk INSERT … SELECT" bulk insert
	step "bulk COPY" bulk copy
	step "ingest_batch vs COPY" ingest_batch
	step "single-row INSERTs and worker lag" single_row
	step "no global stall" stall

	AT1="$(awk -v n="$NLOGS" 'BEGIN { printf "%gM", n / 1e6 }')"
	AT2="$(awk -v n="$NLOGS" 'BEGIN { printf "%gM", 2 * n / 1e6 }')"
	step "reference data: setup" ref_setup
	step "reference data: load $AT1" ref_load "$NLOGS" "$AT1"
	step "reference data: check" data_check
	step "views @ $AT1" views "$AT1"
	step "reference data: load to $AT2" ref_load "$NLOGS" "+$AT1 (to $AT2)"
	step "reference data: check" data_check
	step "views @ $AT2" views "$AT2"
	step "view growth" growth
fi

ELAPSED=$(( $(date +%s) - START ))

# installed_warning: in bold, if the installed library changed during the run
# (someone installed without taking the lock).
installed_warning() {
	if [ "$(installed_sum)" != "$INSTALLED_SUM" ]; then
		echo
		echo "**WARNING: the installed extension changed during this run (installed without the lock);" \
			"figures after that point measured another build.**"
	fi
}

# report_head TITLE COMMAND: the title and what ran where, how long.
report_head() {
	echo "# $1"
	echo
	echo "\`$2\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
		"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
		"$("$PGBIN/postgres" --version), commit $(git -C "$BENCH_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
		"$ELAPSED s end to end ($(( LOCKED - START )) s of it waiting for the install lock)."
}

# report_notes PREFIX: the run's notes as list items (after PREFIX), the time
# per step, and the warning if the library changed.
report_notes() {
	while read -r line; do echo "- $1$line"; done <"$NOTES"
	echo "- time per step: $(paste -sd ';' "$TMP/steps.txt" | sed 's/;/; /g')"
	installed_warning
}

# report_table HEADING...: the rows as a Markdown table, one column a heading.
report_table() {
	local h sep=""
	printf '|'
	for h in "$@"; do printf ' %s |' "$h"; sep="$sep---|"; done
	printf '\n|%s\n' "$sep"
	awk -F '\t' -v n=$# '{ printf "|"; for (i = 1; i <= n; i++) printf " %s |", $i; printf "\n" }' "$ROWS"
}

report() {
	if [ -n "$WIDE" ]; then
		report_head "analytics benchmark, wide, scale $SCALE" "bench/run.sh --wide --scale $SCALE"
		echo "The views at $AT1 and $((NLOGS / 10)) logs, then at $AT2 and $NLOGS logs (the same" \
			"logs per customer on average); median of $REPS runs per side. shared_buffers 2GB, jit off."
	else
		report_head "analytics benchmark, scale $SCALE" "bench/run.sh --scale $SCALE"
		echo "$NCUST customers, $NLOGS reference logs, bulk loads of $NBULK logs, pgbench runs of ${PGBENCH_T} s;" \
			"median of $REPS runs per side. shared_buffers 2GB, synchronous_commit $SYNC for the single-row runs" \
			"(on for everything else), jit off."
	fi
	echo
	report_notes "data: "
	echo
	report_table figure ours baseline ratio target met note
}

if [ -n "$CITUS" ]; then
	citus_report
else
	report
fi >"$TMP/results.md"
echo
cat "$TMP/results.md"
cp "$TMP/results.md" "$OUT"
echo
log "written to $OUT"
