#!/bin/bash
# Budget exactness under real concurrency: 8 pgbench clients insert $0.01
# logs of one customer with a $1.00 monthly budget, 240 attempts in all.
# Exactly 100 logs must be accepted (the 100th reaches the budget exactly,
# every later one finds the period spent) and every rejection must carry
# SQLSTATE UA001.  Each insert runs in a DO block that records the SQLSTATE
# of a rejection, so no pgbench client aborts.
#
# Runs its own throwaway cluster (unix socket in a temp dir, nothing
# listening on TCP), stopped on exit.  Needs PGBIN; exits non-zero on
# failure.
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
TMP="$(mktemp -d /tmp/analytics-budget-stress.XXXXXX)"
PORT=55433
export PGHOST="$TMP" PGPORT="$PORT" PGDATABASE=postgres

cleanup() {
	"$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "budget_stress: FAILED: $*" >&2
	exit 1
}

"$PGBIN/initdb" -D "$TMP/data" -A trust --no-sync >/dev/null
cat >>"$TMP/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $PORT
unix_socket_directories = '$TMP'
shared_preload_libraries = 'analytics'
max_connections = 30
fsync = off
EOF
"$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/server.log" -w -t 60 start >/dev/null

psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

psql <<'SQL'
CREATE EXTENSION analytics;
SELECT analytics.upsert_customer('{"customer_identifier": "stress", "period_budget": 1.00}');
CREATE UNLOGGED TABLE stress_rejections (sqlstate text NOT NULL, message text);
SQL

cat >"$TMP/insert.sql" <<'SQL'
DO $$ BEGIN INSERT INTO analytics.logs (customer_identifier, model, cost) VALUES ('stress', 'gpt-4o', 0.01); EXCEPTION WHEN OTHERS THEN INSERT INTO stress_rejections VALUES (SQLSTATE, SQLERRM); END $$;
SQL

if ! timeout 120 "$PGBIN/pgbench" -n -c 8 -j 2 -t 30 -f "$TMP/insert.sql" \
	>"$TMP/pgbench.out" 2>&1; then
	cat "$TMP/pgbench.out" >&2
	fail "pgbench failed"
fi
grep -E "^number of transactions actually processed" "$TMP/pgbench.out" || true

read -r accepted spent rejected ua001 counter < <(psql -At -F ' ' <<'SQL'
SELECT (SELECT count(*) FROM analytics.logs WHERE customer_identifier = 'stress'),
       (SELECT sum(cost) FROM analytics.logs WHERE customer_identifier = 'stress'),
       (SELECT count(*) FROM stress_rejections),
       (SELECT count(*) FROM stress_rejections WHERE sqlstate = 'UA001'),
       (SELECT sum(spend) FROM analytics.budget_counters WHERE customer_identifier = 'stress');
SQL
)
echo "accepted=$accepted spent=$spent rejected=$rejected ua001=$ua001 counter=$counter"

[ "$accepted" = 100 ] || fail "expected exactly 100 accepted logs, got $accepted"
[ "$spent" = "1.00" ] || fail "expected \$1.00 spent, got $spent"
[ "$rejected" = 140 ] || fail "expected 140 rejections, got $rejected"
if [ "$ua001" != "$rejected" ]; then
	psql -c "SELECT sqlstate, message, count(*) FROM stress_rejections GROUP BY 1, 2" >&2
	fail "not every rejection carried UA001"
fi
[ "$counter" = "1.00" ] || fail "budget counter says $counter, logs say $spent"
echo "budget_stress: ok"
