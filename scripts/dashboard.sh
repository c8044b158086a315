#!/bin/bash
# The dashboard on the demo database: starts the demo (scripts/demo.sh
# --keep) unless its cluster is running already, creates the login role
# analytics_dashboard with analytics_reader and nothing more, builds
# dashboard/ as that role and serves the site, printing its URL.  Stop it
# with Ctrl-C; the demo cluster keeps running (psql -h /tmp/analytics-demo
# -p 55432 -d demo).
#
#   bash scripts/dashboard.sh [--port N] [--host ADDRESS]    default 127.0.0.1:3000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=/tmp/analytics-demo
PORT=55432
SERVE_ARGS=("$@")

if ! [ -S "$DIR/.s.PGSQL.$PORT" ] || ! [ -f "$DIR/data/postmaster.pid" ]; then
	bash scripts/demo.sh --keep
fi
source scripts/setup.sh
setup_dashboard

export PGHOST="$DIR" PGPORT="$PORT" PGDATABASE=demo
run_as "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -U "$RUN_AS" <<'SQL'
SELECT 'CREATE ROLE analytics_dashboard LOGIN IN ROLE analytics_reader'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_dashboard')
\gexec
SQL
echo "== building the dashboard as analytics_dashboard"
PGUSER=analytics_dashboard node dashboard/build.js | grep -v '^load /customers/'
echo "== serving dashboard/dist"
exec node dashboard/serve.js "${SERVE_ARGS[@]}"
