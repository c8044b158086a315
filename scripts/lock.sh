#!/bin/bash
# Sourced by test.sh, demo.sh and bench/run.sh before scripts/setup.sh:
# holds, on file descriptor 9 until the caller exits, the lock of the
# PostgreSQL installation the library is installed into (PGBIN, default the
# system's PostgreSQL 15), so that nobody reinstalls the library under a run
# and runs against different copies (a private PGBIN) do not wait for each
# other.
ANALYTICS_INSTALL_LOCK="/tmp/analytics-install$(echo "${PGBIN:-/usr/lib/postgresql/15/bin}" | tr / _).lock"
exec 9>"$ANALYTICS_INSTALL_LOCK"
flock 9
