#!/bin/bash
# Worker lifecycle and crash test, on a throwaway cluster that preloads the
# library: the worker runs in every database with the extension and in no
# other, folds new logs without being called, comes back after being
# terminated, and after a kill -9 of the server in the middle of ingest the
# rollup plus the logs not yet folded, and the views, equal the GROUP BY over
# the raw logs.  A pass that fails is recorded in analytics.status and
# retried by the same worker, and logs the fold cannot count are set aside.
# Needs PGBIN; runs as an unprivileged user; bounded to 90 seconds.
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
DIR="$(mktemp -d /tmp/analytics-worker.XXXXXX)"
DATA="$DIR/data"
LOG="$DIR/server.log"
PORT=$((56000 + $$ % 2000))
START=$SECONDS
LIMIT=90
LOOPS=()

cleanup() {
	local pid
	for pid in "${LOOPS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	"$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
	echo "worker.sh FAILED: $*"
	echo "--- server log (tail)"
	tail -40 "$LOG" 2>/dev/null || true
	exit 1
}

q() {
	local db="$1"
	shift
	"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d "$db" -c "$*"
}

# wait_for DB SQL SECONDS: poll until SQL returns t.
wait_for() {
	local db="$1" sql="$2" limit="$3" t0=$SECONDS
	while [ $((SECONDS - t0)) -lt "$limit" ] && [ $((SECONDS - START)) -lt "$LIMIT" ]; do
		if [ "$(q "$db" "$sql" 2>/dev/null || true)" = t ]; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# Rows where the views differ from the same GROUP BY over the raw logs (both
# directions), whatever the worker has folded so far.
VIEW_MISMATCHES="
WITH dau AS (SELECT day, active_users, requests, cost FROM analytics.daily_active_users),
raw_dau AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(DISTINCT customer_identifier),
                   count(*), sum(cost)
              FROM analytics.logs WHERE customer_identifier IS NOT NULL GROUP BY 1),
cbu AS (SELECT day, customer_identifier, requests, prompt_tokens, completion_tokens, cost
          FROM analytics.cost_by_user),
raw_cbu AS (SELECT (created_at AT TIME ZONE 'UTC')::date, customer_identifier, count(*),
                   sum(prompt_tokens), sum(completion_tokens), sum(cost)
              FROM analytics.logs WHERE customer_identifier IS NOT NULL GROUP BY 1, 2),
usr AS (SELECT customer_identifier, requests, cost FROM analytics.users),
raw_usr AS (SELECT c.customer_identifier, count(l.id), coalesce(sum(l.cost), 0)
              FROM analytics.customers c LEFT JOIN analytics.logs l USING (customer_identifier)
             GROUP BY 1)
SELECT (SELECT count(*) FROM (SELECT * FROM dau EXCEPT ALL SELECT * FROM raw_dau) a)
     + (SELECT count(*) FROM (SELECT * FROM raw_dau EXCEPT ALL SELECT * FROM dau) a)
     + (SELECT count(*) FROM (SELECT * FROM cbu EXCEPT ALL SELECT * FROM raw_cbu) a)
     + (SELECT count(*) FROM (SELECT * FROM raw_cbu EXCEPT ALL SELECT * FROM cbu) a)
     + (SELECT count(*) FROM (SELECT * FROM usr EXCEPT ALL SELECT * FROM raw_usr) a)
     + (SELECT count(*) FROM (SELECT * FROM raw_usr EXCEPT ALL SELECT * FROM usr) a)"

# Rows where usage_daily plus the logs above the watermark differ from the
# GROUP BY over all raw logs.
MISMATCHES="
WITH tail AS (
  SELECT customer_identifier, (created_at AT TIME ZONE 'UTC')::date AS day, model,
         count(*) AS requests, count(*) FILTER (WHERE status_code >= 400) AS errors,
         sum(prompt_tokens) AS prompt_tokens, sum(cost) AS cost,
         count(latency) AS latency_count, coalesce(sum(latency), 0) AS latency_sum
    FROM analytics.logs
   WHERE id > (SELECT watermark FROM analytics.rollup_state) AND customer_identifier IS NOT NULL
   GROUP BY 1, 2, 3),
combined AS (
  SELECT customer_identifier, day, model, sum(requests) AS requests, sum(errors) AS errors,
         sum(prompt_tokens) AS prompt_tokens, sum(cost) AS cost,
         sum(latency_count) AS latency_count, sum(latency_sum) AS latency_sum
    FROM (SELECT customer_identifier, day, model, requests, errors, prompt_tokens, cost,
                 latency_count, latency_sum FROM analytics.usage_daily
          UNION ALL SELECT * FROM tail) x
   GROUP BY 1, 2, 3),
raw AS (
  SELECT customer_identifier, (created_at AT TIME ZONE 'UTC')::date AS day, model,
         count(*) AS requests, count(*) FILTER (WHERE status_code >= 400) AS errors,
         sum(prompt_tokens) AS prompt_tokens, sum(cost) AS cost,
         count(latency) AS latency_count, coalesce(sum(latency), 0) AS latency_sum
    FROM analytics.logs WHERE customer_identifier IS NOT NULL
   GROUP BY 1, 2, 3)
SELECT count(*) FROM combined c FULL JOIN raw r USING (customer_identifier, day, model)
 WHERE c.requests IS DISTINCT FROM r.requests OR c.errors IS DISTINCT FROM r.errors
    OR c.prompt_tokens IS DISTINCT FROM r.prompt_tokens OR c.cost IS DISTINCT FROM r.cost
    OR c.latency_count IS DISTINCT FROM r.latency_count
    OR coalesce(abs(c.latency_sum - r.latency_sum) > 1e-9 * greatest(1, abs(r.latency_sum)), true)"

INSERT_SQL="INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, latency, status_code, created_at)
SELECT 'c' || (g % 13), (ARRAY['gpt-4o', 'gpt-4o-mini', 'other'])[1 + g % 3], g % 500, g % 70,
       CASE WHEN g % 4 <> 0 THEN (g % 9) / 3.0 END, CASE WHEN g % 17 = 0 THEN 500 ELSE 200 END,
       now() - (g % 72) * interval '1 hour'
  FROM generate_series(1, 40) g;"

echo "== initdb and start a cluster on port $PORT"
"$PGBIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'analytics'
analytics.rollup_interval = '200ms'
max_worker_processes = 16
fsync = off
EOF
"$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 start >/dev/null || fail "server did not start"

q postgres "CREATE DATABASE db_a" >/dev/null
q postgres "CREATE DATABASE db_b" >/dev/null
q postgres "CREATE DATABASE db_c" >/dev/null
q db_a "CREATE EXTENSION analytics"
q db_b "CREATE EXTENSION analytics"

wait_for postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'analytics launcher'" 10 ||
	fail "no launcher in pg_stat_activity"

echo "== the worker folds new logs without being called"
for i in 1 2 3 4 5; do
	q db_a "$INSERT_SQL"
	q db_b "$INSERT_SQL"
done
for db in db_a db_b; do
	wait_for "$db" "SELECT worker_running AND logs_pending = 0 AND watermark > 0 FROM analytics.status" 25 ||
		fail "$db: the worker did not fold the logs: $(q "$db" "SELECT * FROM analytics.status")"
	[ "$(q "$db" "$MISMATCHES")" = 0 ] || fail "$db: usage_daily differs from the raw logs"
	[ "$(q "$db" "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = current_database()")" = "analytics rollup" ] ||
		fail "$db: worker not visible with its application_name"
done
idle=0
for i in 1 2 3; do
	n="$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname IN ('db_c', 'postgres')")"
	[ "$n" = 0 ] && idle=$((idle + 1))
	sleep 0.3
done
[ "$idle" -ge 2 ] || fail "a worker stays in a database without the extension"

echo "== a terminated worker comes back and folds again"
old="$(q db_a "SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_a'")"
[ -n "$old" ] || fail "no worker in db_a"
q db_a "SELECT pg_terminate_backend($old)" >/dev/null
wait_for db_a "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_a' AND pid <> $old" 15 ||
	fail "the worker did not come back"
q db_a "$INSERT_SQL"
wait_for db_a "SELECT logs_pending = 0 FROM analytics.status" 15 || fail "the new worker does not fold"
[ "$(q db_a "$MISMATCHES")" = 0 ] || fail "db_a: usage_daily differs from the raw logs after the restart"

echo "== kill -9 of the server in the middle of ingest"
for db in db_a db_b; do
	# Autocommitted inserts and two-statement transactions, as fast as they go.
	yes "$INSERT_SQL BEGIN; $INSERT_SQL $INSERT_SQL COMMIT;" |
		"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d "$db" >/dev/null 2>&1 &
	LOOPS+=($!)
done
sleep 3
before="$(q db_a "SELECT count(*) FROM analytics.logs")"
pm="$(head -1 "$DATA/postmaster.pid")"
children="$(pgrep -P "$pm" || true)"
# shellcheck disable=SC2086
kill -9 "$pm" $children
for pid in "${LOOPS[@]}"; do
	wait "$pid" 2>/dev/null || true
done
LOOPS=()
# The killed processes must be gone (or zombies, where nothing reaps them)
# before the server can start again; a zombie postmaster leaves a stale
# postmaster.pid, as a power loss would.
alive() {
	local pid
	for pid in "$@"; do
		if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
			return 0
		fi
	done
	return 1
}
t0=$SECONDS
# shellcheck disable=SC2086
while alive "$pm" $children && [ $((SECONDS - t0)) -lt 15 ]; do
	sleep 0.1
done
# shellcheck disable=SC2086
alive "$pm" $children && fail "the killed server processes did not exit"
if [ -e "/proc/$pm" ]; then
	rm -f "$DATA/postmaster.pid" "$DIR/.s.PGSQL.$PORT.lock"
fi
"$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 start >/dev/null || fail "server did not restart"

for db in db_a db_b; do
	wait_for "$db" "SELECT worker_running AND logs_pending = 0 FROM analytics.status" 30 ||
		fail "$db: the worker did not catch up after the crash: $(q "$db" "SELECT * FROM analytics.status")"
	[ "$(q "$db" "$MISMATCHES")" = 0 ] || fail "$db: usage_daily differs from the raw logs after the crash"
	[ "$(q "$db" "$VIEW_MISMATCHES")" = 0 ] || fail "$db: the views differ from the raw logs after the crash"
	[ "$(q "$db" "SELECT (SELECT sum(requests) FROM analytics.usage_daily) = (SELECT count(*) FROM analytics.logs)")" = t ] ||
		fail "$db: requests counted differ from the number of logs"
done
after="$(q db_a "SELECT count(*) FROM analytics.logs")"
[ "$after" -ge "$before" ] || fail "logs were lost: $before before the crash, $after after"
echo "logs in db_a: $after (>= $before seen during ingest)"

# One more round of ingest after recovery is folded too.
q db_a "$INSERT_SQL"
wait_for db_a "SELECT logs_pending = 0 FROM analytics.status" 15 || fail "no folding after the crash"
[ "$(q db_a "$MISMATCHES")" = 0 ] || fail "db_a: usage_daily differs after post-crash ingest"
[ "$(q db_a "$VIEW_MISMATCHES")" = 0 ] || fail "db_a: the views differ after post-crash ingest"

# No pass failed along the way (a failing pass logs an ERROR and restarts).
if grep -q "ERROR:" "$LOG"; then
	grep "ERROR:" "$LOG" | head -5
	fail "errors in the server log"
fi
echo "== a failing pass is recorded and retried by the same worker"
seen="$(wc -l <"$LOG")"
q db_b "ALTER DATABASE db_b SET lock_timeout = '300ms'"
old="$(q db_b "SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_b'")"
q db_b "SELECT pg_terminate_backend($old)" >/dev/null
wait_for db_b "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_b' AND pid <> $old" 15 ||
	fail "the worker did not come back"
pid="$(q db_b "SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_b'")"
# Hold the rollup away from the worker for 4 seconds: its passes time out.
"$PGBIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d db_b \
	-c "BEGIN; LOCK TABLE analytics.usage_daily IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;" >/dev/null &
LOOPS+=($!)
sleep 0.5
q db_b "$INSERT_SQL"
wait_for db_b "SELECT last_error LIKE '55P03:%' AND last_error_at > now() - interval '3 seconds' FROM analytics.status" 4 ||
	fail "the failed pass is not in analytics.status: $(q db_b "SELECT last_error FROM analytics.status")"
wait_for db_b "SELECT logs_pending = 0 FROM analytics.status" 15 || fail "no folding after the failed passes"
[ "$(q db_b "SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_b'")" = "$pid" ] ||
	fail "the worker restarted instead of retrying"
[ "$(q db_b "$VIEW_MISMATCHES")" = 0 ] || fail "db_b: the views differ after the failed passes"
q db_b "ALTER DATABASE db_b RESET lock_timeout"
LOOPS=()

echo "== logs the fold cannot count are set aside by the worker"
# As 1.0 could record them (no bounds then): written with the triggers off.
q db_b "SET session_replication_role = replica;
INSERT INTO analytics.logs (customer_identifier, model, cost, latency) VALUES ('c1', 'gpt-4o', 0, 1e308), ('c1', 'gpt-4o', 0, 1e308);
INSERT INTO analytics.logs (customer_identifier, model, cost) SELECT 'c2', string_agg(md5(i::text), ''), 0 FROM generate_series(1, 200) i;"
q db_b "$INSERT_SQL"
wait_for db_b "SELECT logs_pending = 0 AND logs_set_aside = 2 FROM analytics.status" 15 ||
	fail "the worker did not go past the logs it cannot fold: $(q db_b "SELECT * FROM analytics.status")"
[ "$(q db_b "SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'db_b'")" = "$pid" ] ||
	fail "the worker restarted on the logs it cannot fold"
[ "$(q db_b "SELECT string_agg(sqlstate, ',' ORDER BY log_id) FROM analytics.rollup_set_aside")" = "22003,54000" ] ||
	fail "unexpected set-aside logs: $(q db_b "SELECT log_id, sqlstate, error FROM analytics.rollup_set_aside")"
grep -q "set aside log" "$LOG" || fail "no warning about the set-aside logs in the server log"
# The only errors since are the lock timeouts the test caused.
if tail -n +"$((seen + 1))" "$LOG" | grep "ERROR:" | grep -v "canceling statement due to lock timeout" | grep -q .; then
	tail -n +"$((seen + 1))" "$LOG" | grep "ERROR:" | head -5
	fail "unexpected errors in the server log"
fi

[ $((SECONDS - START)) -lt "$LIMIT" ] || fail "took longer than $LIMIT seconds"
echo "worker.sh: ok ($((SECONDS - START)) s)"
