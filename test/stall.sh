#!/bin/bash
# No global stall (SPEC §8 "no global stall", §4; issue 9), on a throwaway
# cluster that preloads the library, with the default max_connections and
# max_locks_per_transaction.  Needs PGBIN; runs as an unprivileged user;
# prints every figure; exits non-zero on failure.
#
# Part 1, the operator's scenario, scaled down.  One session bulk-loads
# STALL_BULK_LOGS logs (default 1,800,000, about 10 s here) naming 70,000
# customers (without budgets) in ONE INSERT … SELECT.  Two pgbench
# clients (-R 200 -P 1) insert single logs, each for one of 1,000 other
# customers at random (every other one with a budget), from before the bulk
# load starts until after it ends.  2.5 s into the bulk load, five sessions
# at once, each timed from launch to return:
#   budget   upsert_customer raises x-budget's period_budget (a role in
#            analytics_admin)
#   block    UPDATE analytics.customers SET blocked = true (x-block)
#   delete   delete_customer('x-delete')
#   markup   ingest() with customer_params raising x-markup's
#            markup_percentage (superuser)
#   purge    purge_logs(now() - interval '400 days')
# Asserted:
#   - budget, block, delete and markup each return in under 1 s, and the
#     bulk load still had at least 3 s to run when they were launched (the
#     scenario really overlapped);
#   - purge_logs returns without error and deletes exactly the logs older
#     than 400 days.  It is not held to 1 s: it folds the pending logs in
#     first, and a fold waits for the transactions writing logs (the bulk
#     load among them) so that no log is counted before it commits (§5);
#     SPEC §8 requires only that it does not stall the writers, which the
#     pgbench check below covers while it runs;
#   - the pgbench seconds considered are those whose whole interval
#     [N-1, N] (N as printed by `progress: N s`, counted from pgbench's
#     start) lies inside the bulk load's run and the changes', from 0.2 s
#     after the bulk load's launch to 0.2 s before the last of the bulk load
#     and the five sessions returned (purge_logs may outlast the bulk
#     load): the partial first and last seconds are left out.  None of them falls below 100 tps (half the offered 200; a
#     Poisson second varies by about ±10%), and no pgbench client aborted;
#   - the bulk load completed (its rows are all there) with no "out of
#     shared memory" (lock table exhaustion) in its output or the server
#     log;
#   - the changes took effect: x-budget's new budget, x-block's next log
#     rejected with UA003, x-delete and its logs gone, x-markup's new markup
#     rejecting a log that the old markup would have let in (UA001).
# Part 2, only the changed customer's writers wait.  Customer z has spent
# $1.00 with no budget.  Session A: BEGIN; a $0.50 log of z; pg_sleep(4);
# COMMIT.  0.5 s after A's insert, upsert_customer sets z's period_budget to
# $1.20; 0.5 s later a session C inserts a $0.01 log of z, and a session D a
# log of another (budgeted) customer; pgbench runs as in part 1 throughout.
# Asserted: the change returns only after A committed (it waits for z's
# in-flight writer); C returns only after the change and is rejected with
# UA001 (it waited for the change, and the counter rebuilt for the new
# budget counts A's log: $1.50 ≥ $1.20); D returns in under 1 s; no pgbench
# second wholly inside the change's wait falls below 100 tps; z's logs sum
# to $1.50 and check_budget('z') says not allowed, $1.50 spent.
#
# Today's protocol (SHARE ROW EXCLUSIVE on analytics.logs for every change)
# fails this test: each change waits for the bulk load, and every writer
# queues behind it (0 tps).
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
DIR="$(mktemp -d /tmp/analytics-stall.XXXXXX)"
DATA="$DIR/data"
LOG="$DIR/server.log"
PORT=$((58000 + $$ % 1000))
DB=stall
NBULK="${STALL_BULK_LOGS:-1800000}"
NBULKCUST=70000
NOTHERS=1000
RATE=200
MIN_TPS=$((RATE / 2))
TIMEOUT=30
START=$SECONDS
PIDS=()
FAILURES=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	"$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

# check CONDITION-AS-AWK-EXPR MESSAGE: record a failure when false.
check() {
	if awk "BEGIN { exit !($1) }"; then
		echo "   ok: $2"
	else
		echo "   FAILED: $2"
		FAILURES+=("$2")
	fi
}

# check_eq ACTUAL EXPECTED MESSAGE
check_eq() {
	if [ "$1" = "$2" ]; then
		echo "   ok: $3"
	else
		echo "   FAILED: $3 (got: $(printf '%s' "$1" | tr '\n' ' ' | head -c 200); expected: $2)"
		FAILURES+=("$3")
	fi
}

fatal() {
	echo "stall.sh FAILED: $*"
	echo "--- server log (tail)"
	tail -30 "$LOG" 2>/dev/null || true
	exit 1
}

now() { date +%s.%N; }

q() {
	"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d "$DB" -c "$*"
}

# timed NAME USER SQL: run SQL in a session of its own in the background
# (statement_timeout $TIMEOUT s, so that a stall cannot hang the test);
# NAME.time gets "launch return exit-status", NAME.out the output (errors
# with their SQLSTATE).
timed() {
	local name="$1" user="$2" sql="$3"
	(
		set +e
		t0="$(now)"
		PGOPTIONS="-c statement_timeout=${TIMEOUT}s" PGAPPNAME="stall_$name" \
			"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h "$DIR" -p "$PORT" \
			-U "$user" -d "$DB" -f - <<<"$sql" >"$DIR/$name.out" 2>&1
		rc=$?
		echo "$t0 $(now) $rc" >"$DIR/$name.time"
	) &
	PIDS+=($!)
}

# field NAME 1|2|3: launch, return or exit status of a timed session.
field() { awk -v f="$2" '{ print $f }' "$DIR/$1.time"; }
dur() { awk '{ printf "%.3f", $2 - $1 }' "$DIR/$1.time"; }

# pgbench_start NAME: single-row inserts of the other customers, 2 clients,
# -R $RATE, progress every second, until stopped with pgbench_stop.
pgbench_start() {
	local name="$1"
	echo "$(now)" >"$DIR/$name.start"
	"$PGBIN/pgbench" -n -c 2 -j 2 -R "$RATE" -T 120 -P 1 -h "$DIR" -p "$PORT" -U postgres \
		-f "$DIR/others.sql" "$DB" >"$DIR/$name.log" 2>&1 &
	PGBENCH_PID=$!
	PIDS+=("$PGBENCH_PID")
}

# SIGTERM: a background job of a script ignores SIGINT.
pgbench_stop() {
	kill -TERM "$PGBENCH_PID" 2>/dev/null || true
	wait "$PGBENCH_PID" 2>/dev/null || true
}

# pgbench_window NAME FROM TO LABEL: print the tps of every progress second
# whose whole interval lies within [FROM, TO] (epoch seconds) and check the
# least of them against MIN_TPS.
pgbench_window() {
	local name="$1" from="$2" to="$3" label="$4" t0 line
	t0="$(cat "$DIR/$name.start")"
	if grep -q "aborted" "$DIR/$name.log"; then
		grep "aborted" "$DIR/$name.log" | head -3
		check 0 "$label: no pgbench client aborted"
	fi
	line="$(awk -v t0="$t0" -v from="$from" -v to="$to" '
		/^progress: / {
			n = $2 + 0; tps = $4 + 0
			if (t0 + n - 1 >= from && t0 + n <= to) {
				secs = secs (secs == "" ? "" : " ") sprintf("%d:%.0f", n, tps)
				if (min == "" || tps < min) min = tps
				k++
			}
		}
		END { printf "%d|%s|%s\n", k, (min == "" ? "none" : min), secs }' "$DIR/$name.log")"
	echo "   pgbench seconds considered (second:tps): ${line##*|}"
	local k="${line%%|*}" rest="${line#*|}"
	local min="${rest%%|*}"
	echo "   minimum: $min tps over $k seconds (offered $RATE; threshold $MIN_TPS = 0.5×)"
	check "$k >= 1" "$label: at least one whole pgbench second inside the window ($k)"
	if [ "$min" != none ]; then
		check "$min >= $MIN_TPS" "$label: min tps per second $min >= $MIN_TPS"
	fi
}

echo "== initdb and start a cluster on port $PORT"
"$PGBIN/initdb" -D "$DATA" -A trust -U postgres --no-sync >/dev/null
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'analytics'
analytics.rollup_interval = '1s'
fsync = off
EOF
"$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 start >/dev/null || fatal "server did not start"
echo "   max_connections $("$PGBIN/psql" -X -At -h "$DIR" -p "$PORT" -U postgres -d postgres -c "SHOW max_connections")," \
	"max_locks_per_transaction $("$PGBIN/psql" -X -At -h "$DIR" -p "$PORT" -U postgres -d postgres -c "SHOW max_locks_per_transaction")"
"$PGBIN/createdb" -h "$DIR" -p "$PORT" -U postgres "$DB"

q "CREATE EXTENSION analytics"
q "DO \$\$ BEGIN
     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stall_admin') THEN
       CREATE ROLE stall_admin LOGIN IN ROLE analytics_admin;
     END IF;
   END \$\$"
# The bulk-loaded customers, the pgbench customers
# (every other one budgeted), the customers changed in part 1, z and y of
# part 2, and some logs of them.  Budgets that never reject are 1e9.
q "INSERT INTO analytics.customers (customer_identifier, period_budget)
   SELECT 'b' || g, NULL FROM generate_series(1, $NBULKCUST) g;
   INSERT INTO analytics.customers (customer_identifier, period_budget)
   SELECT 'p' || g, CASE WHEN g % 2 = 0 THEN 1e9 END FROM generate_series(1, $NOTHERS) g;
   INSERT INTO analytics.customers (customer_identifier, period_budget) VALUES
     ('x-budget', 10), ('x-block', 10), ('x-delete', 10), ('x-markup', 1), ('z', NULL), ('y', 100);
   INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES
     ('x-budget', 'gpt-4o-mini', 9.99), ('x-block', 'gpt-4o-mini', 1), ('x-delete', 'gpt-4o-mini', 1),
     ('x-delete', 'gpt-4o-mini', 2), ('x-markup', 'gpt-4o-mini', 0.70), ('z', 'gpt-4o-mini', 1.00),
     ('y', 'gpt-4o-mini', 1);
   INSERT INTO analytics.logs (customer_identifier, model, cost, created_at)
   SELECT 'old' || g, 'gpt-4o-mini', 0.01, now() - interval '500 days' FROM generate_series(1, 37) g;
   SELECT analytics.rollup_now();" >/dev/null
q "VACUUM ANALYZE" >/dev/null
cat >"$DIR/others.sql" <<EOF
\\set c random(1, $NOTHERS)
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost)
VALUES ('p' || :c, 'gpt-4o-mini', 100, 20, 0.0001);
EOF

echo "== part 1: changes during a bulk load of $NBULK logs naming $NBULKCUST other customers"
pgbench_start bench1
sleep 1.5
timed bulk postgres "INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost, created_at)
  SELECT 'b' || (1 + g % $NBULKCUST), 'gpt-4o-mini', 100 + g % 900, g % 300, 0.0002,
         now() - (g % 29) * interval '1 day'
    FROM generate_series(1, $NBULK) g"
BULK_PID=$!
sleep 2.5
timed budget stall_admin "SELECT (analytics.upsert_customer('{\"customer_identifier\": \"x-budget\", \"period_budget\": 20}')).period_budget"
timed block postgres "UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'x-block'"
timed delete stall_admin "SELECT analytics.delete_customer('x-delete')"
timed markup postgres "SELECT analytics.ingest('{\"model\": \"gpt-4o-mini\", \"cost\": 0.01, \"customer_params\": {\"customer_identifier\": \"x-markup\", \"markup_percentage\": 25}}'::jsonb) > 0"
# purge_logs folds the bulk load's logs after waiting for it (tens of seconds
# on a loaded machine): it is held to no time bound, only to not stalling
# the writers, so it gets a longer statement_timeout of its own.
timed purge stall_admin "SET statement_timeout = '$((TIMEOUT * 4))s'; SELECT analytics.purge_logs(now() - interval '400 days')"
CHANGE_PIDS=("${PIDS[@]: -5}")
wait "$BULK_PID" || true
for pid in "${CHANGE_PIDS[@]}"; do
	wait "$pid" || true
done
sleep 1.5
pgbench_stop

bulk_launch="$(field bulk 1)"
bulk_end="$(field bulk 2)"
echo "   bulk load: $NBULK logs, $(dur bulk) s, exit $(field bulk 3): $(head -c 300 "$DIR/bulk.out")"
check "$(field bulk 3) == 0" "the bulk load completed"
if grep -qi "out of shared memory" "$DIR/bulk.out" "$LOG"; then
	grep -i -m3 "out of shared memory" "$DIR/bulk.out" "$LOG"
	check 0 "no lock table exhaustion (out of shared memory)"
else
	check 1 "no lock table exhaustion (out of shared memory)"
fi
n="$(q "SELECT count(*) FROM analytics.logs WHERE customer_identifier LIKE 'b%'")"
check "$n == $NBULK" "all $NBULK bulk logs are there ($n)"
change_launch="$(field budget 1)"
check "$bulk_end - $change_launch >= 3" \
	"the bulk load still ran $(awk -v a="$bulk_end" -v b="$change_launch" 'BEGIN { printf "%.1f", a - b }') s after the changes were launched (>= 3)"
for c in budget block delete markup; do
	echo "   $c: $(dur $c) s, exit $(field $c 3): $(tr '\n' ' ' <"$DIR/$c.out" | head -c 300)"
	check "$(field $c 3) == 0" "$c succeeded"
	check "$(dur $c) < 1" "$c returned in under 1 s ($(dur $c) s)"
done
echo "   purge: $(dur purge) s (returned $(awk -v e="$(field purge 2)" -v b="$bulk_end" 'BEGIN { printf "%+.1f", e - b }') s from the bulk load's end), exit $(field purge 3): $(tr '\n' ' ' <"$DIR/purge.out" | head -c 300)"
check "$(field purge 3) == 0" "purge_logs succeeded"
check_eq "$(tr -d '\n' <"$DIR/purge.out")" "37" "purge_logs deleted the 37 logs older than 400 days"
last_end="$(cat "$DIR"/{bulk,budget,block,delete,markup,purge}.time | awk '$2 > m { m = $2 } END { printf "%.3f", m }')"
echo "   pgbench from the bulk load's launch + 0.2 s to the last return (bulk load or change) - 0.2 s:"
pgbench_window bench1 "$(awk -v t="$bulk_launch" 'BEGIN { printf "%.3f", t + 0.2 }')" \
	"$(awk -v t="$last_end" 'BEGIN { printf "%.3f", t - 0.2 }')" "part 1 pgbench"

echo "   the changes took effect:"
check_eq "$(q "SELECT period_budget FROM analytics.customers WHERE customer_identifier = 'x-budget'")" "20" \
	"x-budget's period_budget is 20"
# x-budget spent $9.99: a $1.00 log gets in under either budget, and then
# a $0.01 log ($10.99 spent before it) only under the new $20.
q "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('x-budget', 'gpt-4o-mini', 1.00)"
r="$("$PGBIN/psql" -X -q -At -v VERBOSITY=verbose -h "$DIR" -p "$PORT" -U postgres -d "$DB" \
	-c "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('x-budget', 'gpt-4o-mini', 0.01)" 2>&1 && echo accepted || true)"
check_eq "$r" "accepted" "x-budget's next log is counted against the new budget (accepted at \$10.99 spent)"
r="$("$PGBIN/psql" -X -q -At -v VERBOSITY=verbose -h "$DIR" -p "$PORT" -U postgres -d "$DB" \
	-c "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('x-block', 'gpt-4o-mini', 0.01)" 2>&1 || true)"
check_eq "$(echo "$r" | grep -o 'UA003' | head -1)" "UA003" "x-block's next log is rejected with UA003"
check_eq "$(q "SELECT count(*) FROM analytics.customers WHERE customer_identifier = 'x-delete'")/$(q "SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'x-delete'")" "0/0" \
	"x-delete and its logs are gone"
check_eq "$(q "SELECT markup_percentage FROM analytics.customers WHERE customer_identifier = 'x-markup'")" "25" \
	"x-markup's markup_percentage is 25"
# x-markup spent $0.71 raw of $1.00: with 25% markup $0.8875, so $0.20 more
# gets in ($1.1375 billed after it), and the next log is rejected; with
# the old 0% markup ($0.91) it would be accepted.
q "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('x-markup', 'gpt-4o-mini', 0.20)"
r="$("$PGBIN/psql" -X -q -At -v VERBOSITY=verbose -h "$DIR" -p "$PORT" -U postgres -d "$DB" \
	-c "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('x-markup', 'gpt-4o-mini', 0.01)" 2>&1 || true)"
check_eq "$(echo "$r" | grep -o 'UA001' | head -1)" "UA001" "x-markup's next log is rejected with UA001 under the new markup"

echo "== part 2: a change of z waits for z's open writer; only z's writers wait"
pgbench_start bench2
sleep 1.5
timed writer_a postgres "BEGIN;
  INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('z', 'gpt-4o-mini', 0.50);
  SELECT pg_sleep(4);
  COMMIT;"
A_PID=$!
# The change is launched 0.5 s after A's insert returned.
a_inserted=""
for _ in $(seq 1 100); do
	if [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stall_writer_a' AND query LIKE '%pg_sleep%'")" = 1 ]; then
		a_inserted="$(now)"
		break
	fi
	sleep 0.05
done
[ -n "$a_inserted" ] || fatal "writer A did not insert: $(cat "$DIR/writer_a.out")"
sleep 0.5
timed zchange stall_admin "SELECT (analytics.upsert_customer('{\"customer_identifier\": \"z\", \"period_budget\": 1.20}')).period_budget"
Z_PID=$!
sleep 0.5
timed writer_c postgres "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('z', 'gpt-4o-mini', 0.01)"
C_PID=$!
timed writer_d postgres "INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('y', 'gpt-4o-mini', 0.01)"
D_PID=$!
wait "$A_PID" || true
wait "$Z_PID" || true
wait "$C_PID" || true
wait "$D_PID" || true
sleep 1.5
pgbench_stop

a_end="$(field writer_a 2)"
z_launch="$(field zchange 1)"
z_end="$(field zchange 2)"
echo "   writer A of z: seen sleeping after its insert at +$(awk -v a="$a_inserted" -v l="$(field writer_a 1)" 'BEGIN { printf "%.2f", a - l }') s, committed and returned after $(dur writer_a) s, exit $(field writer_a 3)"
check "$(field writer_a 3) == 0" "writer A committed"
echo "   change of z's budget: launched $(awk -v z="$z_launch" -v a="$a_end" 'BEGIN { printf "%.2f", a - z }') s before A returned; took $(dur zchange) s, exit $(field zchange 3): $(tr '\n' ' ' <"$DIR/zchange.out" | head -c 200)"
check "$(field zchange 3) == 0" "the change of z succeeded"
check "$z_end >= $a_end - 0.05" "the change of z returned only after A committed ($(awk -v z="$z_end" -v a="$a_end" 'BEGIN { printf "%+.3f", z - a }') s after A returned)"
check "$(dur zchange) >= 3" "the change of z waited for A's remaining open time ($(dur zchange) s >= 3)"
echo "   writer C of z: launched $(awk -v c="$(field writer_c 1)" -v z="$z_launch" 'BEGIN { printf "%.2f", c - z }') s after the change; took $(dur writer_c) s, exit $(field writer_c 3): $(tr '\n' ' ' <"$DIR/writer_c.out" | head -c 200)"
check "$(field writer_c 2) >= $z_end - 0.05" "writer C of z returned only after the change ($(awk -v c="$(field writer_c 2)" -v z="$z_end" 'BEGIN { printf "%+.3f", c - z }') s after it)"
check_eq "$(grep -o 'UA001' "$DIR/writer_c.out" | head -1)" "UA001" "writer C of z is rejected with UA001 (it obeys the new budget, counted with A's log)"
echo "   writer D of y: took $(dur writer_d) s, exit $(field writer_d 3)"
check "$(field writer_d 3) == 0 && $(dur writer_d) < 1" "writer D of another customer did not wait ($(dur writer_d) s < 1)"
zsum="$(q "SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'z'")"
zcheck="$(q "SELECT allowed, reason, period_spend = 1.50 FROM analytics.check_budget('z')")"
check_eq "$zsum" "1.50" "z's logs sum to \$1.00 + A's \$0.50 (C's log not recorded)"
check_eq "$zcheck" "f|period_budget|t" "check_budget('z'): not allowed, period spend \$1.50 of \$1.20"
echo "   pgbench while the change of z waited ([launch, return]):"
pgbench_window bench2 "$z_launch" "$z_end" "part 2 pgbench"

echo "== $((SECONDS - START)) s"
if [ "${#FAILURES[@]}" -gt 0 ]; then
	echo "stall.sh FAILED (${#FAILURES[@]}):"
	printf '   - %s\n' "${FAILURES[@]}"
	exit 1
fi
echo "stall.sh: ok"
