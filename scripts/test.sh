#!/bin/bash
# The whole test suite: set up (packages, build, install), then, as an
# unprivileged user on a writable copy of the tree, `make installcheck`
# (pg_regress and isolation specs against temporary instances that preload
# the library) and the shell tests under test/ (crash, stress).  Prints the
# diffs of a failure and exits non-zero.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

WORK="${ANALYTICS_TEST_DIR:-/tmp/analytics-test}"
work_copy "$WORK"
cd "$WORK"

passed=0
failed=0
status=0

echo "== make installcheck"
if run_as make -s PG_CONFIG="$PG_CONFIG" installcheck; then
	echo "installcheck: ok"
else
	status=1
	for f in regression.diffs output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "== $f"; cat "$f"; }
	done
fi
for out in regression.out output_iso/regression.out; do
	if [ -f "$out" ]; then
		passed=$((passed + $(grep -cE '\.\.\. ok' "$out" || true)))
		failed=$((failed + $(grep -cE '\.\.\. FAILED' "$out" || true)))
	fi
done

for t in test/*.sh; do
	[ -e "$t" ] || continue
	echo "== $t"
	if run_as env PGBIN="$PGBIN" bash "$t"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		status=1
	fi
done

echo "$passed passed, $failed failed"
exit $status
