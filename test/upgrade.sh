#!/bin/bash
# Upgrade test (SPEC section 15).  Builds the oldest release listed in
# test/releases from its commit (scripts/test.sh extracts the tree into
# tmp_release/VERSION), installs it into a relocated copy of PostgreSQL (the
# system install is not touched), and on a cluster run by those binaries
# creates the extension at that version and loads data: customers with
# period and total budgets and markups, a blocked one, logs folded and
# pending, budget counters, rollups, purged logs.  It records every table
# (row count and md5 of the ordered rows) and the output of every view and
# read function.  Then it restarts the same data directory with the system
# binaries, where scripts/test.sh installed the current library, and checks
# that before ALTER EXTENSION UPDATE the old database is not harmed: the
# worker waits, writes refuse with a hint to run ALTER EXTENSION analytics
# UPDATE, reads give the same figures or refuse the same way, nothing
# changes.  Then it updates and checks: the schema dump equals that of a
# fresh install of the current version, every row and figure is kept, and
# stays so once the worker has folded the pending logs.
# Needs PGBIN; runs as an unprivileged user; bounded to 90 seconds.
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$(mktemp -d /tmp/analytics-upgrade.XXXXXX)"
DATA="$DIR/data"
LOG="$DIR/server.log"
PORT=$((58000 + $$ % 2000))
START=$SECONDS
LIMIT=90
BIN="$PGBIN"

read -r OLD COMMIT < <(grep -v '^#' "$ROOT/test/releases" | grep . | head -1)
NEW="$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/analytics.control")"
RELEASE="$ROOT/tmp_release/$OLD"
P="$DIR/pg"
OLDBIN="$P/usr/lib/postgresql/15/bin"

cleanup() {
	"$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
	echo "upgrade.sh FAILED: $*"
	echo "--- server log (tail)"
	tail -40 "$LOG" 2>/dev/null || true
	exit 1
}

q() {
	local db="$1"
	shift
	"$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d "$db" -c "$*"
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

# refused DB SQL: SQL must fail with 55000 and the hint to update; nothing
# else is accepted.
HINT="HINT:  Run ALTER EXTENSION analytics UPDATE."
refused() {
	local db="$1" sql="$2" out
	if out="$("$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h "$DIR" -p "$PORT" \
		-U postgres -d "$db" -c "$sql" 2>&1)"; then
		fail "accepted before the update: $sql"
	fi
	grep -q "ERROR:  55000: analytics $OLD is installed but the loaded library is version $NEW" <<<"$out" &&
		grep -qF "$HINT" <<<"$out" || fail "refused without the update hint: $sql: $out"
}

[ -n "$OLD" ] && [ -n "$COMMIT" ] && [ -n "$NEW" ] || fail "no release in test/releases or no default_version"
[ -f "$RELEASE/Makefile" ] ||
	fail "$RELEASE is missing: scripts/test.sh extracts the released trees from git before this test"
[ "$(cat "$RELEASE/.release-commit")" = "$COMMIT" ] || fail "$RELEASE is not commit $COMMIT"

echo "== build $OLD (commit ${COMMIT:0:12}) into a relocated copy of PostgreSQL"
mkdir -p "$P/usr/lib/postgresql" "$P/usr/share/postgresql"
cp -a /usr/lib/postgresql/15 "$P/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$P/usr/share/postgresql/"
[ "$("$OLDBIN/pg_config" --pkglibdir)" = "$P/usr/lib/postgresql/15/lib" ] &&
	[ "$("$OLDBIN/pg_config" --sharedir)" = "$P/usr/share/postgresql/15" ] ||
	fail "the relocated pg_config does not report the relocated directories"
# The copy carries the current version (installed by scripts/test.sh): only
# the release may be there.
rm -rf "$P/usr/lib/postgresql/15/lib/analytics.so" "$P/usr/lib/postgresql/15/lib/bitcode/analytics"* \
	"$P/usr/share/postgresql/15/extension/analytics"*
make -C "$RELEASE" -s PG_CONFIG="$PGBIN/pg_config" >/dev/null 2>"$DIR/build.log" ||
	{ cat "$DIR/build.log"; fail "the $OLD release does not build"; }
make -C "$RELEASE" -s PG_CONFIG="$PGBIN/pg_config" DESTDIR="$P" install >/dev/null ||
	fail "the $OLD release does not install into $P"
[ "$(ls "$P/usr/share/postgresql/15/extension/" | grep '^analytics' | tr '\n' ' ')" = \
	"analytics--$OLD.sql analytics.control " ] || fail "unexpected files in the relocated extension directory"
cmp -s "$RELEASE/sql/analytics--$OLD.sql" "$ROOT/sql/analytics--$OLD.sql" ||
	fail "the $OLD release builds another install script than sql/analytics--$OLD.sql"

echo "== $OLD: initdb and start a cluster on port $PORT"
BIN="$OLDBIN"
"$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'analytics'
analytics.worker_enabled = off
max_worker_processes = 16
fsync = off
EOF
"$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 start >/dev/null || fail "the $OLD server did not start"
q postgres "CREATE DATABASE up"
q up "CREATE EXTENSION analytics VERSION '$OLD'"
[ "$(q up "SELECT extversion FROM pg_extension WHERE extname = 'analytics'")" = "$OLD" ] || fail "not at $OLD"

# Every timestamp is relative to T0, fixed for the whole test, so that every
# figure is computed on the same ranges before and after.
T0="$(q up "SELECT date_trunc('day', now() - interval '1 day')")"
echo "== $OLD: load data (T0 = $T0)"
"$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d up -v t0="$T0" >/dev/null <<'EOF'
SET TimeZone = 'UTC';
SELECT analytics.set_timezone('Europe/Paris');
INSERT INTO analytics.model_prices VALUES ('acme-', 1.25, 3.5);
-- period budget with markup, monthly; total budget; both, daily; none.
SELECT analytics.upsert_customer('{"customer_identifier": "alice", "name": "Alice", "email": "alice@example.com",
    "period_budget": 500, "budget_duration": "monthly", "markup_percentage": 20}');
SELECT analytics.upsert_customer('{"customer_identifier": "bob", "total_budget": 300, "metadata": {"tier": "gold"}}');
INSERT INTO analytics.customers (customer_identifier, name, period_budget, budget_duration, period_start,
                                 total_budget, markup_percentage)
VALUES ('carol', 'Carol', 40, 'daily', '2025-01-01 06:00+00', 900, 10),
       ('dave', 'Dave', NULL, 'weekly', '2025-01-01', NULL, 0);
-- Old logs (purged below), recent logs, through every write path.
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, cost, latency,
                            status_code, created_at, metadata)
SELECT (ARRAY['alice', 'bob', 'carol', 'dave', 'erin', 'frank'])[1 + g % 6],
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'acme-large', 'other'])[1 + g % 4],
       g % 900, g % 130, CASE WHEN g % 4 = 3 THEN g % 7 * 0.01 END,
       CASE WHEN g % 5 <> 0 THEN (g % 11) / 4.0 END, CASE WHEN g % 13 = 0 THEN 500 ELSE 200 END,
       :'t0'::timestamptz - interval '40 days' + g * interval '97 minutes',
       jsonb_build_object('g', g)
  FROM generate_series(1, 400) g;
SELECT analytics.ingest('{"model": "gpt-4o", "customer_identifier": "erin", "prompt_tokens": 1200,
    "completion_tokens": 300, "latency": 0.8, "timestamp": "' || (:'t0'::timestamptz + interval '2 hours') || '"}');
SELECT analytics.ingest_openai(
    '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "customer_params": {"customer_identifier": "gina", "name": "Gina", "total_budget": 50}}',
    '{"id": "x", "object": "chat.completion", "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}], "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}',
    1.5);
SELECT analytics.ingest_batch(string_agg(format('{"model": "acme-small", "customer_identifier": "%s", "prompt_tokens": %s, "timestamp": "%s"}',
    (ARRAY['alice', 'frank', 'gina'])[1 + g % 3], g * 10, :'t0'::timestamptz - g * interval '5 hours'), E'\n'))
  FROM generate_series(1, 30) g;
-- Fold everything, delete the raw logs older than 20 days (retained_from).
SELECT analytics.purge_logs(:'t0'::timestamptz - interval '20 days');
UPDATE analytics.customers SET blocked = true WHERE customer_identifier = 'dave';
-- What a 1.0 site may have granted its application role: enough to rewrite
-- budgets.  The update takes it back.
CREATE ROLE site_app NOLOGIN;
GRANT UPDATE ON analytics.budget_counters, analytics.customers TO site_app;
GRANT UPDATE (period_budget, blocked) ON analytics.customers TO site_app;
GRANT INSERT ON analytics.usage_daily TO PUBLIC;
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, created_at)
SELECT (ARRAY['alice', 'bob', 'carol', 'erin'])[1 + g % 4], 'gpt-4o', 100 + g, g, :'t0'::timestamptz + g * interval '7 minutes'
  FROM generate_series(1, 40) g;
SELECT analytics.rollup_now();
-- Pending: written after the last fold (the worker is off).
INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens, completion_tokens, created_at)
SELECT (ARRAY['alice', 'bob', 'carol', 'erin', 'frank'])[1 + g % 5], 'gpt-4o-mini', 50 * g, 3 * g,
       :'t0'::timestamptz + interval '12 hours' + g * interval '3 minutes'
  FROM generate_series(1, 25) g;
EOF
q up "SELECT logs_pending = 25 AND watermark > 0 AND retained_from IS NOT NULL FROM analytics.status" | grep -qx t ||
	fail "the load did not leave folded, pending and purged logs: $(q up "SELECT * FROM analytics.status")"

# What is recorded: every table of OLD (its columns of OLD, so columns added
# later do not count), the identity sequence, and every view and read
# function (their columns of OLD, found with \gdesc).
q up "SELECT format('SELECT %L || count(*) || '' '' || coalesce(md5(string_agg(r::text, E''\\n'' ORDER BY r::text)), ''-'') FROM (SELECT %s FROM analytics.%I) r;',
                    'table ' || c.relname || ': ', string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'p')
       GROUP BY c.relname
      UNION ALL
      SELECT format('SELECT %L || last_value || '' '' || is_called FROM analytics.%I;', 'sequence ' || c.relname || ': ', c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'analytics' AND c.relkind = 'S'
       ORDER BY 1" >"$DIR/tables.sql"
FIGURES=(
	"users|SELECT * FROM analytics.users"
	"top_users|SELECT * FROM analytics.top_users"
	"daily_active_users|SELECT * FROM analytics.daily_active_users"
	"cost_by_user|SELECT * FROM analytics.cost_by_user"
	"logs_with_customer|SELECT * FROM analytics.logs_with_customer"
	"status|SELECT watermark, logs_pending, last_pass_folded, timezone, retained_from FROM analytics.status"
	"active_users_day|SELECT * FROM analytics.active_users(TIMESTAMPTZ '$T0' - interval '45 days', TIMESTAMPTZ '$T0' + interval '1 day')"
	"active_users_week|SELECT * FROM analytics.active_users(TIMESTAMPTZ '$T0' - interval '45 days', TIMESTAMPTZ '$T0' + interval '1 day', 'week')"
	"active_users_month|SELECT * FROM analytics.active_users(TIMESTAMPTZ '$T0' - interval '45 days', TIMESTAMPTZ '$T0' + interval '1 day', 'month')"
	"top_users_cost|SELECT * FROM analytics.top_users(TIMESTAMPTZ '$T0' - interval '30 days', TIMESTAMPTZ '$T0' + interval '1 day')"
	"top_users_requests|SELECT * FROM analytics.top_users(TIMESTAMPTZ '$T0' - interval '45 days', TIMESTAMPTZ '$T0', 'requests', 3)"
	"customer_logs|SELECT * FROM analytics.customer_logs('alice', TIMESTAMPTZ '$T0' - interval '10 days', TIMESTAMPTZ '$T0' + interval '1 day', 50)"
	"check_budget_alice|SELECT * FROM analytics.check_budget('alice')"
	"check_budget_bob|SELECT * FROM analytics.check_budget('bob')"
	"check_budget_carol|SELECT * FROM analytics.check_budget('carol')"
	"check_budget_dave|SELECT * FROM analytics.check_budget('dave')"
	"check_budget_gina|SELECT * FROM analytics.check_budget('gina')"
	"period_spend|SELECT c, analytics.period_spend(c) FROM unnest(ARRAY['alice', 'bob', 'carol']) c"
	"budget_period|SELECT * FROM analytics.budget_period('carol', TIMESTAMPTZ '$T0' + interval '3 hours')"
)
: >"$DIR/figures.sql"
for f in "${FIGURES[@]}"; do
	name="${f%%|*}" sql="${f#*|}"
	cols="$(printf '%s \\gdesc\n' "$sql" |
		"$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d up |
		cut -d'|' -f1 | sed 's/.*/"&"/' | paste -sd, -)"
	[ -n "$cols" ] || fail "no columns for $name"
	echo "SELECT 'figure $name: ' || row($cols)::text FROM ($sql) t ORDER BY 1;" >>"$DIR/figures.sql"
done
capture() {
	"$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d up "$@"
}
capture -f "$DIR/tables.sql" -f "$DIR/figures.sql" >"$DIR/before.txt"
for f in "${FIGURES[@]}"; do
	grep -q "^figure ${f%%|*}: " "$DIR/before.txt" || fail "${f%%|*} gives no row: the test would prove nothing"
done
if grep -E '^table [a-z_]+: 0 ' "$DIR/before.txt"; then
	fail "empty tables after the load: the test would prove nothing"
fi
echo "recorded $(grep -c '^table ' "$DIR/before.txt") tables, $(grep -c '^sequence ' "$DIR/before.txt") sequence, $(grep -c '^figure ' "$DIR/before.txt") rows of ${#FIGURES[@]} views and functions"
grep -E '^table (logs|usage_daily|budget_counters|customers):' "$DIR/before.txt" | sed 's/^/  /'

echo "== stop; start the same data directory with the current library ($NEW)"
"$BIN/pg_ctl" -D "$DATA" -w -t 30 stop >/dev/null || fail "the $OLD server did not stop"
BIN="$PGBIN"
cat >>"$DATA/postgresql.conf" <<EOF
analytics.worker_enabled = on
analytics.rollup_interval = '200ms'
EOF
: >"$LOG"
"$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 start >/dev/null || fail "the server did not start with the current library"

echo "== before ALTER EXTENSION UPDATE: the worker waits"
wait_for up "SELECT query = 'analytics rollup: waiting for ALTER EXTENSION analytics UPDATE'
               FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'up'" 15 ||
	fail "the worker does not say it waits: $(q up "SELECT backend_type, query FROM pg_stat_activity")"
worker="$(q up "SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'up'")"
status0="$(q up "SELECT watermark, logs_pending FROM analytics.status")"
sleep 2.5
[ "$(q up "SELECT watermark, logs_pending FROM analytics.status")" = "$status0" ] ||
	fail "the worker folded against the $OLD objects"
[ "$(q up "SELECT pid FROM pg_stat_activity WHERE backend_type = 'analytics rollup' AND datname = 'up'")" = "$worker" ] ||
	fail "the waiting worker did not stay (restart loop?)"
[ "$(grep -c 'analytics rollup worker waits for ALTER EXTENSION analytics UPDATE' "$LOG")" = 1 ] ||
	fail "the worker should log once that it waits"
echo "worker $worker waits; watermark and pending stay ($status0)"

echo "== before ALTER EXTENSION UPDATE: writes refuse with the hint"
WRITES=(
	"INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES ('erin', 'gpt-4o', 10)"
	"INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('newcomer', 'gpt-4o', 1)"
	"SELECT analytics.ingest('{\"model\": \"gpt-4o\", \"customer_identifier\": \"erin\"}')"
	"SELECT analytics.ingest('{\"model\": \"gpt-4o\", \"customer_identifier\": \"erin\"}'::jsonb)"
	"SELECT analytics.ingest_openai('{\"model\": \"gpt-4o\", \"user\": \"erin\"}', '{\"object\": \"chat.completion\", \"usage\": {\"prompt_tokens\": 1}}')"
	"SELECT analytics.ingest_batch('{\"model\": \"gpt-4o\", \"customer_identifier\": \"erin\"}')"
	"SELECT analytics.rollup_now()"
	"SELECT analytics.purge_logs(TIMESTAMPTZ '$T0' - interval '5 days')"
	"SELECT analytics.delete_customer('frank')"
	"SELECT analytics.set_timezone('UTC')"
	"UPDATE analytics.customers SET period_budget = 1 WHERE customer_identifier = 'alice'"
	"SELECT analytics.upsert_customer('{\"customer_identifier\": \"bob\", \"total_budget\": 1}')"
)
for sql in "${WRITES[@]}"; do
	refused up "$sql" </dev/null
done
refused up "COPY analytics.logs (customer_identifier, model, prompt_tokens) FROM STDIN" <<<$'erin\tgpt-4o\t10'
echo "$((${#WRITES[@]} + 1)) writes (COPY included) refused with 55000 and \"$HINT\""

echo "== before ALTER EXTENSION UPDATE: reads give the same figures or refuse with the hint"
same=0 refusals=0
while IFS= read -r sql; do
	name="$(sed -n "s/^SELECT 'figure \([a-z_]*\): '.*/\1/p" <<<"$sql")"
	if out="$("$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h "$DIR" -p "$PORT" \
		-U postgres -d up -c "$sql" 2>&1)"; then
		[ "$out" = "$(grep "^figure $name: " "$DIR/before.txt")" ] || fail "$name differs before the update"
		same=$((same + 1))
	else
		grep -qF "$HINT" <<<"$out" || fail "$name fails without the update hint: $out"
		refusals=$((refusals + 1))
	fi
done <"$DIR/figures.sql"
echo "$same views and functions give the same rows, $refusals refuse with the hint"
capture -f "$DIR/tables.sql" >"$DIR/between.txt"
# A refused INSERT has drawn its id (as any failed INSERT does): the
# sequence may move, no table may.
diff <(grep '^table ' "$DIR/before.txt") <(grep '^table ' "$DIR/between.txt") ||
	fail "the $OLD database changed before the update"
echo "every table unchanged ($(grep '^sequence ' "$DIR/between.txt"), was $(grep '^sequence ' "$DIR/before.txt" | cut -d' ' -f3-))"
if grep -E 'terminated by signal|exited with exit code [1-9]|PANIC' "$LOG"; then
	fail "a process failed before the update"
fi

echo "== ALTER EXTENSION analytics UPDATE"
# The update and the first reads in one transaction: the worker cannot see
# the new version, and fold, before they are done.
capture -c "BEGIN" -c "ALTER EXTENSION analytics UPDATE" -f "$DIR/tables.sql" -f "$DIR/figures.sql" \
	-c "COMMIT" >"$DIR/after.txt"
[ "$(q up "SELECT extversion FROM pg_extension WHERE extname = 'analytics'")" = "$NEW" ] || fail "not at $NEW after the update"
diff <(grep -v '^sequence ' "$DIR/before.txt") <(grep -v '^sequence ' "$DIR/after.txt") ||
	fail "rows or figures changed by the update"
diff <(grep '^sequence ' "$DIR/between.txt") <(grep '^sequence ' "$DIR/after.txt") ||
	fail "the update moved the sequence"
echo "every row ($(grep -c '^table ' "$DIR/after.txt") tables, the sequence) and every figure ($(grep -c '^figure ' "$DIR/after.txt") rows) kept"

echo "== grants of 1.0 that could rewrite budgets are gone"
[ "$(q up "SELECT has_table_privilege('site_app', 'analytics.budget_counters', 'UPDATE')
             OR has_table_privilege('site_app', 'analytics.customers', 'UPDATE')
             OR has_column_privilege('site_app', 'analytics.customers', 'period_budget', 'UPDATE')
             OR has_column_privilege('site_app', 'analytics.customers', 'blocked', 'UPDATE')
             OR has_table_privilege('public', 'analytics.usage_daily', 'INSERT')")" = f ] ||
	fail "a 1.0 grant that can rewrite budgets survived the update"
echo "site_app and PUBLIC lost their writes of budget_counters, customers and usage_daily"

echo "== the schema equals a fresh install of $NEW"
q postgres "CREATE DATABASE fresh"
q fresh "CREATE EXTENSION analytics"
# --binary-upgrade dumps the members of the extension one by one; drop what
# names OIDs or transaction ids (the OID preservation calls, the relfrozenxid
# updates, the OIDs of the configuration tables, whose number and order stay),
# the sequence's position (data, compared above) and the random key of
# \restrict.
schema() {
	"$BIN/pg_dump" -h "$DIR" -p "$PORT" -U postgres --schema-only --binary-upgrade -d "$1" |
		grep -v -e 'binary_upgrade_set_next_' -e '^SET relfrozenxid = ' -e "^WHERE oid = '[0-9]*';\$" \
			-e '^\\\(un\)\?restrict ' -e '^-- Dumped' -e '^SELECT pg_catalog.setval(' |
		sed -e "/binary_upgrade_create_empty_extension/s/[0-9]\{5,\}/OID/g"
}
schema up >"$DIR/schema_up.sql"
schema fresh >"$DIR/schema_fresh.sql"
grep -q 'CREATE TABLE analytics.logs' "$DIR/schema_fresh.sql" || fail "the dump does not list the extension's members"
diff "$DIR/schema_fresh.sql" "$DIR/schema_up.sql" >"$DIR/schema.diff" || {
	head -60 "$DIR/schema.diff"
	fail "the updated schema differs from a fresh install (diff: fresh, updated)"
}
echo "pg_dump --schema-only --binary-upgrade: identical ($(wc -l <"$DIR/schema_up.sql") lines)"

echo "== the worker resumes and folds; the figures stay"
wait_for up "SELECT logs_pending = 0 AND watermark >= (SELECT max(id) FROM analytics.logs) FROM analytics.status" 20 ||
	fail "the worker did not fold after the update: $(q up "SELECT * FROM analytics.status")"
grep -q 'analytics rollup worker resumes' "$LOG" || fail "the worker did not log that it resumes"
capture -f "$DIR/figures.sql" | grep -v '^figure status: ' >"$DIR/folded.txt"
diff <(grep '^figure ' "$DIR/before.txt" | grep -v '^figure status: ') "$DIR/folded.txt" ||
	fail "figures changed once the worker folded"
echo "$(wc -l <"$DIR/folded.txt") rows of views and functions unchanged after the fold"

echo "== writes work again"
q up "INSERT INTO analytics.logs (customer_identifier, model, prompt_tokens) VALUES ('erin', 'gpt-4o', 10)"
id="$(q up "SELECT analytics.ingest('{\"model\": \"gpt-4o\", \"customer_identifier\": \"newcomer\"}')")"
wait_for up "SELECT logs_pending = 0 AND watermark = $id FROM analytics.status" 10 || fail "the new logs are not folded"
[ "$(q up "SELECT requests FROM analytics.users WHERE customer_identifier = 'newcomer'")" = 1 ] ||
	fail "the new customer is not counted"
if grep -E 'terminated by signal|exited with exit code [1-9]|PANIC' "$LOG"; then
	fail "a process failed"
fi
[ $((SECONDS - START)) -lt "$LIMIT" ] || fail "took longer than $LIMIT seconds"
echo "upgrade.sh: ok ($((SECONDS - START)) s)"
